#!/usr/bin/env bash
# rehearse.sh: runs the pending migrations of one environment of pgward.toml on a restored
# copy of its data, measures the locks each statement takes and how long it holds them,
# and gives a verdict against a lock budget, before anything touches the environment.
#
# Usage:
#   scripts/rehearse.sh [--env] ENV [--from LOCATION/ID] [--max-lock DURATION] [--yes] [--no-drift]
#                       [--no-owner] [--markdown FILE] [--config PATH] [-q]
#
# ENV is an environment of pgward.toml; it defaults to $PGWARD_ENV. Its keys used here:
# rehearsal_url_env (the variable holding the URL of the rehearsal server, a database on
# it such as postgres; the role needs CREATEDB), backups, migrations, protected, max_lock.
# The binaries come from $PGWARD_BIN (a folder), else PATH; jq and psql are needed.
#
# Steps (every step after `leftovers` acts on the rehearsal server only):
#   backups    pgward-backup list: the newest verified backup of ENV's database
#              (--from LOCATION/ID names one instead)
#   env-status pgward-migrate status of ENV (read only): nothing pending ends the run
#              (exit 0); what ENV has applied is what the copy is brought up to
#   server     is the rehearsal server ENV's own server? (system identifiers compared,
#              else host and port) Then --yes is needed: the restore and the migrations
#              load that server (REHEARSAL_ON_PRODUCTION_SERVER, exit 6, without it)
#   leftovers  pgward-report health: rehearsal databases a killed rehearsal left (marked,
#              their creating session gone, nobody on them) are dropped
#   create     the scratch database pgward_rehearse_<pid>_<random>, created and marked as
#              pgward's work by a psql session that stays connected until the script ends:
#              while it is there, no other cleanup takes the database for a leftover
#   restore    pgward-restore of the backup into it (--no-owner when the roles differ)
#   catch-up   pgward-migrate deploy --to ENV's last applied migration, untraced: the
#              migrations ENV applied after the backup was taken
#   baseline   pgward-validate schema (and drift) before the migrations
#   lint       pgward-validate lint of the pending migrations
#   deploy     pgward-migrate deploy --trace [--max-lock BUDGET]
#   schema, drift   after the migrations: new errors or differences fail the rehearsal
#   drop       DROP DATABASE ... WITH (FORCE), also after a failure or Ctrl-C
#
# The verdict: --max-lock DURATION, else the environment's max_lock, else 5s in a
# protected environment (none otherwise: the locks are reported, nothing is judged). Every
# lock that blocks writes or reads for longer is one line on stderr and in
# result.verdict.lines, with the lint rule that predicted it, if any:
#   20240612_add_status/migration.sql:1: ALTER TABLE orders ALTER COLUMN amount TYPE bigint
#   holds ACCESS EXCLUSIVE on orders for 41.2 s (rewrite of 1.8 GiB); blocks reads and
#   writes; see lint alter-column-type
# --markdown FILE writes the same as Markdown, for a pull request comment.
#
# Exit code: 0 every lock within the budget; 3 a lock over it (the verdict); 1 a migration
# fails on the copy, or leaves new schema errors or drift; 2 usage; 4 cannot connect; 5 a
# corrupt backup; 6 the rehearsal server is ENV's own server and --yes was not given; 7
# storage; 130 interrupted. ENV's database is never written.
# stdout: one JSON document when the script ends (tool "rehearse.sh"; result.backup,
# result.scratch_database, result.deployed, result.relations, result.verdict,
# result.steps), see scripts/lib/common.sh. stderr: one timestamped line per step.
#
# Examples:
#   scripts/rehearse.sh production --max-lock 2s --markdown rehearsal.md
#   scripts/rehearse.sh staging --from s3://acme-db-backups/staging/app-staging-20261122T031300Z
#   scripts/rehearse.sh production | jq .result.verdict.lines
set -euo pipefail
# shellcheck source=lib/common.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib/common.sh"

pgw_start rehearse.sh rehearse

