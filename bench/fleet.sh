#!/usr/bin/env bash
# A fleet deploy against the shell loops it replaces, on one throwaway cluster:
#   pgward-migrate deploy --targets FILE --parallel P   (one run over N databases)
#   a shell loop of `pgward-migrate deploy` one database at a time
#   the same loop of `prisma migrate deploy` (Prisma 6, installed from npm into
#   target/prisma when missing; skipped with a message when it cannot run)
# N=200 small databases (N=...), each getting the same M=20 migrations (M=...): a table,
# an index and a foreign key each. Every run deploys into fresh databases. P=4 (P=...).
# PRISMA_N limits the Prisma loop to its first PRISMA_N databases (default: all N) and
# scales nothing: the figure printed is for the databases it ran.
# The binary: target/release when it exists (BIN=folder to choose), else target/debug.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/cluster.sh
N=${N:-200}
M=${M:-20}
P=${P:-4}
PRISMA_N=${PRISMA_N:-$N}
PRISMA_VERSION=6.19.3
if [ -n "${BIN:-}" ]; then
  migrate=$BIN/pgward-migrate
elif [ -x target/release/pgward-migrate ]; then
  migrate=target/release/pgward-migrate
else
  migrate=target/debug/pgward-migrate
fi
[ -x "$migrate" ] || { echo "no $migrate: cargo build -p pgward-migrate (--release for the figures)" >&2; exit 2; }
migrate=$(readlink -f "$migrate")

dir=$(mktemp -d /tmp/pgward-bench-fleet.XXXXXX)
pg_cluster_start "$dir" "$(free_port)"
now_ms() { date +%s%3N; }
url() { echo "postgresql://postgres@127.0.0.1:$PGPORT/$1"; }

# The history: M migrations, each a table with an index and a foreign key to the last.
hist=$dir/prisma/migrations
mkdir -p "$hist"
printf 'provider = "postgresql"\n' > "$hist/migration_lock.toml"
for i in $(seq "$M"); do
  m=$hist/$(printf '2024010100%04d' "$i")_m$i
  mkdir -p "$m"
  {
    printf 'CREATE TABLE "t_%d" ("id" BIGINT NOT NULL, "ref" BIGINT, "note" TEXT, CONSTRAINT "t_%d_pkey" PRIMARY KEY ("id"));\n' "$i" "$i"
    printf 'CREATE INDEX "t_%d_note_idx" ON "t_%d"("note");\n' "$i" "$i"
    [ "$i" -gt 1 ] && printf 'ALTER TABLE "t_%d" ADD CONSTRAINT "t_%d_ref_fkey" FOREIGN KEY ("ref") REFERENCES "t_%d"("id");\n' "$i" "$i" $((i - 1))
  } > "$m/migration.sql"
done
printf 'datasource db {\n  provider = "postgresql"\n  url      = env("DATABASE_URL")\n}\n' > "$dir/prisma/schema.prisma"

# N fresh databases named PREFIX_1..N, and their targets file.
databases() {
  local prefix=$1 i
  for i in $(seq "$N"); do echo "CREATE DATABASE ${prefix}_$i;"; done | psql -q -X -d postgres
  for i in $(seq "$N"); do url "${prefix}_$i"; done > "$dir/$prefix.txt"
}
# Every database of PREFIX has all M migrations recorded.
check() {
  local prefix=$1 count=$2 i n
  for i in $(seq "$count"); do
    n=$(psql -X -At -d "${prefix}_$i" -c "SELECT count(*) FROM _prisma_migrations WHERE finished_at IS NOT NULL")
    [ "$n" = "$M" ] || { echo "${prefix}_$i has $n of $M migrations recorded" >&2; exit 1; }
  done
}

echo "== $N databases, $M migrations each; $migrate" >&2
databases fleet
t=$(now_ms)
"$migrate" deploy --dir "$hist" --targets "$dir/fleet.txt" --parallel "$P" -q > "$dir/fleet.json" || {
  jq -c .error "$dir/fleet.json" >&2; exit 1; }
fleet_ms=$(( $(now_ms) - t ))
check fleet "$N"

databases loop
t=$(now_ms)
while IFS= read -r u; do
  "$migrate" deploy --dir "$hist" --database-url "$u" -q >/dev/null
done < "$dir/loop.txt"
loop_ms=$(( $(now_ms) - t ))
check loop "$N"

echo "fleet   pgward-migrate deploy --targets (--parallel $P): ${fleet_ms} ms for $N databases"
echo "loop    pgward-migrate deploy, one database at a time:  ${loop_ms} ms for $N databases"
awk -v a="$fleet_ms" -v b="$loop_ms" 'BEGIN { printf "ratio   fleet / loop = %.3f\n", a / b }'

# --- the same loop with prisma migrate deploy -------------------------------------------
prisma=target/prisma/node_modules/.bin/prisma
if [ ! -x "$prisma" ] && command -v npm >/dev/null 2>&1; then
  echo "== installing prisma $PRISMA_VERSION into target/prisma" >&2
  npm install --silent --prefix target/prisma "prisma@$PRISMA_VERSION" >/dev/null 2>&1 || true
fi
prisma=$(readlink -f "$prisma" 2>/dev/null || true)
if [ -z "$prisma" ] || [ ! -x "$prisma" ]; then
  echo "prisma: skipped (npm could not install prisma@$PRISMA_VERSION into target/prisma)"
  exit 0
fi
# Prisma fetches its schema engine on first use; without it there is nothing to time.
if ! why=$(cd "$dir" && "$prisma" --version 2>&1); then
  echo "prisma: skipped (prisma@$PRISMA_VERSION cannot run here: $(printf '%s\n' "$why" | grep -m1 -i error))"
  exit 0
fi
databases prisma
t=$(now_ms)
head -n "$PRISMA_N" "$dir/prisma.txt" | while IFS= read -r u; do
  (cd "$dir" && DATABASE_URL=$u "$prisma" migrate deploy >/dev/null 2>>"$dir/prisma.log") ||
    { echo "prisma migrate deploy failed on $u; see $dir/prisma.log" >&2; tail -5 "$dir/prisma.log" >&2; exit 1; }
done
prisma_ms=$(( $(now_ms) - t ))
check prisma "$PRISMA_N"
echo "loop    prisma migrate deploy, one database at a time:  ${prisma_ms} ms for $PRISMA_N databases"
awk -v a="$fleet_ms" -v b="$prisma_ms" -v n="$N" -v k="$PRISMA_N" \
  'BEGIN { printf "ratio   fleet / prisma loop = %.3f (per database: %.1f ms against %.1f ms)\n", (a / n) / (b / k), a / n, b / k }'
