#!/usr/bin/env bash
# migrate.sh: deploy, roll back or check the migrations of one environment of pgward.toml,
# with a verified backup first, and the backup restored after a deploy that left part of a
# migration committed when the environment opts in (auto_restore = true).
#
# Usage:
#   scripts/migrate.sh deploy ENV [--yes] [--force] [--dry-run] [--no-drift] [--lock-timeout D]
#                      [--statement-timeout D] [--retries N] [--rehearse] [--max-lock D]
#                      [--accept-locks] [--config PATH] [-q]
#   scripts/migrate.sh rollback ENV [--steps N | --to NAME] [--force] [--dry-run]
#                      [--no-drift] [--config PATH] [-q]
#   scripts/migrate.sh status ENV [--config PATH] [-q]
#
# ENV is an environment of pgward.toml (its database_url_env, backups, protected); it
# defaults to $PGWARD_ENV. Run from the folder holding pgward.toml, or pass --config.
# The binaries come from $PGWARD_BIN (a folder), else PATH; jq is needed.
#
# deploy: status (nothing pending: done) -> preflight -> rehearse (with --rehearse or the
#   environment's `rehearse = true`) -> baseline schema and drift checks
#   -> pre_deploy -> backup -> verify it -> lint the pending migrations -> deploy -> schema
#   -> drift -> post_deploy -> health -> status (the hooks and the health check when the
#   environment sets pre_deploy, post_deploy, health_url). A failing preflight stops
#   before anything is written, except for a missing recent verified backup, which the
#   next steps take. When the deploy fails:
#   - nothing of the failing migration was committed (a lock timeout, an error inside its
#     transaction): no restore. The script stops, says which migrations this run applied
#     (they stay) and that the failing one is recorded as failed, and prints the commands
#     to go on (resolve, deploy) or to go back (restore).
#   - part of a migration was committed (the deploy's error.details.partly_committed), or
#     schema or drift find errors or differences the baseline did not have: the backup
#     just taken is restored only if the environment sets `auto_restore = true` in
#     pgward.toml (pgward-restore --clean, which first takes a safety backup of the state
#     it replaces, so writes made since the backup are kept there; --force only when you
#     gave --force). Otherwise (the default) the script stops, says what the database
#     holds, and prints the restore command.
#   Either way it exits with the deploy's or check's code. A deploy that is refused or
#   cannot start (exit 2, 4, 5, 6) changed nothing and restores nothing.
#   --force: lets that automatic restore replace a protected environment's database.
#   --rehearse: scripts/rehearse.sh ENV first (the pending migrations on a restored copy
#   of the newest verified backup, on the environment's rehearsal server; --max-lock D and
#   --yes are passed on). Its verdict, exit 3 (a lock that blocks writes or reads held
#   longer than the budget), stops the deploy before anything of ENV is touched (exit 3),
#   unless --accept-locks (then warning LOCKS_ACCEPTED, and the deploy goes on); a
#   rehearsal that fails or cannot run stops it with its exit code.
#   --dry-run: status, preflight and lint, then `deploy --dry-run`; no backup, no change.
#   --no-drift skips both drift checks (they need CREATEDB for the shadow database).
#   A failing or timed-out pre_deploy stops before anything is touched (exit 1). A failing
#   post_deploy or an application whose health_url never answers health_status is undone
#   as on_unhealthy says: stop (report it and print the ways back), rollback (down.sql of
#   this deploy's migrations) or restore (the backup, as auto_restore); exit 1. Drift the
#   deploy caused is exit 1 (DRIFT_AFTER_DEPLOY), restored or not.
#   A protected environment: pgward-migrate asks for the database name on a terminal; in
#   CI pass --yes (passed on to pgward-migrate deploy), or the deploy is refused (exit 6).
# rollback: plan (rollback --dry-run) -> if every migration to roll back has down.sql:
#   backup -> verify -> rollback -> schema -> drift -> status; else restore the newest
#   backup taken before the oldest of them (pgward-restore --before-migration, --clean;
#   the restore first takes a safety backup of the current state) -> status. A protected
#   environment asks on a terminal, or needs --force.
# status: pgward-migrate status; exit 0 up to date, 3 pending, 5 failed/edited/missing.
# A fleet environment (`fleet = "NAME"` in [env.ENV], docs/fleet.md): deploy runs status,
#   backup (each target into <backups>/<target>), verify and deploy over every target
#   (`--fleet NAME`: parallel, canary first, stop rules); a target whose deploy committed
#   part of a migration gets its own backup restored when auto_restore = true, else its
#   restore command printed. status runs over the fleet; rollback is not built for fleets.
#
# Exit code: the first failing step's (0 ok, 1 failed, 2 usage, 3 attention, 4 cannot
# connect, 5 integrity, 6 refused, 7 storage, 130 interrupted).
# stdout: one JSON document when the script ends (tool "migrate.sh", result.steps with
# every step's exit code, result and error; result.backup, result.restored), see
# scripts/lib/common.sh. stderr: one timestamped line per step, the binaries' own lines.
# pgward.toml's notify_url / notify_on: one notification per run; log_dir: a log file per
# run (docs/config.md).
#
# Examples:
#   STAGING_DATABASE_URL=postgresql://app:secret@db/app scripts/migrate.sh deploy staging
#   scripts/migrate.sh deploy production --yes --lock-timeout 5s --retries 3 | jq .result.steps
#   scripts/migrate.sh rollback staging
#   scripts/migrate.sh status production || echo "exit $?"
set -euo pipefail
# shellcheck source=lib/common.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib/common.sh"
# shellcheck source=lib/fleet.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib/fleet.sh"

