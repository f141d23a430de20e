#!/usr/bin/env bash
# maintenance.sh: VACUUM (ANALYZE) the tables of one environment of pgward.toml that
# `pgward-report health` says are due (autovacuum's own thresholds: a table that stays due
# is one autovacuum cannot keep up with, or one it is switched off for).
#
# Usage:
#   scripts/maintenance.sh ENV [--dry-run] [--lock-timeout D] [--database-url URL]
#                          [--config PATH] [-q]
#
# ENV is an environment of pgward.toml; it defaults to $PGWARD_ENV. Run from the folder
# holding pgward.toml, or pass --config. psql connects with --database-url, else the
# variable the environment's `database_url_env` names, else $DATABASE_URL, else the libpq
# PG* variables; the password goes to psql through PGPASSWORD, never its command line.
# The binaries come from $PGWARD_BIN (a folder), else PATH; jq and psql (from
# $PGWARD_PG_BINDIR, else PATH) are needed.
#
# Steps:
#   health              pgward-report health: result.maintenance_due lists the tables
#   vacuum SCHEMA.TABLE for each due table, one psql session: SET lock_timeout (default
#                       5s, so a table a migration holds is not waited on for ever), then
#                       VACUUM (ANALYZE) when VACUUM is due, ANALYZE when only ANALYZE is
#   --dry-run lists the tables and what each would get, and runs nothing.
#
# Exit code: the first failing step's (0 ok, 1 a VACUUM or ANALYZE failed, e.g. on
# lock_timeout, 2 usage, 4 cannot connect, 130 interrupted).
# stdout: one JSON document when the script ends (tool "maintenance.sh"; result.due and
# result.maintained name the tables; result.steps), see scripts/lib/common.sh. stderr: one
# timestamped line per step.
# pgward.toml's notify_url / notify_on: one notification per run (default: failures and
# needs-attention); log_dir: a 0600 log file per run, pruned after log_keep_days.
#
# Examples:
#   PRODUCTION_DATABASE_URL=postgresql://app:secret@db/app scripts/maintenance.sh production
#   scripts/maintenance.sh staging --dry-run | jq -r '.result.due[] | "\(.schema).\(.table)"'
# crontab (Sundays 04:30):
#   30 4 * * 0 cd /srv/app && . /etc/pgward/env && /opt/pgward/scripts/maintenance.sh production -q >>/var/log/pgward/maintenance.jsonl 2>>/var/log/pgward/maintenance.log
set -euo pipefail
# shellcheck source=lib/common.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib/common.sh"

pgw_start maintenance.sh run

env=${PGWARD_ENV:-}
env_given=
url=
dry_run=
lock_timeout=5s
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) pgw_help ;;
    -q | --quiet) PGW_QUIET=1 ;;
    --config) [ $# -ge 2 ] || pgw_usage_error "--config needs a path"; PGW_GLOBAL+=(--config "$2"); shift ;;
    --database-url) [ $# -ge 2 ] || pgw_usage_error "--database-url needs a URL"; url=$2; shift ;;
    --lock-timeout) [ $# -ge 2 ] || pgw_usage_error "--lock-timeout needs a duration"; lock_timeout=$2; shift ;;
    --dry-run) dry_run=1 ;;
    -*) pgw_usage_error "unknown option $1" ;;
    *)
      [ -z "$env_given" ] || pgw_usage_error "unexpected argument $1"
      env=$1 env_given=1 ;;
  esac
  shift
done
[ -n "$env" ] || pgw_usage_error "name the environment of pgward.toml (or set PGWARD_ENV)"
[[ $lock_timeout =~ ^[0-9]+(ms|s|min|h)?$ ]] || pgw_usage_error "--lock-timeout takes a duration like 5s, 500ms or 2min"
PGW_GLOBAL+=(--env "$env")
[ -n "${PGW_QUIET:-}" ] && PGW_GLOBAL+=(--quiet)
PGW_LOG_CONTEXT=$env
pgw_result env "$(jq -n --arg e "$env" '$e')"
pgw_result dry_run "$([ -n "$dry_run" ] && echo true || echo false)"
pgw_need_tools report
[ -n "$dry_run" ] || pgw_need_pg_tools psql
# Refuses (CONFIG_INVALID, exit 2) a database_url_env that is not a variable name, so the
# ${!var} below never expands anything else.
pgw_load_settings
url_var=$(pgw_setting database_url_env)

# The URL psql uses, as the binaries pick theirs: the flag, the environment's variable,
# DATABASE_URL; empty means libpq's PG* variables.
if [ -n "$url" ]; then
  # To the binaries through the environment, never on their command lines (which any
  # user on the machine can read): the environment's own variable, else DATABASE_URL.
  export "${url_var:-DATABASE_URL}=$url"
else
  if [ -n "$url_var" ]; then
    url=${!url_var:-}
  fi
  url=${url:-${DATABASE_URL:-}}
fi

pgw_step health report health
[ "$STEP_RC" = 0 ] || [ "$STEP_RC" = 3 ] || pgw_fail_step
pgw_result due "$(pgw_jq -c '[.result.maintenance_due[]? | {schema, table, vacuum, analyze, dead_rows, modified_since_analyze}]')"
mapfile -t due < <(pgw_jq '.result.maintenance_due[]? | [.schema, .table, (if .vacuum then "VACUUM (ANALYZE)" else "ANALYZE" end)] | @tsv')
if [ ${#due[@]} = 0 ]; then
  pgw_log "no table is due for VACUUM or ANALYZE"
  pgw_result maintained '[]'
  pgw_finish 0
fi
pgw_detail '"due: " + ([.result.maintenance_due[] | "\(.schema).\(.table) (\(if .vacuum then "vacuum, \(.dead_rows) dead rows" else "analyze, \(.modified_since_analyze) rows changed" end))"] | join(", "))'
[ -n "$dry_run" ] && pgw_finish 0

# psql on the chosen URL, or on the PG* variables.
# shellcheck disable=SC2317 # run through pgw_command_step
run_psql() {
  if [ -n "$url" ]; then
    pgw_pg psql "$url" "$@"
  else
    "$(pgw_pg_tool psql)" "$@"
  fi
}

done_json='[]'
for row in "${due[@]}"; do
  IFS=$'\t' read -r schema table action <<<"$row"
  ident="\"${schema//\"/\"\"}\".\"${table//\"/\"\"}\""
  pgw_command_step "vacuum $schema.$table" psql QUERY_FAILED \
    run_psql -X -q -v ON_ERROR_STOP=1 -c "SET lock_timeout = '$lock_timeout'" -c "$action $ident"
  [ "$STEP_RC" = 0 ] || pgw_fail_step
  done_json=$(jq -c --arg s "$schema" --arg t "$table" --arg a "$action" '. + [{schema: $s, table: $t, action: $a}]' <<<"$done_json")
  pgw_result maintained "$done_json"
done
pgw_log "${#due[@]} table(s) vacuumed or analyzed"
pgw_finish 0