env=${PGWARD_ENV:-}
env_given=
from=
max_lock=
yes=
no_drift=
no_owner=
markdown=
config_args=()
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) pgw_help ;;
    -q | --quiet) PGW_QUIET=1 ;;
    --config) [ $# -ge 2 ] || pgw_usage_error "--config needs a path"; config_args=(--config "$2"); shift ;;
    --env) [ $# -ge 2 ] || pgw_usage_error "--env needs a name"; env=$2 env_given=1; shift ;;
    --from) [ $# -ge 2 ] || pgw_usage_error "--from needs LOCATION/ID"; from=$2; shift ;;
    --max-lock) [ $# -ge 2 ] || pgw_usage_error "--max-lock needs a duration"; max_lock=$2; shift ;;
    --markdown) [ $# -ge 2 ] || pgw_usage_error "--markdown needs a file"; markdown=$2; shift ;;
    --yes) yes=1 ;;
    --no-drift) no_drift=1 ;;
    --no-owner) no_owner=1 ;;
    -*) pgw_usage_error "unknown option $1" ;;
    *)
      [ -z "$env_given" ] || pgw_usage_error "unexpected argument $1"
      env=$1 env_given=1 ;;
  esac
  shift
done
[ -n "$env" ] || pgw_usage_error "name the environment of pgward.toml (or set PGWARD_ENV)"
[ -z "$max_lock" ] || [[ $max_lock =~ ^[0-9]+(\.[0-9]+)?(ms|s|min|m|h)$ ]] ||
  pgw_usage_error "--max-lock $max_lock is not a duration like 5s, 500ms or 2min"
PGW_GLOBAL+=("${config_args[@]}" --env "$env")
# The steps on the rehearsal server select no environment: their URL is DATABASE_URL.
REHEARSAL_GLOBAL=("${config_args[@]}")
if [ -n "${PGW_QUIET:-}" ]; then
  PGW_GLOBAL+=(--quiet)
  REHEARSAL_GLOBAL+=(--quiet)
fi
unset PGWARD_ENV
PGW_LOG_CONTEXT=$env
pgw_result env "$(jq -n --arg e "$env" '$e')"
pgw_need_tools report backup restore migrate validate
pgw_need_pg_tools psql
pgw_load_settings

# --- the rehearsal server ---------------------------------------------------------------
url_var=$(pgw_setting rehearsal_url_env)
[ -n "$url_var" ] || pgw_fail 2 NO_REHEARSAL_URL \
  "the environment $env sets no rehearsal_url_env: there is no server to rehearse on" \
  "add rehearsal_url_env = \"REHEARSAL_DATABASE_URL\" to [env.$env] in pgward.toml and set that variable to postgresql://USER:PASSWORD@HOST:PORT/postgres of a server whose role may CREATE DATABASE"
rehearsal_url=${!url_var:-}
[ -n "$rehearsal_url" ] || pgw_fail 2 NO_REHEARSAL_URL \
  "$url_var (rehearsal_url_env of $env) is not set" \
  "set $url_var to postgresql://USER:PASSWORD@HOST:PORT/postgres of the rehearsal server"
pgw_url_parse "$rehearsal_url" || pgw_fail 2 INVALID_DATABASE_URL \
  "$url_var is not a postgresql:// URL (not shown: it may hold a password)" \
  "write it as postgresql://USER:PASSWORD@HOST:5432/postgres (password percent-encoded)"
# host:port as a person reads it (a socket folder is percent-encoded in the URL).
printf -v rehearsal_server '%b' "${PGW_URL_HOSTPORT//%/\\x}"
env_url_var=$(pgw_setting database_url_env)
if [ -n "$env_url_var" ]; then
  env_url=${!env_url_var:-}
else
  env_url=${DATABASE_URL:-}
fi
env_db=
if [ -n "$env_url" ] && pgw_url_parse "$env_url"; then
  env_db=$PGW_URL_DB
fi
migrations=$(pgw_setting migrations)

budget=$max_lock
if [ -z "$budget" ] && [ -n "$(pgw_setting max_lock_ms)" ]; then
  budget="$(pgw_setting max_lock_ms)ms"
fi
pgw_result max_lock "$(jq -n --arg b "$budget" 'if $b == "" then null else $b end')"