pgw_start migrate.sh none

command=
env=${PGWARD_ENV:-}
env_given=
dry_run=
no_drift=
yes=
force=
rehearse=
accept_locks=
max_lock=
deploy_args=()
rollback_args=()
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) pgw_help ;;
    -q | --quiet) PGW_QUIET=1 ;;
    --config) [ $# -ge 2 ] || pgw_usage_error "--config needs a path"; PGW_GLOBAL+=(--config "$2"); shift ;;
    --dry-run) dry_run=1 ;;
    --no-drift) no_drift=1 ;;
    --yes) yes=1 ;;
    --force) force=1 ;;
    --rehearse) rehearse=1 ;;
    --accept-locks) accept_locks=1 ;;
    --max-lock) [ $# -ge 2 ] || pgw_usage_error "--max-lock needs a duration"; max_lock=$2; shift ;;
    --lock-timeout | --statement-timeout | --retries)
      [ $# -ge 2 ] || pgw_usage_error "$1 needs a value"; deploy_args+=("$1" "$2"); shift ;;
    --steps | --to)
      [ $# -ge 2 ] || pgw_usage_error "$1 needs a value"; rollback_args+=("$1" "$2"); shift ;;
    -*) pgw_usage_error "unknown option $1" ;;
    *)
      if [ -z "$command" ]; then
        command=$1
      elif [ -z "$env_given" ]; then
        env=$1 env_given=1
      else
        pgw_usage_error "unexpected argument $1"
      fi ;;
  esac
  shift
done
case $command in
  deploy | rollback | status) PGW_COMMAND=$command ;;
  "") pgw_usage_error "name a command: deploy, rollback or status" ;;
  *) pgw_usage_error "unknown command $command (deploy, rollback or status)" ;;
