#!/usr/bin/env bash
# The README's demo: build pgward, start a throwaway local PostgreSQL, deploy the example
# migrations, show status, roll the newest one back, deploy it again. Removes everything
# it created when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/cluster.sh

. scripts/lib/install.sh
pgw_install demo
echo "== building pgward" >&2
cargo build --workspace --quiet
M=target/debug/pgward-migrate

dir=$(mktemp -d /tmp/pgward-demo.XXXXXX)
pg_cluster_start "$dir" "$(free_port)"
psql -q -d postgres -c "CREATE DATABASE demo"
DATABASE_URL="postgresql://postgres@$(printf %s "$dir" | jq -sRr @uri):$PGPORT/demo"
export DATABASE_URL
step() { echo; echo "== $*" >&2; }

step "pgward-migrate deploy --dry-run: what would run, and how"
$M deploy --dir examples/prisma/migrations --dry-run -q | jq '.result.applied'
step "pgward-migrate deploy"
$M deploy --dir examples/prisma/migrations | jq -c '{ok, applied: [.result.applied[] | {name, mode, duration_ms}]}'
step "pgward-migrate status --format text"
$M status --dir examples/prisma/migrations --format text
step "pgward-migrate rollback (runs the newest migration's down.sql)"
$M rollback --dir examples/prisma/migrations | jq -c '{ok, rolled_back: [.result.rolled_back[].name]}'
step "pgward-migrate status: the rolled-back migration is pending again (exit 3)"
set +e; $M status --dir examples/prisma/migrations -q | jq -c '{ok, exit_code, pending: .result.pending}'; set -e
step "pgward-migrate deploy: applies it again"
$M deploy --dir examples/prisma/migrations -q | jq -c '{ok, applied: [.result.applied[].name]}'
echo; echo "demo done; the throwaway cluster in $dir is being removed" >&2