# rehearsal_step NAME URL TOOL ARG...: pgw_step on the rehearsal server, URL in
# DATABASE_URL (never on a command line), no environment selected.
rehearsal_step() {
  local name=$1 url=$2 saved=("${PGW_GLOBAL[@]}")
  shift 2
  PGW_GLOBAL=("${REHEARSAL_GLOBAL[@]}")
  DATABASE_URL=$url pgw_step "$name" "$@"
  PGW_GLOBAL=("${saved[@]}")
}

# --- the backup -------------------------------------------------------------------------
if [ -z "$from" ]; then
  [ -n "$(pgw_setting backups)" ] || pgw_fail 2 USAGE "the environment $env sets no backups location, and no --from was given" \
    "pass --from LOCATION/ID, or set backups in [env.$env] of pgward.toml"
  # Every location of the environment's backups; each backup is read from the first
  # that holds a complete copy of it.
  pgw_step backups backup list
  [ "$STEP_RC" = 0 ] || pgw_fail_step
  id=$(pgw_jq '[.result.backups[] | select(.verified and .env == $env and ($db == "" or .database == $db))][0].id // empty' \
    --arg env "$env" --arg db "$env_db")
  [ -n "$id" ] || pgw_fail 1 NO_VERIFIED_BACKUP \
    "no verified backup of $env${env_db:+ (database $env_db)} in $(jq -r '.result.backups // [] | join(", ")' "$PGW_SETTINGS"): the rehearsal restores the newest verified one" \
    "take and verify one (scripts/backup-cron.sh $env, or pgward-backup --env $env then pgward-backup verify ID --env $env), or pass --from LOCATION/ID"
  location=$(pgw_jq '.result.backups[] | select(.id == $id) | (.copies[0].location // $fallback)' \
    --arg id "$id" --arg fallback "$(pgw_jq .result.location)")
  from="$location/$id"
  pgw_result backup "$(pgw_jq '.result.backups[] | select(.id == $id) | {id, location: $l, created_at, migration_head, size_bytes}' \
    -c --arg id "$id" --arg l "$location")"
  pgw_log "rehearsing on backup $id (the newest verified backup of $env)"
else
  pgw_result backup "$(jq -nc --arg f "$from" '{from: $f}')"
fi

# --- what ENV has applied and what is pending there -------------------------------------
pgw_step env-status migrate status
case $STEP_RC in
  0) pgw_log "nothing is pending on $env: nothing to rehearse"; pgw_result deployed '[]'; pgw_finish 0 ;;
  3) ;;
  *) pgw_fail_step ;;
esac
env_head=$(pgw_jq '[.result.applied[].name] | sort | last // empty')
pgw_result pending "$(pgw_jq -c '.result.pending')"