esac
[ -n "$env" ] || pgw_usage_error "name the environment of pgward.toml (or set PGWARD_ENV)"
[ ${#deploy_args[@]} = 0 ] || [ "$command" = deploy ] || pgw_usage_error "--lock-timeout, --statement-timeout and --retries are deploy options"
[ ${#rollback_args[@]} = 0 ] || [ "$command" = rollback ] || pgw_usage_error "--steps and --to are rollback options"
[ -z "$yes" ] || [ "$command" = deploy ] || pgw_usage_error "--yes approves a deploy; rollback needs --force"
[ -z "$rehearse$accept_locks$max_lock" ] || [ "$command" = deploy ] || pgw_usage_error "--rehearse, --max-lock and --accept-locks are deploy options"
[ -z "$force" ] || [ "$command" != status ] || pgw_usage_error "--force is for rollback, and for deploy's automatic restore"
PGW_GLOBAL+=(--env "$env")
[ -n "${PGW_QUIET:-}" ] && PGW_GLOBAL+=(--quiet)
PGW_LOG_CONTEXT="$command $env"
pgw_result env "$(jq -n --arg e "$env" '$e')"
pgw_result dry_run "$([ -n "$dry_run" ] && echo true || echo false)"

backup_id=
backup_location=
deployed_count=0

# Takes a backup and verifies it; stops the script if either fails.
take_backup() {
  pgw_step backup backup backup --label "$1"
  [ "$STEP_RC" = 0 ] || pgw_fail_step
  backup_id=$(pgw_jq .result.id)
  backup_location=$(pgw_jq .result.location)
  pgw_result backup "$(pgw_jq -c '.result | {id, location, size_bytes, rows, copies: [(.copies // [])[] | .location]}')"
  pgw_log "backup $backup_id at $backup_location"
  PGW_INTERRUPT_HINT="migrations applied before the interrupt stay applied; to go back to the state before this run: pgward-restore --env $env --from $backup_id --clean"
  # Every location of the environment's backups: each copy is checked.
  pgw_step verify backup verify "$backup_id"
  [ "$STEP_RC" = 0 ] || pgw_fail_step
}

# The command that puts the database back as it was before this run, for a person to
# paste (quoted for the shell where a path needs it).
restore_command() {
  printf 'pgward-restore --env %q --from %q --clean --create' "$env" "$backup_id"
}

# After a deploy that failed without committing anything of the failing migration: no
# restore (the application's writes since the backup stay); say what the database holds
# and how to go on or back, and end with the deploy's exit code and error.
stop_nothing_partial() {
  local failed_rc=$STEP_RC failed_error migration kept left
  failed_error=$(pgw_step_error)
  migration=$(pgw_jq '.error.details.migration // "the failing migration"')
  kept=$(pgw_jq '[(.result.applied // [])[].name] | if length == 0 then "none" else join(", ") end')
  left=$(pgw_jq '(.error.details.left_behind // []) | join(", ")')
  pgw_log_error "[deploy] failed on $migration; nothing of it was committed, so the database is not restored" \
    "the database now: applied by this run and kept: $kept; $migration is recorded as failed, none of it applied${left:+; an INVALID index it left could not be dropped: $left}" \
    "to go on: fix $migration, then pgward-migrate resolve --rolled-back $migration --env $env, then migrate.sh deploy $env" \
    "to go back to the state before this run instead: $(restore_command) (it first takes a safety backup of the current state)"
  pgw_result restored null
  pgw_finish "$failed_rc" "$(jq -c --arg cmd "$(restore_command)" --arg kept "$kept" --arg env "$env" --arg m "$migration" '
    .hint = "nothing of \($m) was committed and the database was not restored; migrations this run applied stay applied (\($kept)). Fix \($m), run pgward-migrate resolve --rolled-back \($m) --env \($env), then deploy again; or go back to before this run: \($cmd)"
    | .details.restored = false | .details.restore_command = $cmd' <<<"$failed_error")"
}

# After a deploy that failed without saying what it committed (a query of its own failed,
# the connection was lost): no restore on a guess; say so, and how to look and go back.
stop_state_unknown() {
  local failed_rc=$STEP_RC failed_error
  failed_error=$(pgw_step_error)
  pgw_log_error "[deploy] failed ($(pgw_jq '.error.code // "no error code"')) without saying what it committed, so the database is not restored" \
    "see what it holds: pgward-migrate status --env $env" \
    "to go back to the state before this run: $(restore_command) (it first takes a safety backup of the current state)"
  pgw_result restored null
  pgw_finish "$failed_rc" "$(jq -c --arg cmd "$(restore_command)" --arg env "$env" '
    .hint = "\(.hint // "see the message above"); the deploy did not say what it committed and the database was not restored: check it with pgward-migrate status --env \($env); to go back to before this run: \($cmd)"
    | .details.restored = false | .details.restore_command = $cmd' <<<"$failed_error")"
}

# After a deploy that committed part of a migration, or checks that found a regression
# ($1 says which; $2, when given, is the error to end with instead of the failing step's):
# restore the backup taken before the deploy when the environment sets auto_restore =
# true (or $3 is `restore`: on_unhealthy = "restore"), else stop and say so. Ends with the
# failing step's code and error.
restore_or_stop() {
  local why=$1 failed_rc=$STEP_RC failed_step=$STEP_NAME failed_error=${2:-} auto
  [ -n "$failed_error" ] || failed_error=$(pgw_step_error)
  auto=$(pgw_setting auto_restore)
  [ "${3:-}" = restore ] && auto=true
  pgw_result auto_restore "$([ "$auto" = true ] && echo true || echo false)"
  if [ "$auto" != true ]; then
    pgw_log_error "[$failed_step] $why" \
      "the database was NOT restored: auto_restore is off for $env, so the decision is yours" \
      "to put it back as it was before this run (a safety backup of the current state is taken first): $(restore_command)"
    pgw_result restored null
    pgw_finish "$failed_rc" "$(jq -c --arg cmd "$(restore_command)" --arg why "$why" '
      .hint = "\($why); the database was not restored (auto_restore is off for this environment). To put it back as it was before this run: \($cmd); or fix forward"
      | .details.restored = false | .details.restore_command = $cmd' <<<"$failed_error")"
  fi
  pgw_log_error "[$failed_step] $why: restoring backup $backup_id, taken before this deploy ($([ "${3:-}" = restore ] && echo 'on_unhealthy = "restore"' || echo 'auto_restore = true'))"
  local flags=(--from "$backup_id" --clean)
  [ -n "$force" ] && flags+=(--force)
  pgw_step restore restore restore "${flags[@]}"
  if [ "$STEP_RC" != 0 ]; then
    pgw_result restored "$(jq -n --arg id "$backup_id" --arg l "$backup_location" '{backup: $id, location: $l, ok: false}')"
    pgw_log_error "RESTORE FAILED: the $failed_step step failed and restoring backup $backup_id failed too; the database holds the deploy's changes, or, if the restore failed while loading, no longer exists"
    pgw_finish "$STEP_RC" "$(pgw_step_error | jq -c --arg id "$backup_id" --arg s "$failed_step" --arg env "$env" --arg cmd "$(restore_command)" \
      '.message = "the \($s) step failed and restoring backup \($id) failed too: " + .message
       | .hint = "\(.hint // "fix what the restore says"); then restore by hand: \($cmd); then check with pgward-migrate status --env \($env)"')"
  fi
  local safety
  safety=$(pgw_jq '.result.safety_backup // empty')
  pgw_result restored "$(jq -n --arg id "$backup_id" --arg l "$backup_location" --arg s "$safety" '{backup: $id, location: $l, safety_backup: (if $s == "" then null else $s end), ok: true}')"
  pgw_log_error "the database was restored from backup $backup_id: it is as it was before this deploy${safety:+; the state it replaced is in safety backup $safety}"
  pgw_step status-after-restore migrate status
  pgw_detail '"history after the restore: \(.result.applied | length) applied, pending: \(.result.pending | join(", "))"'
  pgw_finish "$failed_rc" "$(jq -c --arg id "$backup_id" --arg l "$backup_location" --arg s "$safety" '
    .hint = "the database was restored from backup \($id) (\($l)) as it was before this deploy, its migration history included\(if $s == "" then "" else "; what it held before the restore (writes made since the backup included) is in safety backup \($s)" end); fix the cause and run migrate.sh deploy again"
    | .details.restored_from = "\($l)/\($id)" | .details.restored = true' <<<"$failed_error")"
}

deploy() {
  pgw_need_tools migrate validate backup restore
  pgw_step status migrate status
  case $STEP_RC in
    0) pgw_log "nothing to deploy: the database is up to date"; pgw_result deployed '[]'; pgw_finish 0 ;;
    3) pgw_detail '"pending: \(.result.pending | join(", "))"' ;;
    *) pgw_fail_step ;;
  esac
  local first_pending
  first_pending=$(pgw_jq '.result.pending[0]')

  PGW_EXPECT=1 pgw_step preflight validate preflight
  pgw_detail '.result.checks[]? | select(.status == "fail") | "  \(.name): \(.detail)\(if .fix then " (fix: \(.fix))" else "" end)"'
  if [ "$STEP_RC" != 0 ]; then
    if [ "$STEP_RC" = 1 ] && [ "$(pgw_jq '[.result.checks[]? | select(.status == "fail") | .name] | unique == ["recent-verified-backup"]')" = true ]; then
      if [ -n "$dry_run" ]; then
        pgw_warn NO_RECENT_BACKUP "no recent verified backup; a real deploy takes and verifies one first"
      else
        pgw_log "no recent verified backup yet: the next steps take and verify one"
      fi
    else
      pgw_fail_step
    fi
  fi

  run_rehearsal

  local schema_before='' drift_before=''
  if [ -z "$dry_run" ]; then
    PGW_EXPECT=1 pgw_step baseline-schema validate schema
    [ "$STEP_RC" = 0 ] || [ "$STEP_RC" = 1 ] || pgw_fail_step
    schema_before=$(schema_errors)
    [ -z "$schema_before" ] || pgw_warn SCHEMA_ERRORS_BEFORE_DEPLOY "validate schema finds errors before the deploy (not held against it): ${schema_before//$'\n'/, }"
    if [ -z "$no_drift" ]; then
      pgw_step baseline-drift validate drift
      [ "$STEP_RC" = 0 ] || [ "$STEP_RC" = 3 ] || pgw_fail_step
      drift_before=$(drift_differences)
      [ -z "$drift_before" ] || pgw_warn DRIFT_BEFORE_DEPLOY "the database has drifted from its migrations before the deploy (not held against it): $(echo "$drift_before" | wc -l) difference(s)"
    fi
    run_pre_deploy
    take_backup "migrate.sh deploy $env: before $first_pending"
  else
    [ -z "$(pgw_setting pre_deploy)$(pgw_setting post_deploy)$(pgw_setting health_url)" ] ||
      pgw_log "dry run: pre_deploy, post_deploy and the health check are not run"
  fi

  pgw_step lint validate lint
  pgw_detail '.result.findings[]? | "  \(.severity) \(.rule) \(.file // ""):\(.line // ""): \(.message)"'
  [ "$STEP_RC" = 0 ] || pgw_fail_step

  local flags=("${deploy_args[@]}")
  [ -n "$yes" ] && flags+=(--yes)
  [ -n "$dry_run" ] && flags+=(--dry-run)
  pgw_step deploy migrate deploy "${flags[@]}"
  pgw_detail '(.result.applied // [])[] | "  \(if $dry "would apply" else "applied" end) \(.name) (\(.mode)\(if .duration_ms then ", \(.duration_ms) ms" else "" end))"' \
    --argjson dry "$([ -n "$dry_run" ] && echo true || echo false)"
  pgw_result deployed "$(pgw_jq -c '[(.result.applied // [])[].name]')"
  deployed_count=$(pgw_jq '(.result.applied // []) | length')
  case $STEP_RC in
    0) ;;
    1)
      [ -n "$dry_run" ] && pgw_fail_step
      # The deploy's error.details.partly_committed is the one source of truth for
      # "the database holds part of the failing migration".
      case "$(pgw_jq '"\(.error.code)/\(.error.details.partly_committed)"')" in
        MIGRATION_FAILED/true) restore_or_stop "the deploy committed part of $(pgw_jq '.error.details.migration') before it failed" ;;
        MIGRATION_FAILED/false) stop_nothing_partial ;;
        *) stop_state_unknown ;;
      esac ;;
    *) pgw_fail_step ;;
  esac
  [ -z "$dry_run" ] || pgw_finish 0

  pgw_step schema validate schema
  case $STEP_RC in
    0 | 1)
      local added
      added=$(new_lines "$schema_before" "$(schema_errors)")
      if [ -n "$added" ]; then
        pgw_log_error "the deploy left new schema errors:" "$(printf '  %s\n' "$added")"
        STEP_RC=1
        restore_or_stop "the deploy succeeded but left new schema errors (${added//$'\n'/, })"
      fi ;;
    *) pgw_log_error "the deploy succeeded but the schema could not be checked; backup $backup_id is at $backup_location"; pgw_fail_step ;;
  esac

  if [ -z "$no_drift" ]; then
    pgw_step drift validate drift
    case $STEP_RC in
      0 | 3)
        local added
        added=$(new_lines "$drift_before" "$(drift_differences)")
        if [ -n "$added" ]; then
          pgw_log_error "the deploy left the database different from what its migrations produce:" "$(printf '  %s\n' "$added")"
          # A deploy undone (or to undo) for drift it caused failed: exit 1, not drift's 3.
          STEP_RC=1
          local why
          why="the deploy succeeded but left the database different from what its migrations produce ($(echo "$added" | wc -l) new difference(s): ${added//$'\n'/, })"
          restore_or_stop "$why" "$(pgw_error_json DRIFT_AFTER_DEPLOY "$why" \
            "result.steps (drift) lists each difference; the migration does something a replay does not (it depends on data, time or the role)" \
            "$(jq -nc --arg s drift '{step: $s}')")"
        fi ;;
      *) pgw_log_error "the deploy succeeded but drift could not be checked; backup $backup_id is at $backup_location"; pgw_fail_step ;;
    esac
  fi

  run_post_deploy_and_health

  pgw_step status-after migrate status
  case $STEP_RC in
    0 | 3) pgw_finish 0 ;;
    *) pgw_fail_step ;;
  esac
}

