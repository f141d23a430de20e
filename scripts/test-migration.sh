#!/usr/bin/env bash
# test-migration.sh: tries the whole migrations folder on a scratch database, CI's check
# that every migration applies and every down.sql really undoes its migration.
#
# Usage:
#   scripts/test-migration.sh [--database-url URL] [--dir DIR] [--config PATH] [--keep] [-q]
#
# The scratch database `pgward_test_<pid>_<random>` is created on the server of
# --database-url (default $DATABASE_URL; the role needs CREATEDB) and dropped again when
# the script ends, also when a step fails or on Ctrl-C (--keep leaves it, for a look).
# Every step gets the scratch database's URL in DATABASE_URL (never on a command line, where
# other users could read its password; psql and pg_dump get it in PGPASSWORD); the
# migrations folder is --dir,
# else pgward.toml's `migrations`, else prisma/migrations. PGWARD_ENV is ignored: the
# scratch database belongs to no environment.
# The binaries come from $PGWARD_BIN (a folder), else PATH; jq, psql and pg_dump (from
# $PGWARD_PG_BINDIR, else PATH) are needed.
#
# Steps:
#   create     CREATE DATABASE on the server (psql)
#   plan       pgward-migrate deploy --dry-run: every migration, in Prisma's order
#   then, for every migration with a down.sql, in order:
#     deploy up to the one before it; schema dump (pg_dump -s); deploy --to it; dump;
#     rollback (its down.sql); dump: differs from the dump before it -> warning
#     DOWN_SQL_INCOMPLETE; deploy --to it again; dump: must equal the first dump after it
#     (else SCHEMA_CHANGED, exit 1)
#   deploy     the rest of the migrations
#   schema     pgward-validate schema
#   drop       DROP DATABASE ... WITH (FORCE)
#
# Exit code: the first failing step's (0 ok, 1 a migration, a down.sql or the comparison
# failed or schema found errors, 2 usage, 4 cannot connect, 130 interrupted).
# stdout: one JSON document when the script ends (tool "test-migration.sh";
# result.scratch_database, result.migrations, result.tested_down_sql, result.steps), see
# scripts/lib/common.sh. stderr: one timestamped line per step.
#
# Examples:
#   DATABASE_URL=postgresql://postgres:secret@localhost:5432/postgres scripts/test-migration.sh
#   scripts/test-migration.sh --database-url "$CI_DATABASE_URL" --dir prisma/migrations | jq .result
set -euo pipefail
# shellcheck source=lib/common.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib/common.sh"

pgw_start test-migration.sh run

url=${DATABASE_URL:-}
dir_args=()
keep=
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) pgw_help ;;
    -q | --quiet) PGW_QUIET=1 ;;
    --config) [ $# -ge 2 ] || pgw_usage_error "--config needs a path"; PGW_GLOBAL+=(--config "$2"); shift ;;
    --database-url) [ $# -ge 2 ] || pgw_usage_error "--database-url needs a URL"; url=$2; shift ;;
    --dir) [ $# -ge 2 ] || pgw_usage_error "--dir needs a folder"; dir_args=(--dir "$2"); shift ;;
    --keep) keep=1 ;;
    *) pgw_usage_error "unexpected argument $1" ;;
  esac
  shift
done
[ -n "$url" ] || pgw_fail 2 NO_DATABASE_URL "no database URL: the scratch database is created on its server" \
  "pass --database-url postgresql://USER:PASSWORD@HOST:PORT/DB or set DATABASE_URL"
pgw_url_parse "$url" || pgw_fail 2 INVALID_DATABASE_URL \
  "the database URL is not a postgresql:// URL (not shown: it may hold a password)" \
  "write it as postgresql://USER:PASSWORD@HOST:5432/postgres (password percent-encoded); a libpq key=value string is not accepted"
unset PGWARD_ENV
[ -n "${PGW_QUIET:-}" ] && PGW_GLOBAL+=(--quiet)
pgw_need_tools migrate validate
pgw_need_pg_tools psql pg_dump

scratch=pgward_test_$$_$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')
scratch_url=$(pgw_url_with_db "$url" "$scratch")
# Every step finds the scratch database in DATABASE_URL: on a command line its password
# would be readable by any user of the machine (ps, /proc/PID/cmdline).
export DATABASE_URL=$scratch_url
PGW_LOG_CONTEXT=$scratch
pgw_result scratch_database "$(jq -n --arg s "$scratch" '$s')"

created=
# shellcheck disable=SC2317 # run by the EXIT trap
drop_scratch() {
  [ -n "$created" ] || return 0
  if [ -n "$keep" ]; then
    pgw_log "--keep: the scratch database $scratch stays; drop it with DROP DATABASE $scratch"
    return 0
  fi
  pgw_command_step drop psql QUERY_FAILED \
    pgw_pg psql "$url" -X -q -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $scratch WITH (FORCE)"
  if [ "$STEP_RC" != 0 ]; then
    pgw_warn SCRATCH_NOT_DROPPED "could not drop the scratch database $scratch; drop it by hand"
  fi
}
pgw_on_cleanup drop_scratch

