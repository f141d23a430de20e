#!/usr/bin/env bash
# Deploy speed against its anchor, in one run on one throwaway cluster:
#   pgward-migrate deploy   of tests/fixtures/corpus/langfuse__langfuse (434 migrations)
#   a psql loop             `psql -1 -f` per file (CONCURRENTLY-only files without -1)
# and the time of `pgward-migrate status` on the result. Runs each deploy ROUNDS times,
# alternating, on fresh databases, and prints medians and ratios.
# Targets (issue 2): deploy <= 0.5 x the psql loop; status <= 50 ms.
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
  t=$(now_ms); $M deploy --dir "$CORPUS" --database-url "$(url "pw_$i")" -q >/dev/null; echo $(( $(now_ms) - t )) >> "$dir/pgward.ms"
  t=$(now_ms); psql_loop "ps_$i"; echo $(( $(now_ms) - t )) >> "$dir/psql.ms"
done
: > "$dir/status.ms"
for i in $(seq 20); do
  t=$(date +%s%N); $M status --dir "$CORPUS" --database-url "$(url pw_1)" -q >/dev/null; echo $(( ($(date +%s%N) - t) / 1000000 )) >> "$dir/status.ms"
done
pw=$(median < "$dir/pgward.ms"); ps=$(median < "$dir/psql.ms"); st=$(median < "$dir/status.ms")
echo "binary: $M; corpus: $CORPUS ($(find "$CORPUS" -mindepth 1 -maxdepth 1 -type d | wc -l) migrations); rounds: $ROUNDS"
echo "deploy  pgward-migrate: ${pw} ms (median)"
echo "deploy  psql -1 -f loop: ${ps} ms (median)"
awk -v a="$pw" -v b="$ps" 'BEGIN { printf "ratio   pgward / psql = %.3f (target <= 0.5)\n", a / b }'
echo "status  pgward-migrate: ${st} ms (median of 20; target <= 50 ms)"