# The rehearsal (scripts/rehearse.sh), when asked for: its verdict (exit 3) stops the deploy
# before anything of the environment is touched, unless --accept-locks; so does a
# rehearsal that fails or cannot run. Its own notification is left to this run's.
run_rehearsal() {
  [ -n "$rehearse" ] || [ "$(pgw_setting rehearse)" = true ] || return 0
  local flags=()
  [ -n "$max_lock" ] && flags+=(--max-lock "$max_lock")
  [ -n "$yes" ] && flags+=(--yes)
  [ -n "$no_drift" ] && flags+=(--no-drift)
  PGWARD_NESTED=1 pgw_step rehearse rehearse.sh "${flags[@]}"
  pgw_result rehearsal "$(pgw_jq -c '{scratch_database: .result.scratch_database, backup: .result.backup.id,
    max_lock: .result.verdict.max_lock, over_budget: (.result.verdict.lines // []), accepted: ($accepted and .exit_code == 3)}' \
    --argjson accepted "$([ -n "$accept_locks" ] && echo true || echo false)")"
  case $STEP_RC in
    0) ;;
    3)
      local lines
      lines=$(pgw_jq '.result.verdict.lines[]?')
      if [ -n "$accept_locks" ]; then
        pgw_warn LOCKS_ACCEPTED "the rehearsal measured $(printf '%s\n' "$lines" | wc -l) lock(s) over the $(pgw_jq .result.verdict.max_lock) budget; deploying all the same (--accept-locks): ${lines//$'\n'/ | }"
        return 0
      fi
      pgw_log_error "stopped before touching $env: the rehearsal measured locks over the $(pgw_jq .result.verdict.max_lock) budget:" "$lines" \
        "rewrite those migrations (the lint rule named gives the safe way), or deploy all the same with --accept-locks"
      pgw_result deployed '[]'
      pgw_finish 3 ;;
    *) pgw_fail_step ;;
  esac
}

