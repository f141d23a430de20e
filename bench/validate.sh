#!/usr/bin/env bash
# pgward-validate speed, in one run on one throwaway cluster:
#   lint --all of tests/fixtures/corpus/langfuse__langfuse (434 files)       target <= 1 s
#   drift on langfuse against pgward-migrate deploy of it (the anchor)  target <= 1.2 x deploy
#   schema on a database of 2,000 tables                                target <= 2 s
# Medians of ROUNDS runs.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/cluster.sh
ROUNDS=${ROUNDS:-5}
CORPUS=${CORPUS:-tests/fixtures/corpus/langfuse__langfuse/migrations}
PROFILE=${PROFILE:-release}
cargo build --profile "$([ "$PROFILE" = release ] && echo release || echo dev)" -p pgward-migrate -p pgward-validate --quiet
B=target/$([ "$PROFILE" = release ] && echo release || echo debug)

dir=$(mktemp -d /tmp/pgward-bench.XXXXXX)
pg_cluster_start "$dir" "$(free_port)"
url() { echo "postgresql://postgres@$(printf %s "$dir" | jq -sRr @uri):$PGPORT/$1"; }
ms() { local t; t=$(date +%s%N); "$@" >/dev/null || true; echo $(( ($(date +%s%N) - t) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

: > "$dir/lint"; : > "$dir/deploy"; : > "$dir/drift"; : > "$dir/schema"
for i in $(seq "$ROUNDS"); do
  ms "$B/pgward-validate" lint --all --dir "$CORPUS" -q >> "$dir/lint"
  psql -q -d postgres -c "CREATE DATABASE lf_$i"
  ms "$B/pgward-migrate" deploy --dir "$CORPUS" --database-url "$(url "lf_$i")" -q >> "$dir/deploy"
  ms "$B/pgward-validate" drift --dir "$CORPUS" --database-url "$(url "lf_$i")" -q >> "$dir/drift"
done
psql -q -d postgres -c "CREATE DATABASE wide"
psql -q -d wide -c "DO \$\$ BEGIN FOR i IN 1..2000 LOOP
  EXECUTE format('CREATE TABLE t%s (id bigint PRIMARY KEY, parent bigint REFERENCES t%s, note text, at timestamptz)', i, greatest(i - 1, 1));
  EXECUTE format('CREATE INDEX ON t%s (parent)', i); END LOOP; END \$\$;"
for i in $(seq "$ROUNDS"); do ms "$B/pgward-validate" schema --database-url "$(url wide)" --dir "$CORPUS" -q >> "$dir/schema"; done

lint=$(median < "$dir/lint"); deploy=$(median < "$dir/deploy"); drift=$(median < "$dir/drift"); schema=$(median < "$dir/schema")
echo "binaries: $B; corpus: $CORPUS; rounds: $ROUNDS"
echo "lint --all (434 files):      ${lint} ms   (target <= 1000 ms)"
echo "deploy (anchor):             ${deploy} ms"
echo "drift:                       ${drift} ms"
awk -v a="$drift" -v b="$deploy" 'BEGIN { printf "ratio drift / deploy = %.2f (target <= 1.2)\n", a / b }'
echo "schema (2,000 tables):       ${schema} ms   (target <= 2000 ms)"
