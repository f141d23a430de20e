#!/usr/bin/env bash
# Backup and restore speed, size and memory against their anchors and floors, in one run
# on one throwaway cluster and one database:
#   backup:  pgward-backup (--jobs 2)  |  pg_dump -Fd -j 2  |  pg_dump -Fp | zstd -3 -T2
#            and the backup floor: raw COPY ... TO STDOUT of every table on 2 connections,
#            the largest table cut into 2 ctid ranges
#   restore: pgward-restore (--jobs 2) into a new database (--create), and after
#            pgward-backup verify into an existing empty one  |  pg_restore -j 2
#            and the restore floor: the schema made before the timer, then, timed, raw
#            COPY ... FROM text files (written by COPY TO before the timer) on 2 sessions,
#            the largest table in 2 halves, one per session, then the same post-data
#            (indexes, keys, constraints, triggers) with pg_restore -j 2 --section=post-data;
#            no checks and no ANALYZE. Its split largest table is WAL-logged and not
#            frozen, so pgward (whole tables, COPY FREEZE) can beat it.
# Each round runs pgward and its anchors alternately. Prints wall time, CPU (user+sys of
# the client processes) and peak RSS of each, and every ratio issue 19 sets a goal for,
# with PASS / MISS:
#   restore / pg_restore -j2      <= 0.6 (DATASET=pgbench), <= 0.5 (DATASET=bench)
#   restore / restore floor       <= 1.2
#   backup  / backup floor        <= 1.0
#   peak RSS of backup, restore   <= 64 MB
# and the older ones: backup <= 0.15 x pg_dump -Fd -j2, size <= 1.05 x the zstd pipeline.
#
# DATASET chooses the data:
#   bench   (default) the issue's ~3 GB database: pgbench -s 50, a 3 M-row wide table
#           (~660 bytes a row, a uuid and a timestamp index), 300 small tables. SIZE=0.25
#           builds a quarter of it.
#   pgbench pgbench -i -s SCALE (default 40: ~600 MB, pgbench_accounts 4 M rows).
#   mixed   one table that is most of the data: events, 2 M rows (~150 bytes a row:
#           bigint key, a foreign key to accounts, kind, a jsonb payload, a timestamp;
#           indexes on account and time); mid-size: accounts (50 k rows), products
#           (100 k), orders (200 k, foreign key to accounts, index on it), sessions (150 k);
#           200 small tables of 100 rows, each with a primary key. SIZE scales the row
#           counts (default 1).
# ROUNDS repeats, alternating; RESTORE_ROUNDS repeats the restores within each round.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/cluster.sh
DATASET=${DATASET:-bench}
SIZE=${SIZE:-1}
SCALE=${SCALE:-40}
ROUNDS=${ROUNDS:-1}
RESTORE_ROUNDS=${RESTORE_ROUNDS:-1}
case $DATASET in
  bench|pgbench|mixed) ;;
  *) echo "DATASET must be bench, pgbench or mixed, not $DATASET" >&2; exit 2 ;;
esac
cargo build --release -p pgward-backup -p pgward-restore --quiet
B=target/release
bin=$(pg_bindir)

dir=$(mktemp -d /tmp/pgward-bench.XXXXXX)
chmod 755 "$dir"   # the server runs as postgres and must reach $dir/pg
PG_EXTRA_OPTS="-c shared_buffers=512MB -c max_wal_size=4GB -c wal_level=minimal -c max_wal_senders=0 -c checkpoint_timeout=30min" \
  pg_cluster_start "$dir/pg" "$(free_port)"
url() { echo "postgresql://postgres@$(printf %s "$dir/pg" | jq -sRr @uri):$PGPORT/$1"; }
DATABASE_URL=$(url bench)
export DATABASE_URL

scaled() { awk -v s="$SIZE" -v n="$1" 'BEGIN { print int(n * s) }'; }

# small_tables PREFIX COUNT ROWS: the SQL making COUNT small tables PREFIX_1.. of ROWS rows.
small_tables() {
  cat <<SQL
DO \$\$ BEGIN FOR i IN 1..$2 LOOP
  EXECUTE format('CREATE TABLE $1_%s (id int PRIMARY KEY, name text, at timestamptz DEFAULT now())', i);
  EXECUTE format('INSERT INTO $1_%s (id, name) SELECT g, md5(g::text) FROM generate_series(1, $3) g', i);
END LOOP; END \$\$;
SQL
}