# pre_deploy of the environment (stop or drain the application), before the backup: when
# it fails, nothing has been touched and the script stops.
run_pre_deploy() {
  local cmd
  cmd=$(pgw_setting pre_deploy)
  [ -n "$cmd" ] || return 0
  pgw_hook_step pre-deploy "$cmd" "$(pgw_setting hook_timeout_s)" \
    "nothing was touched: no backup taken, no migration applied; fix the hook (pre_deploy in pgward.toml) or what it acts on, then run migrate.sh deploy $env again"
  [ "$STEP_RC" = 0 ] || pgw_fail_step
}

# post_deploy, then the health check: either failing is a failed check after the deploy,
# undone as the environment's on_unhealthy says.
run_post_deploy_and_health() {
  local cmd
  cmd=$(pgw_setting post_deploy)
  if [ -n "$cmd" ]; then
    pgw_hook_step post-deploy "$cmd" "$(pgw_setting hook_timeout_s)" "see below what was undone"
    [ "$STEP_RC" = 0 ] || undo_after_failed_app_check "post_deploy failed after the deploy"
  fi
  [ -n "$(pgw_setting health_url)" ] || return 0
  pgw_step health report app-health
  pgw_detail '"health: \(.result.url) answered \(.result.attempts | last | .status // .error) after \(.result.attempts | length) attempt(s)"'
  case $STEP_RC in
    0) ;;
    1) undo_after_failed_app_check "the application is unhealthy after the deploy" ;;
    *) pgw_log_error "the deploy succeeded but the application's health could not be checked; backup $backup_id is at $backup_location"; pgw_fail_step ;;
  esac
}

