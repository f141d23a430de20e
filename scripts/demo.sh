#!/usr/bin/env bash
# The README's demo: install what is missing, build pgward, start a throwaway local
# PostgreSQL, and walk the workflow pgward is for on a small app database:
#   1. an app database with data (the example's first two migrations, users and orders)
#   2. pgward-migrate status: two migrations pending
#   3. pgward-validate lint of a pending migration, one finding in the text view
#   4. scripts/migrate.sh deploy: preflight, a verified backup, lint, deploy, checks
#   5. a new migration that fails halfway, and what migrate.sh does about it (the
#      environment sets auto_restore: the backup it took is restored, the data kept)
#      then the fix, deployed
#   6. pgward-report migrations --format html, written to a file whose path it prints
#   7. scripts/rehearse.sh: a new migration rehearsed on a restored copy of the newest
#      verified backup, its locks measured, a one-line verdict per lock over the budget
# Removes the cluster and everything else it created under /tmp when it ends.
#
# PGWARD_BIN=FOLDER uses the pgward-* binaries in FOLDER and skips the build (the test
# that runs this demo sets it). PGWARD_DEMO_OUT=FOLDER: where the HTML report is written
# (default target/demo).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/cluster.sh

. scripts/lib/install.sh
pgw_install demo
if [ -z "${PGWARD_BIN:-}" ]; then
  echo "== building pgward" >&2
  cargo build --workspace --quiet
  PGWARD_BIN=$PWD/target/debug
fi
PGWARD_BIN=$(cd "$PGWARD_BIN" && pwd)
export PGWARD_BIN
out_dir=${PGWARD_DEMO_OUT:-$PWD/target/demo}
mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
repo=$PWD
migrate() { "$PGWARD_BIN/pgward-migrate" "$@"; }

started=$SECONDS
dir=$(mktemp -d /tmp/pgward-demo.XXXXXX)
pg_cluster_start "$dir" "$(free_port)"
psql -q -d postgres -c "CREATE DATABASE demo"
DATABASE_URL="postgresql://postgres@$(printf %s "$dir" | jq -sRr @uri):$PGPORT/demo"
export DATABASE_URL
# The rehearsal server: this same throwaway server (so rehearse.sh needs --yes).
REHEARSAL_URL="postgresql://postgres@$(printf %s "$dir" | jq -sRr @uri):$PGPORT/postgres"
export REHEARSAL_URL
step() { echo >&2; echo "== $*" >&2; }

# The app: a project folder with pgward.toml (one environment, backups beside it) and a
# copy of the example migrations.
app=$dir/app
mkdir -p "$app/prisma"
cp -r examples/prisma/migrations "$app/prisma/migrations"
cat >"$app/pgward.toml" <<'EOF'
migrations = "prisma/migrations"

[env.demo]
database_url_env = "DATABASE_URL"
backups = "backups"
auto_restore = true
rehearsal_url_env = "REHEARSAL_URL"
EOF
cd "$app"

step "1. an app database with data: the first two migrations deployed, 2000 users, 10000 orders"
migrate deploy --env demo --to 20260105120000_add_orders -q | jq -c '{ok, applied: [.result.applied[].name]}'
psql -q -v ON_ERROR_STOP=1 -d demo <<'EOF'
INSERT INTO "User" (email, name)
  SELECT 'user' || i || '@example.com', (ARRAY['Ada', 'Grace', 'Linus', 'Edsger'])[1 + i % 4] FROM generate_series(1, 2000) i;
INSERT INTO "Order" ("userId", "totalCents") SELECT 1 + i % 2000, i * 7 % 10000 FROM generate_series(1, 10000) i;
EOF
echo "users: $(psql -tA -d demo -c 'SELECT count(*) FROM "User"'), orders: $(psql -tA -d demo -c 'SELECT count(*) FROM "Order"')"

step "2. pgward-migrate status --format text: the two newer migrations are pending (exit 3)"
set +e; migrate status --env demo --format text; echo "exit $?"; set -e

