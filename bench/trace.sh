#!/usr/bin/env bash
# What `pgward-migrate deploy --trace` costs, in one run on one throwaway cluster: the same
# deploy with and without --trace, alternating (which goes first swaps every round), on
# fresh databases holding the same data:
#   langfuse's 434 migrations (tests/fixtures/corpus) into an empty database
#   four migrations on a table of ROWS rows (default 1,000,000), each database a copy of
#   one template: ADD COLUMN with a constant default, CREATE INDEX, ALTER COLUMN TYPE
#   (a rewrite), CREATE INDEX CONCURRENTLY
# Medians of ROUNDS runs (default 5) and the ratio traced / untraced. The tracer reads
# pg_class and pg_locks around every statement, so its cost is per statement: it shows on
# the many small statements of langfuse, and vanishes under statements that do real work.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/cluster.sh
ROUNDS=${ROUNDS:-5}
ROWS=${ROWS:-1000000}
CORPUS=${CORPUS:-tests/fixtures/corpus/langfuse__langfuse/migrations}
PROFILE=${PROFILE:-release}
cargo build --profile "$([ "$PROFILE" = release ] && echo release || echo dev)" -p pgward-migrate --quiet
M=target/$([ "$PROFILE" = release ] && echo release || echo debug)/pgward-migrate

dir=$(mktemp -d /tmp/pgward-bench.XXXXXX)
pg_cluster_start "$dir" "$(free_port)"
url() { echo "postgresql://postgres@$(printf %s "$dir" | jq -sRr @uri):$PGPORT/$1"; }
now_ms() { date +%s%3N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# deploy FOLDER DATABASE OUT [--trace]: one deploy, its milliseconds appended to OUT. The URL
# is built before the timer starts (url() runs jq).
deploy() {
  local folder=$1 db=$2 out=$3 u t; shift 3
  u=$(url "$db")
  t=$(now_ms); "$M" deploy --dir "$folder" --database-url "$u" -q "$@" >/dev/null
  echo $(( $(now_ms) - t )) >> "$out"
}

# rounds NAME FOLDER MAKE_DB: ROUNDS pairs of deploys of FOLDER, each into a database
# MAKE_DB creates; prints the medians and the ratio.
rounds() {
  local name=$1 folder=$2 make=$3 i
  : > "$dir/$name.plain"; : > "$dir/$name.traced"
  for i in $(seq "$ROUNDS"); do
    "$make" "${name}_p$i"; "$make" "${name}_t$i"
    if [ $(( i % 2 )) = 1 ]; then
      deploy "$folder" "${name}_p$i" "$dir/$name.plain"
      deploy "$folder" "${name}_t$i" "$dir/$name.traced" --trace
    else
      deploy "$folder" "${name}_t$i" "$dir/$name.traced" --trace
      deploy "$folder" "${name}_p$i" "$dir/$name.plain"
    fi
    psql -q -d postgres -c "DROP DATABASE ${name}_p$i" -c "DROP DATABASE ${name}_t$i"
  done
  local p t
  p=$(median < "$dir/$name.plain"); t=$(median < "$dir/$name.traced")
  echo "$name  deploy: ${p} ms; deploy --trace: ${t} ms (medians of $ROUNDS)"
  awk -v a="$t" -v b="$p" -v n="$name" 'BEGIN { printf "%s  ratio traced / untraced = %.3f\n", n, a / b }'
}

empty_db() { psql -q -d postgres -c "CREATE DATABASE $1"; }
echo "binary: $M; corpus: $CORPUS ($(find "$CORPUS" -mindepth 1 -maxdepth 1 -type d | wc -l) migrations); rounds: $ROUNDS" >&2
rounds langfuse "$CORPUS" empty_db

# The large table: a template database with the table and its history, copied per deploy.
big=$dir/big; mkdir -p "$big/20240101000000_init"
printf 'provider = "postgresql"\n' > "$big/migration_lock.toml"
cat > "$big/20240101000000_init/migration.sql" <<SQL
CREATE TABLE orders (id bigserial PRIMARY KEY, customer int NOT NULL, amount int NOT NULL, note text);
INSERT INTO orders (customer, amount, note) SELECT i % 5000, i, md5(i::text) FROM generate_series(1, $ROWS) i;
SQL
psql -q -d postgres -c "CREATE DATABASE big_template"
"$M" deploy --dir "$big" --database-url "$(url big_template)" -q >/dev/null
psql -q -d big_template -c "VACUUM ANALYZE orders"
mkdir -p "$big/20240201000000_status" "$big/20240202000000_customer_idx" "$big/20240203000000_amount_bigint" "$big/20240204000000_note_idx"
echo "ALTER TABLE orders ADD COLUMN status text NOT NULL DEFAULT 'new';" > "$big/20240201000000_status/migration.sql"
echo "CREATE INDEX orders_customer_idx ON orders (customer);" > "$big/20240202000000_customer_idx/migration.sql"
echo "ALTER TABLE orders ALTER COLUMN amount TYPE bigint;" > "$big/20240203000000_amount_bigint/migration.sql"
echo "CREATE INDEX CONCURRENTLY orders_note_idx ON orders (note);" > "$big/20240204000000_note_idx/migration.sql"
copy_db() { psql -q -d postgres -c "CREATE DATABASE $1 TEMPLATE big_template"; }
echo "large table: $ROWS rows, $(psql -qtA -d big_template -c "SELECT pg_size_pretty(pg_total_relation_size('orders'))")" >&2
rounds big "$big" copy_db
