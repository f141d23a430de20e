#!/usr/bin/env bash
# backup-cron.sh: the nightly backup of one environment of pgward.toml, made for cron:
# backup -> verify it -> prune old backups -> report the inventory.
#
# Usage:
#   scripts/backup-cron.sh ENV [--keep-last N] [--keep-days D] [--keep-daily N]
#                          [--keep-weekly N] [--keep-monthly N] [--max-age AGE] [--deep]
#                          [--jobs N] [--label TEXT] [--sse MODE] [--force]
#                          [--config PATH] [-q]
#
# ENV is an environment of pgward.toml (its database_url_env and backups location); it
# defaults to $PGWARD_ENV. Run from the folder holding pgward.toml, or pass --config.
# The binaries come from $PGWARD_BIN (a folder), else PATH; jq is needed.
#
# Steps:
#   backup  pgward-backup backup [--jobs N] [--label TEXT, default "backup-cron.sh"] [--sse]
#   verify  pgward-backup verify ID --from LOCATION [--deep: restore into a scratch database
#           and compare row counts; needs CREATEDB]
#   prune   pgward-backup prune with the --keep-* flags given; without any, the
#           environment's [env.ENV.retention] of pgward.toml; without that either,
#           --keep-last 7 --keep-days 14. Never removes the newest verified backup. In a protected environment pruning is a
#           destructive action: pass --force (cron has no terminal to ask on), else exit 6.
#   report  pgward-report backups --max-age AGE (default 26h): the inventory; exit 3 when
#           the newest backup is older than AGE.
#
# A fleet environment (`fleet = "NAME"` in [env.ENV], docs/fleet.md): backup, verify and
# prune run over every target, each into its own prefix <backups>/<target>, every step on
# every target; no report step (pgward-report backups --from <backups>/<target> per target).
#
# Exit code: the first failing step's (0 ok, 1 failed, 2 usage, 3 newest backup too old,
# 4 cannot connect, 5 corrupt backup, 6 refused, 7 storage, 130 interrupted).
# stdout: one JSON document when the script ends (tool "backup-cron.sh"; result.backup,
# result.pruned, result.steps), see scripts/lib/common.sh. stderr: one timestamped line
# per step, and the binaries' own lines.
# pgward.toml's notify_url / notify_on: one notification per run (default: failures and
# needs-attention); log_dir: a 0600 log file per run, pruned after log_keep_days.
#
# Examples:
#   PRODUCTION_DATABASE_URL=postgresql://app:secret@db/app scripts/backup-cron.sh production --force
#   scripts/backup-cron.sh staging --keep-last 3 --keep-days 7 --deep
# crontab (03:15 UTC every night; stdout, the JSON, appended to a file one line per run):
#   15 3 * * * cd /srv/app && . /etc/pgward/env && PGWARD_BIN=/opt/pgward/bin /opt/pgward/scripts/backup-cron.sh production --keep-last 14 --keep-days 30 --force -q >>/var/log/pgward/backup-cron.jsonl 2>>/var/log/pgward/backup-cron.log
set -euo pipefail
# shellcheck source=lib/common.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib/common.sh"
# shellcheck source=lib/fleet.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib/fleet.sh"

pgw_start backup-cron.sh run

env=${PGWARD_ENV:-}
env_given=
prune_args=()
max_age=26h
deep=
force=
backup_args=()
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) pgw_help ;;
    -q | --quiet) PGW_QUIET=1 ;;
    --config) [ $# -ge 2 ] || pgw_usage_error "--config needs a path"; PGW_GLOBAL+=(--config "$2"); shift ;;
    --keep-last | --keep-days | --keep-daily | --keep-weekly | --keep-monthly)
      [ $# -ge 2 ] || pgw_usage_error "$1 needs a number"; prune_args+=("$1" "$2"); shift ;;
    --max-age) [ $# -ge 2 ] || pgw_usage_error "--max-age needs a duration"; max_age=$2; shift ;;
    --deep) deep=1 ;;
    --force) force=1 ;;
    --jobs | --label | --sse)
      [ $# -ge 2 ] || pgw_usage_error "$1 needs a value"; backup_args+=("$1" "$2"); shift ;;
    -*) pgw_usage_error "unknown option $1" ;;
    *)
      [ -z "$env_given" ] || pgw_usage_error "unexpected argument $1"
      env=$1 env_given=1 ;;
  esac
  shift
done
[ -n "$env" ] || pgw_usage_error "name the environment of pgward.toml (or set PGWARD_ENV)"
[[ " ${backup_args[*]} " == *" --label "* ]] || backup_args+=(--label backup-cron.sh)
PGW_GLOBAL+=(--env "$env")
[ -n "${PGW_QUIET:-}" ] && PGW_GLOBAL+=(--quiet)
PGW_LOG_CONTEXT=$env
pgw_result env "$(jq -n --arg e "$env" '$e')"
pgw_need_tools backup report
pgw_load_settings
# No flag and no [env.ENV.retention]: the script's own default rules.
[ ${#prune_args[@]} -gt 0 ] || [ -n "$(pgw_setting retention)" ] || prune_args=(--keep-last 7 --keep-days 14)
[ -n "$force" ] && prune_args+=(--force)
fleet=$(pgw_setting fleet)
[ -z "$fleet" ] || pgw_fleet_backup_cron "$fleet"

pgw_step backup backup backup "${backup_args[@]}"
# A backup complete in the first location whose copy to another failed (S3 down): the run
# goes on with the first copy (verified, and every location pruned that can be, so a long
# outage does not fill the host's disk) and ends with the copy's failure.
copy_rc=0 copy_error=null
if [ "$STEP_RC" != 0 ]; then
  [ "$(pgw_jq '.error.code // empty')" = BACKUP_COPY_FAILED ] || pgw_fail_step
  copy_rc=$STEP_RC
  copy_error=$(pgw_step_error)
fi
id=$(pgw_jq .result.id)
pgw_result backup "$(pgw_jq -c '.result | {id, location, size_bytes, rows, tables: (.tables | length), copies: [(.copies // [])[] | .location]}')"
pgw_detail '"backup \(.result.id) at \(.result.location): \(.result.rows) rows, \(.result.size_bytes) bytes"'

# Every location of the environment's `backups`: each copy is checked (after a failed
# copy, the first location's alone).
verify_args=("$id")
[ "$copy_rc" = 0 ] || verify_args+=(--from "$(pgw_jq .result.location)")
[ -n "$deep" ] && verify_args+=(--deep)
pgw_step verify backup verify "${verify_args[@]}"
[ "$STEP_RC" = 0 ] || pgw_fail_step

pgw_step prune backup prune "${prune_args[@]}"
# A location the copy could not reach cannot be pruned either: the copy's failure says it.
[ "$STEP_RC" = 0 ] || [ "$copy_rc" != 0 ] || pgw_fail_step
pgw_result pruned "$(pgw_jq -c '[(.result.deleted // [])[] | if type == "object" then .id else . end]')"
pgw_detail '"pruned \(.result.deleted | length) backup(s), kept \(.result.kept | length)"'
[ "$copy_rc" = 0 ] || pgw_finish "$copy_rc" "$copy_error"

pgw_step report report backups --max-age "$max_age"
pgw_detail '"\(.result.count) backup(s), \(.result.total_bytes) bytes\(if .result.newest then "; the newest, \(.result.newest.id), is \(.result.newest.age_s | floor) s old" else "" end)"'
pgw_finish "$STEP_RC" "$(pgw_step_error)"
