# shellcheck shell=bash
# The fleet variants of scripts/migrate.sh and backup-cron.sh (sourced after common.sh):
# when the environment sets `fleet = "NAME"` in pgward.toml, each step runs over every
# target of [fleets.NAME] at once (`--fleet NAME`: parallel, canary, stop rules as the
# fleet says; docs/fleet.md), and each target's backups go into their own prefix,
# <backups>/<target> ({target}: host_port_database[_schema], see pgward_shared::fleet).
# A step's document is the fleet's: result.targets has every target's outcome.
# The functions read the sourcing script's options (env, dry_run, yes, force, deploy_args,
# backup_args, deep, keep_last, keep_days) and set common.sh's PGW_INTERRUPT_HINT.
# shellcheck disable=SC2154,SC2034

# Sets PGW_FLEET_LOCATION, the environment's first backup location with the per-target
# prefix, and PGW_FLEET_TO / PGW_FLEET_FROM, the --to / --from flags of every location
# (`backups = [...]`: each backup is copied to the others); ends the script with a usage
# error when the environment has none.
pgw_fleet_backups() {
  local backups=() b
  mapfile -t backups < <(jq -r '.result.backups // [] | .[]' "$PGW_SETTINGS")
  [ ${#backups[@]} -gt 0 ] || pgw_fail 2 USAGE "the fleet environment $env has no backups location" \
    "set backups = \"/path\" or \"s3://bucket/prefix\" (or a list of them) in [env.$env]: each target's backups go into <backups>/<target>"
  PGW_FLEET_LOCATION="${backups[0]%/}/{target}"
  PGW_FLEET_TO=()
  PGW_FLEET_FROM=()
  for b in "${backups[@]}"; do
    PGW_FLEET_TO+=(--to "${b%/}/{target}")
    PGW_FLEET_FROM+=(--from "${b%/}/{target}")
  done
}

# Logs one line per target of the last step whose outcome is not ok.
pgw_fleet_detail() {
  pgw_detail '"\(.result.summary.total) target(s): \(.result.summary.ok) ok, \(.result.summary.attention) need attention, \(.result.summary.failed) failed, \(.result.summary.unreachable) unreachable, \(.result.summary.not_started) not started\(if .result.summary.stopped then " (\(.result.summary.stopped))" else "" end)"'
  pgw_detail '.result.targets[]? | select(.outcome != "ok") | "  #\(.index) \(.target): \(.outcome)\(if .error then " \(.error.code): \(.error.message)" else "" end)"'
}

# migrate.sh deploy over a fleet: status -> backup of every target into its prefix ->
# verify -> deploy (canary and stop rules of the fleet) -> for each target whose deploy
# committed part of a migration: its own backup restored when auto_restore = true, else
# the command printed. Exit code: the deploy's (the fleet's most serious target's).
pgw_fleet_deploy() {
  local fleet=$1 location flags=() restores=() auto
  pgw_need_tools migrate backup restore
  pgw_result fleet "$(jq -n --arg f "$fleet" '$f')"
  pgw_step status migrate status --fleet "$fleet"
  pgw_fleet_detail
  case $STEP_RC in
    0) pgw_log "nothing to deploy: every target is up to date"; pgw_result deployed '{}'; pgw_finish 0 ;;
    3) ;;
    *) pgw_fail_step ;;
  esac
  pgw_fleet_backups
  location=$PGW_FLEET_LOCATION
  if [ -z "$dry_run" ]; then
    pgw_step backup backup backup --fleet "$fleet" "${PGW_FLEET_TO[@]}" --label "migrate.sh deploy $env" --stop-after-failures never
    pgw_fleet_detail
    [ "$STEP_RC" = 0 ] || pgw_fail_step
    pgw_result backup "$(pgw_jq -c '[.result.targets[] | {index, target, id: .result.id, location: .result.location}]')"
    pgw_step verify backup verify latest --fleet "$fleet" "${PGW_FLEET_FROM[@]}" --stop-after-failures never
    pgw_fleet_detail
    [ "$STEP_RC" = 0 ] || pgw_fail_step
    PGW_INTERRUPT_HINT="targets deployed before the interrupt stay deployed; each target's backup from before this run is the latest in $location (restore one: pgward-restore --env $env --fleet $fleet --only INDEX --from '$location/latest' --clean)"
  fi
  flags=("${deploy_args[@]}")
  [ -n "$yes" ] && flags+=(--yes)
  [ -n "$dry_run" ] && flags+=(--dry-run)
  pgw_step deploy migrate deploy --fleet "$fleet" "${flags[@]}"
  pgw_fleet_detail
  pgw_result deployed "$(pgw_jq -c '[.result.targets[]? | {index, target, outcome, applied: [(.result.applied // [])[].name]}]')"
  [ "$STEP_RC" = 0 ] && pgw_finish 0
  [ -n "$dry_run" ] && pgw_fail_step
  local failed_rc=$STEP_RC failed_error partial
  failed_error=$(pgw_step_error)
  # The targets whose deploy committed part of its failing migration: the single-database
  # rule, target by target.
  mapfile -t partial < <(pgw_jq '.result.targets[] | select(.error.code == "MIGRATION_FAILED" and .error.details.partly_committed == true) | .index')
  if [ ${#partial[@]} = 0 ]; then
    pgw_log_error "no target holds part of a failed migration: nothing is restored; targets that failed keep their history (resolve, then deploy again)"
    pgw_result restored '[]'
    pgw_fail_step
  fi
  auto=$(pgw_setting auto_restore)
  pgw_result auto_restore "$([ "$auto" = true ] && echo true || echo false)"
  local i cmd
  for i in "${partial[@]}"; do
    cmd=$(printf 'pgward-restore --env %q --fleet %q --only %s --from %q --clean' "$env" "$fleet" "$i" "$location/latest")
    if [ "$auto" != true ]; then
      pgw_log_error "target #$i committed part of a migration; NOT restored (auto_restore is off for $env): $cmd"
      restores+=("$(jq -nc --argjson i "$i" --arg cmd "$cmd" '{index: $i, restored: false, restore_command: $cmd}')")
      continue
    fi
    local rflags=(--fleet "$fleet" --only "$i" --from "$location/latest" --clean)
    [ -n "$force" ] && rflags+=(--force)
    pgw_step "restore-$i" restore "${rflags[@]}"
    pgw_fleet_detail
    restores+=("$(jq -nc --argjson i "$i" --argjson rc "$STEP_RC" --arg cmd "$cmd" '{index: $i, restored: ($rc == 0), restore_command: $cmd}')")
    [ "$STEP_RC" = 0 ] || pgw_log_error "RESTORE FAILED for target #$i: restore it by hand: $cmd"
  done
  pgw_result restored "$(printf '%s\n' "${restores[@]}" | jq -sc .)"
  pgw_finish "$failed_rc" "$(jq -c --arg n "${#partial[@]}" --arg auto "$auto" '
    .hint = "\(.hint // ""); \($n) target(s) committed part of a migration: \(if $auto == "true" then "each was restored from its own backup taken before this run (result.restored)" else "not restored, auto_restore is off; result.restored has each restore command" end)"' <<<"$failed_error")"
}

# backup-cron.sh over a fleet: backup every target into its prefix -> verify each -> prune
# each prefix. Every step runs on every target (one failing database does not cost the
# others their backup); the exit code is the first failing step's.
pgw_fleet_backup_cron() {
  local fleet=$1 first_rc=0 first_error=null
  pgw_need_tools backup
  pgw_result fleet "$(jq -n --arg f "$fleet" '$f')"
  pgw_fleet_backups
  keep() {
    if [ "$STEP_RC" != 0 ] && [ "$first_rc" = 0 ]; then
      first_rc=$STEP_RC
      first_error=$(pgw_step_error)
    fi
  }
  pgw_step backup backup backup --fleet "$fleet" "${PGW_FLEET_TO[@]}" "${backup_args[@]}" --stop-after-failures never
  pgw_fleet_detail
  keep
  pgw_result backup "$(pgw_jq -c '[.result.targets[]? | {index, target, outcome, id: .result.id, location: .result.location, size_bytes: .result.size_bytes}]')"
  local verify_args=(latest "${PGW_FLEET_FROM[@]}")
  [ -n "$deep" ] && verify_args+=(--deep)
  pgw_step verify backup verify "${verify_args[@]}" --fleet "$fleet" --stop-after-failures never
  pgw_fleet_detail
  keep
  # prune_args: backup-cron.sh's rules (flags, the environment's retention, or its default).
  pgw_step prune backup prune "${PGW_FLEET_FROM[@]}" "${prune_args[@]}" --fleet "$fleet" --stop-after-failures never
  pgw_fleet_detail
  keep
  pgw_result pruned "$(pgw_jq -c '[.result.targets[]? | {index, deleted: [(.result.deleted // [])[] | if type == "object" then .id else . end]}]')"
  pgw_finish "$first_rc" "$first_error"
}