build_bench() {
  "$bin/pgbench" -i -q -s "$(scaled 50)" bench >/dev/null 2>&1
  psql -q -d bench <<SQL
CREATE TABLE wide (
  id bigserial PRIMARY KEY,
  uid uuid NOT NULL DEFAULT gen_random_uuid(),
  doc jsonb NOT NULL,
  note text,
  blob bytea,
  created timestamptz NOT NULL DEFAULT now()
);
-- About 660 bytes a row: with pgbench's 750 MB and the small tables, the issue's ~3 GB.
INSERT INTO wide (doc, note, blob)
SELECT jsonb_build_object('n', g, 'tag', 'tag-' || (g % 97), 'score', random(), 'items', jsonb_build_array(g % 7, g % 11, md5(g::text))),
       repeat(md5(g::text), 6) || E'\tnote ' || (g % 1000),
       sha512(int8send(g)) || sha512(int8send(-g)) || sha512(int8send(g # 12345)) || decode(md5(g::text), 'hex')
FROM generate_series(1, $(scaled 3000000)) g;
CREATE INDEX wide_uid ON wide (uid);
CREATE INDEX wide_created ON wide (created);
$(small_tables small 300 200)
SQL
}

build_mixed() {
  psql -q -d bench <<SQL
CREATE TABLE accounts (id int PRIMARY KEY, email text NOT NULL UNIQUE, plan text, created timestamptz NOT NULL);
INSERT INTO accounts SELECT g, 'user' || g || '@example.com', (ARRAY['free','pro','team'])[1 + g % 3], now() - g * interval '1 minute'
FROM generate_series(1, $(scaled 50000)) g;
CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2), description text);
INSERT INTO products SELECT g, 'product ' || g, (g % 1000) / 7.0, repeat(md5(g::text), 2)
FROM generate_series(1, $(scaled 100000)) g;
CREATE TABLE orders (id bigint PRIMARY KEY, account_id int NOT NULL REFERENCES accounts, total numeric(12,2), status text, placed timestamptz NOT NULL);
INSERT INTO orders SELECT g, 1 + g % $(scaled 50000), (g % 10000) / 3.0, (ARRAY['new','paid','shipped','void'])[1 + g % 4], now() - g * interval '1 second'
FROM generate_series(1, $(scaled 200000)) g;
CREATE INDEX orders_account ON orders (account_id);
CREATE TABLE sessions (token uuid PRIMARY KEY DEFAULT gen_random_uuid(), account_id int NOT NULL, ip inet, seen timestamptz NOT NULL);
INSERT INTO sessions (account_id, ip, seen) SELECT 1 + g % $(scaled 50000), ('10.0.' || (g % 250) || '.' || (g % 200))::inet, now() - g * interval '3 seconds'
FROM generate_series(1, $(scaled 150000)) g;
CREATE TABLE events (
  id bigint PRIMARY KEY,
  account_id int NOT NULL REFERENCES accounts,
  kind text NOT NULL,
  payload jsonb NOT NULL,
  at timestamptz NOT NULL
);
-- About 150 bytes a row.
INSERT INTO events SELECT g, 1 + g % $(scaled 50000), (ARRAY['view','click','buy','login','logout'])[1 + g % 5],
  jsonb_build_object('page', '/p/' || (g % 5000), 'ref', md5(g::text), 'n', g % 100),
  now() - g * interval '100 milliseconds'
FROM generate_series(1, $(scaled 2000000)) g;
CREATE INDEX events_account ON events (account_id);
CREATE INDEX events_at ON events (at);
$(small_tables lookup 200 100)
SQL
}

echo "== building the benchmark database (DATASET=$DATASET, SIZE=$SIZE, SCALE=$SCALE)" >&2
psql -q -d postgres -c "CREATE DATABASE bench"
case $DATASET in
  bench) build_bench ;;
  pgbench) "$bin/pgbench" -i -q -s "$SCALE" bench >/dev/null 2>&1 ;;
  mixed) build_mixed ;;
esac
psql -q -d bench -c "VACUUM ANALYZE"
psql -At -d bench -c "SELECT 'database size: ' || pg_size_pretty(pg_database_size('bench'))" >&2
# The largest table, which both floors cut in two.
big=$(psql -At -d bench -c "SELECT c.oid::regclass FROM pg_class c WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace ORDER BY pg_relation_size(c.oid) DESC LIMIT 1")
pages=$(psql -At -d bench -c "SELECT pg_relation_size('$big') / current_setting('block_size')::int")
half=$(( pages / 2 ))
psql -At -d bench -c "SELECT c.oid::regclass FROM pg_class c WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace AND c.oid <> '$big'::regclass ORDER BY pg_relation_size(c.oid) DESC" > "$dir/tables"
export big half