# --- is the rehearsal server ENV's own? -------------------------------------------------
# The same cluster has the same system identifier, whatever the host name says; a role
# that may not read it (or a server that cannot be reached) leaves host and port.
system_id() {
  pgw_pg psql "$1" -X -q -t -A -c 'SELECT system_identifier FROM pg_control_system()' 2>/dev/null
}
same_server=false
how=
if [ -n "$env_url" ]; then
  rehearsal_id=$(system_id "$rehearsal_url" || true)
  env_id=$(system_id "$env_url" || true)
  if [ -n "$rehearsal_id" ] && [ -n "$env_id" ]; then
    how="system identifier"
    [ "$rehearsal_id" != "$env_id" ] || same_server=true
  else
    how="host and port"
    if pgw_url_parse "$env_url" && [ "$(printf '%b' "${PGW_URL_HOSTPORT//%/\\x}")" = "$rehearsal_server" ]; then
      same_server=true
    fi
  fi
fi
[ -n "$how" ] || pgw_log_always "could not tell whether the rehearsal server is $env's own: $env's URL comes from the PG* variables"
pgw_result rehearsal_server "$(jq -nc --arg s "$rehearsal_server" --argjson same "$same_server" --arg how "$how" \
  '{server: $s, same_as_env: $same, compared_by: (if $how == "" then null else $how end)}')"
if [ "$same_server" = true ]; then
  if [ -z "$yes" ]; then
    pgw_fail 6 REHEARSAL_ON_PRODUCTION_SERVER \
      "the rehearsal server ($url_var, $rehearsal_server) is $env's own server (same $how): the restore and the migrations would load it" \
      "point $url_var at another server, or pass --yes to rehearse on $env's server all the same (its database is not written; a scratch database beside it is)"
  fi
  pgw_log_always "the rehearsal runs on $env's own server ($rehearsal_server, same $how), approved by --yes: the restore and the migrations load it"
fi

# --- leftovers of killed rehearsals -----------------------------------------------------
SCRATCH_PREFIX=pgward_rehearse_
rehearsal_step leftovers "$rehearsal_url" report health
[ "$STEP_RC" = 0 ] || [ "$STEP_RC" = 3 ] || pgw_fail_step
mapfile -t leftovers < <(pgw_jq '.result.work_databases[]? | select((.name | startswith($p)) and (.creator_running | not) and .sessions == 0) | .name' \
  --arg p "$SCRATCH_PREFIX")
dropped=()
for name in "${leftovers[@]}"; do
  # No FORCE: a session that appeared since makes this fail rather than end someone's work.
  pgw_command_step "drop-leftover" psql QUERY_FAILED \
    pgw_pg psql "$rehearsal_url" -X -q -v ON_ERROR_STOP=1 -v name="$name" <<<'DROP DATABASE :"name"'
  if [ "$STEP_RC" = 0 ]; then
    pgw_log "dropped $name, which a killed rehearsal left"
    dropped+=("$name")
  else
    pgw_log "could not drop $name, which a killed rehearsal left: the next rehearsal tries again"
  fi
done
pgw_result leftovers_dropped "$(printf '%s\n' "${dropped[@]}" | jq -Rsc 'split("\n") | map(select(. != ""))')"

# --- the scratch database, held by a session of its own ---------------------------------
scratch=$SCRATCH_PREFIX$$_$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')
scratch_url=$(pgw_url_with_db "$rehearsal_url" "$scratch")
PGW_LOG_CONTEXT="$env $scratch"
pgw_result scratch_database "$(jq -n --arg s "$scratch" '$s')"
created=
holder_pid=
holder_fd=

# The mark of scripts/lib's work databases, as shared/src/workdb.rs writes it: the
# creating session is this psql, which stays connected (reading its stdin) until the
# script ends; after a kill -9 its session ends, and the next rehearsal drops what is left.
start_holder() {
  local what="scratch database of scripts/rehearse.sh $env, dropped when it ends; with its creating session gone, that rehearsal was killed, and the next rehearsal drops it"
  coproc HOLDER {
    exec 2>"$PGW_WORK/holder.err" >/dev/null
    pgw_pg psql "$rehearsal_url" -X -q -v ON_ERROR_STOP=1 -v scratch="$scratch" -v what="$what"
  }
  # shellcheck disable=SC2153 # coproc sets HOLDER_PID
  holder_pid=$HOLDER_PID
  holder_fd=${HOLDER[1]}
  created=1
  printf '%s\n' \
    'CREATE DATABASE :"scratch" TEMPLATE template0;' \
    "SELECT format('COMMENT ON DATABASE %I IS %L', :'scratch', format('pgward work in progress: %s (started %s; creating session %s:%s)', :'what', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), pg_backend_pid(), floor(extract(epoch FROM backend_start) * 1000000)::bigint)) FROM pg_stat_activity WHERE pid = pg_backend_pid() \\gexec" \
    >&"$holder_fd"
}

# Waits until the scratch database carries the mark (the holder created and marked it);
# fails with the holder's error when it ended instead.
# shellcheck disable=SC2317 # run through pgw_command_step
await_marked() {
  local comment deadline=$(($(pgw_now_ms) + 60000))
  while [ "$(pgw_now_ms)" -lt "$deadline" ]; do
    comment=$(pgw_pg psql "$rehearsal_url" -X -q -t -A -v name="$scratch" 2>/dev/null \
      <<<"SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = :'name'" || true)
    [[ $comment == "pgward work in progress:"* ]] && return 0
    if ! kill -0 "$holder_pid" 2>/dev/null; then
      cat "$PGW_WORK/holder.err" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "the scratch database $scratch was not created within 60 s: CREATE DATABASE is waiting on the rehearsal server (see its pg_stat_activity and pg_locks)" >&2
  return 1
}

# shellcheck disable=SC2317 # run by the EXIT trap
drop_scratch() {
  [ -n "$created" ] || return 0
  pgw_command_step drop psql QUERY_FAILED \
    pgw_pg psql "$rehearsal_url" -X -q -v ON_ERROR_STOP=1 -v name="$scratch" <<<'DROP DATABASE IF EXISTS :"name" WITH (FORCE)'
  if [ "$STEP_RC" = 0 ]; then
    pgw_result scratch_dropped true
  else
    pgw_result scratch_dropped false
    pgw_warn SCRATCH_NOT_DROPPED "could not drop the scratch database $scratch on $rehearsal_server; the next rehearsal drops it, or drop it by hand: DROP DATABASE $scratch WITH (FORCE)"
  fi
  # The holder ends with its stdin.
  [ -z "$holder_fd" ] || exec {holder_fd}>&-
  [ -z "$holder_pid" ] || wait "$holder_pid" 2>/dev/null || true
}
pgw_on_cleanup drop_scratch

start_holder
pgw_command_step create psql QUERY_FAILED await_marked
[ "$STEP_RC" = 0 ] || pgw_fail_step

# --- restore, baseline, lint, deploy, checks --------------------------------------------
restore_flags=(--from "$from" --target-db "$scratch")
[ -n "$no_owner" ] && restore_flags+=(--no-owner)
rehearsal_step restore "$rehearsal_url" restore "${restore_flags[@]}"
[ "$STEP_RC" = 0 ] || pgw_fail_step
pgw_result backup "$(jq -c --argjson r "$(pgw_jq -c '{id: .result.backup, location: .result.location, source: .result.source}')" '. + $r' <<<"$(jq -c '.backup' "$PGW_WORK/result.json")")"
PGW_INTERRUPT_HINT="nothing of $env was touched; the scratch database $scratch is dropped"

# A backup taken before ENV's last deploy (migrate.sh takes one before each) lacks the
# migrations applied since: they are applied first, untraced, so that only what is
# pending on ENV is measured.
if [ -n "$env_head" ]; then
  rehearsal_step catch-up "$scratch_url" migrate deploy --dir "$migrations" --to "$env_head"
  [ "$STEP_RC" = 0 ] || pgw_fail_step
  pgw_result caught_up "$(pgw_jq -c '[(.result.applied // [])[].name]')"
fi

PGW_EXPECT=1 rehearsal_step baseline-schema "$scratch_url" validate schema --dir "$migrations"
[ "$STEP_RC" = 0 ] || [ "$STEP_RC" = 1 ] || pgw_fail_step
schema_before=$(schema_errors)
drift_before=
if [ -z "$no_drift" ]; then
  rehearsal_step baseline-drift "$scratch_url" validate drift --dir "$migrations"
  [ "$STEP_RC" = 0 ] || [ "$STEP_RC" = 3 ] || pgw_fail_step
  drift_before=$(drift_differences)
fi

PGW_EXPECT=1 rehearsal_step lint "$scratch_url" validate lint --dir "$migrations"
[ "$STEP_RC" = 0 ] || [ "$STEP_RC" = 1 ] || [ "$STEP_RC" = 3 ] || pgw_fail_step
lint_json=$STEP_JSON

deploy_flags=(--dir "$migrations" --trace)
[ -n "$budget" ] && deploy_flags+=(--max-lock "$budget")
rehearsal_step deploy "$scratch_url" migrate deploy "${deploy_flags[@]}"
deploy_json=$STEP_JSON
pgw_result deployed "$(pgw_jq -c '[(.result.applied // [])[].name]')"
pgw_detail '(.result.applied // [])[] | "  applied \(.name) (\(.duration_ms // 0) ms)"'
case $STEP_RC in
  0 | 3) ;;
  *)
    pgw_finish "$STEP_RC" "$(pgw_step_error | jq -c --arg env "$env" --arg s "$scratch" '
      .hint = "\(.hint // "see the messages above"); this happened on a restored copy of \($env) (\($s)), which is dropped: \($env) was not touched"')" ;;