pgw_command_step create psql QUERY_FAILED \
  pgw_pg psql "$url" -X -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE $scratch TEMPLATE template0"
[ "$STEP_RC" = 0 ] || pgw_fail_step
created=1

# The schema of the scratch database as pg_dump prints it, minus the \restrict lines whose
# random key differs on every run (newer pg_dump releases print them), and without the
# history table (its rows are data, but the table appears with the first deploy).
# shellcheck disable=SC2317 # run through pgw_command_step
dump_schema() {
  pgw_pg pg_dump "$scratch_url" --schema-only --exclude-table='*._prisma_migrations' | grep -v -e '^\\restrict ' -e '^\\unrestrict '
}

# schema_diff A B LINES: the first LINES lines of the unified diff of two dumps.
schema_diff() {
  diff -u --label "$1" --label "$2" "$PGW_WORK/$1" "$PGW_WORK/$2" | head -n "$3" || true
}

# pgw_step, stopping the script unless the step succeeded.
must() {
  pgw_step "$@"
  [ "$STEP_RC" = 0 ] || pgw_fail_step
}

# pg_dump into FILE as a recorded step.
dump_step() {
  pgw_command_step "$1" pg_dump PG_DUMP_FAILED dump_schema
  [ "$STEP_RC" = 0 ] || pgw_fail_step
  cp "$STEP_OUT" "$2"
}

must plan migrate deploy --dry-run "${dir_args[@]}"
migrations_dir=$(pgw_jq .result.migrations_dir)
mapfile -t names < <(pgw_jq '.result.applied[].name')
pgw_result migrations "$(pgw_jq -c '[.result.applied[].name]')"
pgw_log "${#names[@]} migration(s) in $migrations_dir"

tested=()
deployed_to=
for i in "${!names[@]}"; do
  name=${names[$i]}
  [ -f "$migrations_dir/$name/down.sql" ] || continue
  if [ "$i" -gt 0 ] && [ "$deployed_to" = "${names[$((i - 1))]}" ]; then
    # Nothing was deployed since the last dump.
    cp "$PGW_WORK/redeployed.sql" "$PGW_WORK/before.sql"
  else
    if [ "$i" -gt 0 ]; then
      must "deploy-to-${names[$((i - 1))]}" migrate deploy --to "${names[$((i - 1))]}" "${dir_args[@]}"
    fi
    dump_step "dump-before-$name" "$PGW_WORK/before.sql"
  fi
  must "deploy-$name" migrate deploy --to "$name" "${dir_args[@]}"
  dump_step "dump-after-$name" "$PGW_WORK/after.sql"
  must "rollback-$name" migrate rollback "${dir_args[@]}"
  dump_step "dump-rolled-back-$name" "$PGW_WORK/rolled-back.sql"
  if ! cmp -s "$PGW_WORK/before.sql" "$PGW_WORK/rolled-back.sql"; then
    pgw_warn DOWN_SQL_INCOMPLETE "$name: the schema after its down.sql differs from the schema before it: $(diff "$PGW_WORK/before.sql" "$PGW_WORK/rolled-back.sql" | grep -c '^[<>]') line(s) differ"
    pgw_log_error "$(schema_diff before.sql rolled-back.sql 40)"
  fi
  pgw_step "redeploy-$name" migrate deploy --to "$name" "${dir_args[@]}"
  if [ "$STEP_RC" != 0 ]; then
    pgw_finish "$STEP_RC" "$(pgw_step_error | jq -c --arg m "$name" --arg d "$migrations_dir" \
      '.hint = "\($m) could not be deployed again after its down.sql ran: down.sql does not undo migration.sql; fix \($d)/\($m)/down.sql"')"
  fi
  dump_step "dump-redeployed-$name" "$PGW_WORK/redeployed.sql"
  if ! cmp -s "$PGW_WORK/after.sql" "$PGW_WORK/redeployed.sql"; then
    pgw_log_error "$(schema_diff after.sql redeployed.sql 60)"
    pgw_fail 1 SCHEMA_CHANGED \
      "$name: the schema after rolling it back and deploying it again differs from the schema after its first deploy" \
      "its down.sql does not undo migration.sql exactly (see the diff above); fix $migrations_dir/$name/down.sql" \
      "$(jq -nc --arg m "$name" '{migration: $m}')"
  fi
  tested+=("$name")
  deployed_to=$name
  pgw_log "$name: rolled back and deployed again, the schema is the same"
done
pgw_result tested_down_sql "$(printf '%s\n' "${tested[@]}" | jq -Rsc 'split("\n") | map(select(. != ""))')"

must deploy migrate deploy "${dir_args[@]}"
must schema validate schema "${dir_args[@]}"
pgw_detail '.result.findings[]? | "  \(.severity) \(.rule) \(.object // ""): \(.message)"'
pgw_log "${#names[@]} migration(s) deployed, ${#tested[@]} down.sql tested"
pgw_finish 0