# measure NAME CMD...: appends "NAME wall_s cpu_s rss_mb" to $dir/results
measure() {
  local name=$1; shift
  # The previous command's writes (a restore's 3 GB) are flushed first, not on this one's time.
  sync
  /usr/bin/time -f "%e %U %S %M" -o "$dir/time.out" "$@" >"$dir/$name.out" 2>"$dir/$name.err" || { echo "$name failed:" >&2; tail "$dir/$name.err" >&2; exit 1; }
  read -r wall user sys rss < <(tail -n 1 "$dir/time.out")
  echo "$name $wall $(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }') $(( rss / 1024 ))" >> "$dir/results"
}

floor_copy() {
  # Two connections; tables dealt round-robin, the largest table cut into 2 ctid halves.
  (
    psql -q -d bench -c "COPY (SELECT * FROM $big WHERE ctid < '($half,0)'::tid) TO STDOUT" > /dev/null
    awk 'NR % 2 == 1' "$dir/tables" | while read -r t; do echo "COPY $t TO STDOUT;"; done | psql -q -d bench > /dev/null
  ) &
  (
    psql -q -d bench -c "COPY (SELECT * FROM $big WHERE ctid >= '($half,0)'::tid) TO STDOUT" > /dev/null
    awk 'NR % 2 == 0' "$dir/tables" | while read -r t; do echo "COPY $t TO STDOUT;"; done | psql -q -d bench > /dev/null
  ) &
  wait
}
export -f floor_copy

# The restore floor's input, made before any timer: every table's rows as COPY text, the
# largest one in two halves, and the schema before the data (pre-data).
mkdir "$dir/floor"
psql -q -d bench -c "COPY (SELECT * FROM $big WHERE ctid < '($half,0)'::tid) TO STDOUT" > "$dir/floor/big.1"
psql -q -d bench -c "COPY (SELECT * FROM $big WHERE ctid >= '($half,0)'::tid) TO STDOUT" > "$dir/floor/big.2"
for s in 1 2; do echo "\\copy $big from '$dir/floor/big.$s'" > "$dir/floor/session.$s"; done
n=0
while read -r t; do
  n=$((n + 1))
  psql -q -d bench -c "COPY $t TO STDOUT" > "$dir/floor/t.$n"
  # One \copy script per session: the tables dealt round-robin after its half of the big one.
  echo "\\copy $t from '$dir/floor/t.$n'" >> "$dir/floor/session.$(( n % 2 + 1 ))"
done < "$dir/tables"
"$bin/pg_dump" -s --section=pre-data -f "$dir/floor/pre-data.sql" bench
restore_floor() {
  local one two
  psql -q -v ON_ERROR_STOP=1 -d r_floor -f "$dir/floor/session.1" & one=$!
  psql -q -v ON_ERROR_STOP=1 -d r_floor -f "$dir/floor/session.2" & two=$!
  wait "$one" && wait "$two" && "$bin/pg_restore" -j 2 --section=post-data -d r_floor "$dir/fd"
}
export -f restore_floor
export bin

# phases NAME: the restore's phases from its JSON, to stderr and $dir/phases
phases() {
  jq -r --arg n "$1" '.duration_ms as $ms | .result.verify_depth as $depth | .result.load | "  \($n) phases: verify (\($depth)) and checks \(($ms / 1000 - .pre_data_s - .data_s - .post_data_s - .verify_and_analyze_s) * 100 | round / 100) s, pre-data \(.pre_data_s) s, data \(.data_s) s (\(.post_data_early_items) indexes/keys built meanwhile; largest table \([.tables[].seconds] | max) s), post-data \(.post_data_s) s, analyze \(.verify_and_analyze_s) s"' "$dir/$1.out" | tee -a "$dir/phases" >&2
}
export dir