esac
pgw_result relations "$(pgw_jq -c '.result.relations // []')"

rehearsal_step schema "$scratch_url" validate schema --dir "$migrations"
[ "$STEP_RC" = 0 ] || [ "$STEP_RC" = 1 ] || pgw_fail_step
added=$(new_lines "$schema_before" "$(schema_errors)")
if [ -n "$added" ]; then
  pgw_log_error "the migrations leave new schema errors on the copy:" "$(printf '  %s\n' "$added")"
  STEP_RC=1
  pgw_fail_step
fi
if [ -z "$no_drift" ]; then
  rehearsal_step drift "$scratch_url" validate drift --dir "$migrations"
  [ "$STEP_RC" = 0 ] || [ "$STEP_RC" = 3 ] || pgw_fail_step
  added=$(new_lines "$drift_before" "$(drift_differences)")
  if [ -n "$added" ]; then
    pgw_fail 1 DRIFT_AFTER_DEPLOY \
      "the migrations leave the copy different from what they produce on a replay ($(echo "$added" | wc -l) new difference(s): ${added//$'\n'/, })" \
      "result.steps (drift) lists each difference; a migration does something a replay does not (it depends on data, time or the role)" \
      "$(jq -nc '{step: "drift"}')"
  fi
fi

# --- the verdict ------------------------------------------------------------------------
# Each over_budget entry of the deploy has its LOCK_OVER_BUDGET warning (the same line,
# written by the same loop, in the same order); the lint findings of the same file and
# line name the rule that predicted it. missing-lock-timeout is about waiting for a lock,
# which a rehearsal does not measure, so it predicts no hold.
verdict=$(jq -c --slurpfile lint "$lint_json" --arg budget "$budget" '
  [(.warnings // [])[] | select(.code == "LOCK_OVER_BUDGET") | .message] as $lines
  | [($lint[0].result.findings // [])[] | select(.rule != "missing-lock-timeout")] as $findings
  | [(.result.over_budget // []) | to_entries[] | .key as $i | .value as $o
     | [$findings[] | select(.line == $o.position.line and ((.file // "") | (. == $o.file or endswith("/" + $o.file))))
        | {rule, fix}] as $rules
     | {file: $o.file, line: $o.position.line, statement: $o.statement, relation: $o.relation,
        mode: $o.mode, held_ms: $o.held_ms, blocks: $o.blocks, rewrite_bytes: ($o.rewrite.bytes // null),
        lint: $rules,
        text: ((($lines[$i] // "") | sub(", over the [^,]* budget$"; ""))
               + (if $rules == [] then "; no lint rule predicted it"
                  else "; see lint " + ([$rules[].rule] | unique | join(", ")) end))}]
  | {max_lock: (if $budget == "" then null else $budget end), over_budget: .,
     lines: [.[].text]}' "$deploy_json")
pgw_result verdict "$verdict"
count=$(jq '.over_budget | length' <<<"$verdict")

if [ -n "$markdown" ]; then
  jq -r --arg env "$env" --arg backup "$(jq -r '.backup.id // .backup.from' "$PGW_WORK/result.json")" '
    "### Rehearsal of \($env) on backup `\($backup)`: "
    + (if .max_lock == null then "no lock budget"
       elif (.over_budget | length) == 0 then "every lock within the \(.max_lock) budget"
       else "\(.over_budget | length) lock(s) over the \(.max_lock) budget" end),
    "",
    (.over_budget[] | "- \(.text | sub("^(?<f>[^ ]+:[0-9]+):"; "`\(.f)`:"))"),
    (if ([.over_budget[].lint[]] | length) > 0 then "", "Safe rewrites:",
       ([.over_budget[].lint[]] | unique_by(.rule)[] | "- `\(.rule)`: \(.fix)") else empty end)' \
    <<<"$verdict" >"$markdown"
  pgw_log "the verdict in Markdown: $markdown"
fi

if [ -z "$budget" ]; then
  pgw_log "no lock budget (no --max-lock, no max_lock, $env is not protected): the locks are in result.relations, nothing is judged"
  pgw_finish 0
fi
if [ "$count" = 0 ]; then
  pgw_log_always "verdict: every lock that blocks reads or writes is held less than $budget on a copy of $env's data"
  pgw_finish 0
fi
pgw_log_always "verdict: $count lock(s) held longer than $budget on a copy of $env's data:" \
  "$(jq -r '.lines[]' <<<"$verdict")"
pgw_finish 3
