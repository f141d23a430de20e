#!/usr/bin/env bash
# Deploy speed against its anchor, in one run on one throwaway cluster:
#   pgward-migrate deploy   of tests/fixtures/corpus/langfuse__langfuse (434 migrations)
#   a psql loop             `psql -1 -f` per file (CONCURRENTLY-only files without -1)
# and the time of `pgward-migrate status` on the result. Then 200 one-statement
# migrations (SMALL=N to change the count) against dbmate 2.36 (an npm package shipping
# its Go binary, installed into target/dbmate when missing; skipped with a message when it
# cannot be): deploy and status, each tool on its own folder layout of the same SQL, both
# over the cluster's unix socket, with the server's floor (the same statements, each in
# its own transaction, as one psql query) beside them.
# Runs each deploy ROUNDS times (the small ones SMALL_ROUNDS times), alternating, on fresh
# databases, and prints medians and ratios. URLs are built before each timer starts (url() runs jq, ~15 ms a call). Targets: deploy <= 0.5 x the psql loop and status <= 50 ms (issue 2); on the
# small migrations deploy <= 0.5 x dbmate and status <= 0.1 x dbmate (issue 19).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/cluster.sh
ROUNDS=${ROUNDS:-5}
CORPUS=${CORPUS:-tests/fixtures/corpus/langfuse__langfuse/migrations}
cargo build --release -p pgward-migrate --quiet 2>/dev/null || cargo build -p pgward-migrate --quiet
M=target/release/pgward-migrate; [ -x "$M" ] || M=target/debug/pgward-migrate