: > "$dir/results"
for round in $(seq "$ROUNDS"); do
  rm -rf "$dir/pw" "$dir/fd" "$dir/plain.sql.zst"
  echo "== round $round: backups" >&2
  measure pgward_backup "$B/pgward-backup" backup --to "$dir/pw" --jobs 2 -q
  # By its id: `latest` restores only into the database it is a backup of.
  id=$(jq -r .result.id "$dir/pgward_backup.out")
  measure pg_dump_Fd_j2 "$bin/pg_dump" -Fd -j 2 -f "$dir/fd" bench
  measure pg_dump_zstd bash -c "'$bin/pg_dump' -Fp bench | zstd -3 -T2 -q > '$dir/plain.sql.zst'"
  measure copy_floor bash -c floor_copy
  for restore_round in $(seq "$RESTORE_ROUNDS"); do
    echo "== round $round: restores ($restore_round)" >&2
    psql -q -d postgres -c "DROP DATABASE IF EXISTS r_pw" -c "DROP DATABASE IF EXISTS r_pg" -c "CREATE DATABASE r_pg" \
      -c "DROP DATABASE IF EXISTS r_floor" -c "CREATE DATABASE r_floor"
    psql -q -v ON_ERROR_STOP=1 -d r_floor -f "$dir/floor/pre-data.sql" >/dev/null
    # pgward twice: into a new database (--create; each data file is checked as it loads
    # into a database renamed to the target once complete), then, after `pgward-backup
    # verify` as backup-cron.sh runs it, into an existing empty database, as pg_restore -d
    # does (loaded in place, so every file's checksum is read before the load; verify
    # decompressed them); the anchors between them.
    measure pgward_restore "$B/pgward-restore" restore --from "$dir/pw/$id" --target-db r_pw --create --jobs 2 -q
    phases pgward_restore
    measure pg_restore_j2 "$bin/pg_restore" -j 2 -d r_pg "$dir/fd"
    measure pgward_verify "$B/pgward-backup" verify "$id" --from "$dir/pw" --jobs 2 -q
    psql -q -d postgres -c "DROP DATABASE r_pw" -c "CREATE DATABASE r_pw"
    measure pgward_restore_verified "$B/pgward-restore" restore --from "$dir/pw/$id" --target-db r_pw --jobs 2 -q
    phases pgward_restore_verified
    measure restore_floor bash -c restore_floor
  done
done

size_pw=$(du -sb "$dir/pw" | cut -f1)
size_zstd=$(stat -c %s "$dir/plain.sql.zst")
size_fd=$(du -sb "$dir/fd" | cut -f1)
med() { awk -v n="$1" -v f="$2" '$1 == n { print $f }' "$dir/results" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo
echo "DATASET=$DATASET SIZE=$SIZE SCALE=$SCALE, $ROUNDS round(s) x $RESTORE_ROUNDS restore(s), $(psql -At -d bench -c "SELECT pg_size_pretty(pg_database_size('bench'))"), largest table $big; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-24s %9s %9s %9s\n' command wall_s cpu_s rss_mb
for n in pgward_backup pg_dump_Fd_j2 pg_dump_zstd copy_floor pgward_restore pg_restore_j2 pgward_verify pgward_restore_verified restore_floor; do
  printf '%-24s %9s %9s %9s\n' "$n" "$(med $n 2)" "$(med $n 3)" "$(med $n 4)"
done
echo
# check NAME VALUE GOAL: one line, PASS or MISS against "<= GOAL" (no goal: "-")
check() {
  if [ "$3" = - ]; then
    printf '%-44s %8s   (no goal for DATASET=%s)\n' "$1" "$2" "$DATASET"
  else
    printf '%-44s %8s   <= %-5s %s\n' "$1" "$2" "$3" "$(awk -v v="$2" -v g="$3" 'BEGIN { print (v <= g) ? "PASS" : "MISS" }')"
  fi
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
case $DATASET in pgbench) restore_goal=0.6 ;; bench) restore_goal=0.5 ;; *) restore_goal=- ;; esac
check "restore (--create) / pg_restore -j2" "$(ratio "$(med pgward_restore 2)" "$(med pg_restore_j2 2)")" "$restore_goal"
check "restore (existing db) / pg_restore -j2" "$(ratio "$(med pgward_restore_verified 2)" "$(med pg_restore_j2 2)")" "$restore_goal"
check "restore (--create) / restore floor" "$(ratio "$(med pgward_restore 2)" "$(med restore_floor 2)")" 1.2
check "restore (existing db) / restore floor" "$(ratio "$(med pgward_restore_verified 2)" "$(med restore_floor 2)")" 1.2
check "backup / backup floor" "$(ratio "$(med pgward_backup 2)" "$(med copy_floor 2)")" 1.0
check "backup peak RSS, MB" "$(med pgward_backup 4)" 64
check "restore peak RSS, MB (--create)" "$(med pgward_restore 4)" 64
check "restore peak RSS, MB (existing db)" "$(med pgward_restore_verified 4)" 64
check "backup / pg_dump -Fd -j2" "$(ratio "$(med pgward_backup 2)" "$(med pg_dump_Fd_j2 2)")" 0.15
check "size / pg_dump | zstd -3" "$(ratio "$size_pw" "$size_zstd")" 1.05
echo "  (sizes: pgward $size_pw B, zstd pipeline $size_zstd B, -Fd $size_fd B; verify's peak RSS $(med pgward_verify 4) MB)"
cat "$dir/phases"
rm -rf "$dir/pw" "$dir/fd" "$dir/plain.sql.zst" "$dir/floor"   # the backups; $dir keeps the figures