# After an unhealthy application or a failed post_deploy ($1 says which): as the
# environment's on_unhealthy says, nothing (`stop`, the commands to go back printed),
# down.sql of the migrations this deploy applied (`rollback`; when one has none, the
# auto_restore rules), or the backup (`restore`). Ends with exit 1 and the step's error.
undo_after_failed_app_check() {
  local why=$1 failed_step=$STEP_NAME mode failed_error rollback_cmd
  mode=$(pgw_setting on_unhealthy)
  failed_error=$(pgw_step_error)
  pgw_result on_unhealthy "$(jq -n --arg m "$mode" '$m')"
  rollback_cmd="scripts/migrate.sh rollback $env --steps $deployed_count"
  case $mode in
    restore) restore_or_stop "$why" "$failed_error" restore ;;
    rollback)
      local flags=(--steps "$deployed_count")
      [ -n "$force" ] && flags+=(--force)
      pgw_log_error "$why: rolling back the $deployed_count migration(s) it applied with their down.sql (on_unhealthy = \"rollback\")"
      PGW_EXPECT=1 pgw_step rollback-after-deploy migrate rollback "${flags[@]}"
      if [ "$STEP_RC" = 0 ]; then
        pgw_result rolled_back "$(pgw_jq -c '[.result.rolled_back[].name]')"
        pgw_step status-after-rollback migrate status
        pgw_detail '"pending now: \(.result.pending | join(", "))"'
        pgw_finish 1 "$(jq -c --arg why "$why" '
          .hint = "\($why); the migrations this deploy applied were rolled back with their down.sql (the application'"'"'s writes kept). Fix the cause, then run migrate.sh deploy again"
          | .details.rolled_back = true' <<<"$failed_error")"
      fi
      if [ "$STEP_RC" = 1 ] && [ "$(pgw_jq .error.code)" = NO_DOWN_SQL ]; then
        pgw_log_error "$(pgw_jq .error.message): nothing was rolled back; the auto_restore rules decide on the backup"
        STEP_RC=1 STEP_NAME=$failed_step
        restore_or_stop "$why (and a migration to roll back has no down.sql)" "$failed_error"
      fi
      pgw_log_error "ROLLBACK FAILED after $why"
      pgw_finish "$STEP_RC" "$(pgw_step_error | jq -c --arg why "$why" --arg cmd "$(restore_command)" '
        .message = "\($why), and rolling back with down.sql failed too: " + .message
        | .hint = "\(.hint // "see the messages above"); to go back to the state before this run: \($cmd)"')" ;;
    *)
      pgw_log_error "$why; nothing was undone (on_unhealthy = \"stop\")" \
        "the database keeps this deploy's migrations; to go back: $rollback_cmd (down.sql), or $(restore_command)"
      pgw_finish 1 "$(jq -c --arg why "$why" --arg rb "$rollback_cmd" --arg cmd "$(restore_command)" '
        .hint = "\($why); nothing was undone (on_unhealthy is stop for this environment). Fix the application, or go back: \($rb) (down.sql), or \($cmd)"
        | .details.restored = false | .details.restore_command = $cmd | .details.rollback_command = $rb' <<<"$failed_error")" ;;
  esac
}