lint_file=prisma/migrations/20260110080000_index_orders_created_at/migration.sql
step "3. pgward-validate lint $lint_file --format text: one finding, with why and how to fix it"
"$PGWARD_BIN/pgward-validate" lint "$lint_file" --env demo --format text

step "4. scripts/migrate.sh deploy demo: status, preflight, baseline checks, backup, verify, lint, deploy, schema, drift, status"
"$repo/scripts/migrate.sh" deploy demo | jq -c '{ok, exit_code, backup: .result.backup.id, deployed: .result.deployed,
  steps: [.result.steps[] | "\(.step)=\(.exit_code)"]}'

step "5. a new migration that fails halfway (duplicate names make its unique index fail after the column was added and filled)"
mkdir prisma/migrations/20260120090000_add_user_handle
cat >prisma/migrations/20260120090000_add_user_handle/migration.sql <<'EOF'
-- Every user gets a unique handle: a new column, filled from the name, then a unique
-- index built without blocking writes (so this file runs statement by statement).
SET lock_timeout = '5s';
ALTER TABLE "User" ADD COLUMN "handle" TEXT;
UPDATE "User" SET "handle" = lower("name");
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "User_handle_key" ON "User"("handle");
EOF
set +e
"$repo/scripts/migrate.sh" deploy demo >"$dir/failed.json"
rc=$?
set -e
jq -c '{ok, exit_code, error: .error.code, restored: .result.restored,
  steps: [.result.steps[] | "\(.step)=\(.exit_code)"]}' "$dir/failed.json"
echo "exit $rc; the hint: $(jq -r .error.hint "$dir/failed.json")"
step "   after the automatic restore: the half-applied migration is gone (no \"handle\" column), the data is kept, the migration is pending"
echo "\"handle\" columns: $(psql -tA -d demo -c "SELECT count(*) FROM information_schema.columns WHERE table_name = 'User' AND column_name = 'handle'")," \
  "users: $(psql -tA -d demo -c 'SELECT count(*) FROM "User"'), orders: $(psql -tA -d demo -c 'SELECT count(*) FROM "Order"')"
set +e; migrate status --env demo --format text; echo "exit $?"; set -e

step "   the fix: handles made unique with the id; scripts/migrate.sh deploy demo again"
sed -i 's/= lower("name");/= lower("name") || "id";/' prisma/migrations/20260120090000_add_user_handle/migration.sql
"$repo/scripts/migrate.sh" deploy demo -q | jq -c '{ok, exit_code, deployed: .result.deployed}'

step "6. pgward-report migrations --format html: every attempt in the history, durations, the slowest"
report=$out_dir/migrations.html
rc=0
"$PGWARD_BIN/pgward-report" migrations --env demo --format html >"$report" || rc=$?
# 3 is "needs attention" (a failed attempt on record), still a page to read.
[ "$rc" = 0 ] || [ "$rc" = 3 ] || { echo "pgward-report migrations failed (exit $rc): see the lines above" >&2; exit "$rc"; }
echo "report written to $report"

step "7. scripts/rehearse.sh demo: a new plain CREATE INDEX rehearsed on a restored copy of the newest verified backup (a 1 ms budget, for a table this small)"
mkdir prisma/migrations/20260125090000_index_order_total
echo 'CREATE INDEX "Order_totalCents_idx" ON "Order"("totalCents");' >prisma/migrations/20260125090000_index_order_total/migration.sql
rc=0
"$repo/scripts/rehearse.sh" demo --yes --max-lock 1ms -q >"$dir/rehearsal.json" || rc=$?
jq -c '{exit_code, backup: .result.backup.id, scratch_database: .result.scratch_database, scratch_dropped: .result.scratch_dropped,
  deployed: .result.deployed, steps: [.result.steps[] | "\(.step)=\(.exit_code)"]}' "$dir/rehearsal.json"
echo "exit $rc; the verdict:"
jq -r '.result.verdict.lines[]' "$dir/rehearsal.json"
echo "demo itself still has it pending: $(migrate status --env demo -q | jq -c .result.pending)"

cd "$repo"
echo >&2
echo "demo done in $((SECONDS - started)) s after the build; the throwaway cluster in $dir is being removed" >&2