dir=$(mktemp -d /tmp/pgward-bench.XXXXXX)
pg_cluster_start "$dir" "$(free_port)"
url() { echo "postgresql://postgres@$(printf %s "$dir" | jq -sRr @uri):$PGPORT/$1"; }
now_ms() { date +%s%3N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

psql_loop() {
  local db=$1 f
  # Byte order, as a shell would list them; folder names may hold spaces.
  while IFS= read -r -d '' f; do
    f="$f/migration.sql"
    # Anchor only: a file whose statements are all CONCURRENTLY cannot run under -1.
    if grep -qi 'concurrently' "$f" && [ "$(grep -c ';' "$f")" -le 1 ]; then
      psql -q -X -v ON_ERROR_STOP=1 -d "$db" -f "$f" >/dev/null 2>>"$dir/psql.log"
    else
      psql -q -X -v ON_ERROR_STOP=1 -1 -d "$db" -f "$f" >/dev/null 2>>"$dir/psql.log"
    fi
  done < <(find "$CORPUS" -mindepth 1 -maxdepth 1 -type d -print0 | LC_ALL=C sort -z)
}

: > "$dir/pgward.ms"; : > "$dir/psql.ms"
for i in $(seq "$ROUNDS"); do
  psql -q -d postgres -c "CREATE DATABASE pw_$i" -c "CREATE DATABASE ps_$i"
  u=$(url "pw_$i"); t=$(now_ms); $M deploy --dir "$CORPUS" --database-url "$u" -q >/dev/null; echo $(( $(now_ms) - t )) >> "$dir/pgward.ms"
  t=$(now_ms); psql_loop "ps_$i"; echo $(( $(now_ms) - t )) >> "$dir/psql.ms"
done
: > "$dir/status.ms"
u=$(url pw_1)
for i in $(seq 20); do
  t=$(date +%s%N); $M status --dir "$CORPUS" --database-url "$u" -q >/dev/null; echo $(( ($(date +%s%N) - t) / 1000000 )) >> "$dir/status.ms"
done
pw=$(median < "$dir/pgward.ms"); ps=$(median < "$dir/psql.ms"); st=$(median < "$dir/status.ms")
echo "binary: $M; corpus: $CORPUS ($(find "$CORPUS" -mindepth 1 -maxdepth 1 -type d | wc -l) migrations); rounds: $ROUNDS"
echo "deploy  pgward-migrate: ${pw} ms (median)"
echo "deploy  psql -1 -f loop: ${ps} ms (median)"
awk -v a="$pw" -v b="$ps" 'BEGIN { printf "ratio   pgward / psql = %.3f (target <= 0.5)\n", a / b }'
echo "status  pgward-migrate: ${st} ms (median of 20; target <= 50 ms)"

# --- 200 one-statement migrations against dbmate -----------------------------------------
DBMATE_VERSION=2.36.0
SMALL=${SMALL:-200}
# Each small round takes about a second, and a loaded machine scatters them: more rounds.
SMALL_ROUNDS=${SMALL_ROUNDS:-15}
dbmate=target/dbmate/node_modules/@dbmate/linux-x64/bin/dbmate
if [ ! -x "$dbmate" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "dbmate: skipped (not in target/dbmate, and npm is not on PATH to install dbmate@$DBMATE_VERSION there)"
    exit 0
  fi
  echo "== installing dbmate $DBMATE_VERSION into target/dbmate" >&2
  if ! npm install --no-audit --no-fund --prefix target/dbmate "dbmate@$DBMATE_VERSION" >"$dir/npm.log" 2>&1; then
    echo "dbmate: skipped (npm install dbmate@$DBMATE_VERSION into target/dbmate failed: registry or network unreachable?); npm said:"
    { grep -E '^npm (error|ERR!)' "$dir/npm.log" | grep -vE '^npm (error|ERR!) +at ' | head -n 4 || tail -n 4 "$dir/npm.log"; } | sed 's/^/  /'
    exit 0
  fi
  if [ ! -x "$dbmate" ]; then
    echo "dbmate: skipped (npm installed dbmate@$DBMATE_VERSION but not its linux-x64 binary at $dbmate)"
    exit 0
  fi
fi
small=$dir/small; mkdir -p "$small/prisma" "$small/dbmate"
for i in $(seq "$SMALL"); do
  ts=$(printf '2024%010d' "$i")
  sql="CREATE TABLE t_$i (id bigint PRIMARY KEY, note text);"
  mkdir -p "$small/prisma/${ts}_m$i"
  printf '%s\n' "$sql" > "$small/prisma/${ts}_m$i/migration.sql"
  printf -- '-- migrate:up\n%s\n\n-- migrate:down\n' "$sql" > "$small/dbmate/${ts}_m$i.sql"
  printf 'BEGIN;\n%s\nCOMMIT;\n' "$sql" >> "$small/all.sql"
done
printf 'provider = "postgresql"\n' > "$small/prisma/migration_lock.toml"
# Both tools on the same transport: the cluster's unix socket.
dburl() { echo "postgres://postgres@/$1?socket=$(printf %s "$dir" | jq -sRr @uri)&port=$PGPORT&sslmode=disable"; }
small_pgward() { $M deploy --dir "$small/prisma" --database-url "$1" -q >/dev/null; }
small_dbmate() { "$dbmate" --url "$1" --migrations-dir "$small/dbmate" --no-dump-schema up >/dev/null; }
: > "$dir/s_pgward.ms"; : > "$dir/s_dbmate.ms"; : > "$dir/s_floor.ms"
for i in $(seq "$SMALL_ROUNDS"); do
  psql -q -d postgres -c "CREATE DATABASE spw_$i" -c "CREATE DATABASE sdb_$i" -c "CREATE DATABASE sfl_$i"
  u=$(url "spw_$i"); ud=$(dburl "sdb_$i")
  # Alternating which tool goes first, so neither always meets a warmer server.
  for tool in $([ $((i % 2)) = 1 ] && echo "pgward dbmate" || echo "dbmate pgward"); do
    if [ "$tool" = pgward ]; then
      t=$(now_ms); small_pgward "$u"; echo $(( $(now_ms) - t )) >> "$dir/s_pgward.ms"
    else
      t=$(now_ms); small_dbmate "$ud"; echo $(( $(now_ms) - t )) >> "$dir/s_dbmate.ms"
    fi
  done
  # The server's own floor: the same statements, each in its own transaction, in one
  # query of one psql session (no history rows, one round trip in all).
  t=$(now_ms); psql -X -q -d "sfl_$i" -c "$(cat "$small/all.sql")" >/dev/null; echo $(( $(now_ms) - t )) >> "$dir/s_floor.ms"
done
: > "$dir/ss_pgward.ms"; : > "$dir/ss_dbmate.ms"
u=$(url spw_1); ud=$(dburl sdb_1)
for i in $(seq 20); do
  t=$(date +%s%N); $M status --dir "$small/prisma" --database-url "$u" -q >/dev/null; echo $(( ($(date +%s%N) - t) / 100000 )) >> "$dir/ss_pgward.ms"
  t=$(date +%s%N); "$dbmate" --url "$ud" --migrations-dir "$small/dbmate" status >/dev/null; echo $(( ($(date +%s%N) - t) / 100000 )) >> "$dir/ss_dbmate.ms"
done
spw=$(median < "$dir/s_pgward.ms"); sdb=$(median < "$dir/s_dbmate.ms"); sfl=$(median < "$dir/s_floor.ms")
ssp=$(median < "$dir/ss_pgward.ms"); ssd=$(median < "$dir/ss_dbmate.ms")
echo "small   $SMALL one-statement migrations (CREATE TABLE t_N (id bigint PRIMARY KEY, note text)); dbmate $("$dbmate" --version 2>/dev/null | head -n 1); both over the unix socket"
echo "deploy  pgward-migrate: ${spw} ms; dbmate up: ${sdb} ms (medians of $SMALL_ROUNDS)"
echo "rounds  pgward: $(paste -sd' ' "$dir/s_pgward.ms"); dbmate: $(paste -sd' ' "$dir/s_dbmate.ms"); floor: $(paste -sd' ' "$dir/s_floor.ms")"
# Per round too: the two runs of a round meet the same load, which drifts between rounds.
sr=$(paste "$dir/s_pgward.ms" "$dir/s_dbmate.ms" | awk '{ printf "%.4f\n", $1 / $2 }' | median)
awk -v a="$spw" -v b="$sdb" -v r="$sr" 'BEGIN { printf "ratio   pgward / dbmate deploy = %.3f, median of per-round ratios %.3f (target <= 0.5)\n", a / b, r }'
awk -v f="$sfl" -v a="$spw" -v b="$sdb" 'BEGIN { printf "floor   the same transactions as one psql query: %s ms = %.2f x dbmate (pgward %.2f x the floor)\n", f, f / b, a / f }'
awk -v a="$ssp" -v b="$ssd" 'BEGIN { printf "status  pgward-migrate: %.1f ms; dbmate status: %.1f ms (medians of 20); ratio %.3f (target <= 0.1)\n", a / 10, b / 10, a / b }'