rollback() {
  pgw_need_tools migrate validate backup restore
  PGW_EXPECT=1 pgw_step plan migrate rollback --dry-run "${rollback_args[@]}"
  local oldest targets
  if [ "$STEP_RC" = 0 ]; then
    pgw_detail '"would run down.sql of: \([.result.rolled_back[].name] | join(", "))"'
    [ -n "$dry_run" ] && pgw_finish 0
    take_backup "migrate.sh rollback $env: before rolling back $(pgw_jq '[.result.rolled_back[].name] | join(", ")')"
    local flags=("${rollback_args[@]}")
    [ -n "$force" ] && flags+=(--force)
    pgw_step rollback migrate rollback "${flags[@]}"
    [ "$STEP_RC" = 0 ] || pgw_fail_step
    pgw_result rolled_back "$(pgw_jq -c '[.result.rolled_back[].name]')"
    pgw_step schema validate schema
    [ "$STEP_RC" = 0 ] || pgw_fail_step
    if [ -z "$no_drift" ]; then
      pgw_step drift validate drift
      [ "$STEP_RC" = 0 ] || pgw_fail_step
    fi
  elif [ "$STEP_RC" = 1 ] && [ "$(pgw_jq .error.code)" = NO_DOWN_SQL ]; then
    # would_roll_back lists the targets newest first: restore from before the oldest.
    oldest=$(pgw_jq '.result.would_roll_back | last')
    targets=$(pgw_jq -c '.result.would_roll_back')
    pgw_log "$(pgw_jq .error.message): restoring the newest backup taken before $oldest instead"
    local flags=(--before-migration "$oldest" --clean)
    [ -n "$force" ] && flags+=(--force)
    [ -n "$dry_run" ] && flags+=(--dry-run)
    pgw_step restore restore restore "${flags[@]}"
    [ "$STEP_RC" = 0 ] || pgw_fail_step
    pgw_result restored "$(pgw_jq -c '{backup: .result.backup, location: .result.location, safety_backup: .result.safety_backup, ok: true}')"
    pgw_detail '"\(if .result.dry_run then "would restore" else "restored" end) backup \(.result.backup)\(if .result.safety_backup then "; the state before is in safety backup \(.result.safety_backup)" else "" end)"'
    [ -n "$dry_run" ] && pgw_finish 0
    pgw_result rolled_back "$targets"
  else
    pgw_fail_step
  fi
  pgw_step status-after migrate status
  pgw_detail '"pending now: \(.result.pending | join(", "))"'
  case $STEP_RC in
    0 | 3) pgw_finish 0 ;;
    *) pgw_fail_step ;;
  esac
}

status() {
  pgw_need_tools migrate
  pgw_step status migrate status
  pgw_detail '"applied: \(.result.applied | length); pending: \(.result.pending | join(", ") | if . == "" then "none" else . end)\(if (.result.failed | length) > 0 then "; failed: \([.result.failed[].name] | join(", "))" else "" end)"'
  pgw_finish "$STEP_RC" "$(pgw_step_error)"
}

pgw_need_tools report
pgw_load_settings
fleet=$(pgw_setting fleet)
if [ -n "$fleet" ]; then
  # An environment of many databases (docs/fleet.md): each step over every target.
  case $command in
    deploy) pgw_fleet_deploy "$fleet" ;;
    status) pgw_need_tools migrate; pgw_step status migrate status --fleet "$fleet"; pgw_fleet_detail; pgw_finish "$STEP_RC" "$(pgw_step_error)" ;;
    *) pgw_usage_error "rollback of a fleet environment is not built: roll back one target with pgward-migrate rollback --fleet $fleet --only INDEX" ;;
  esac
fi
"$command"
