#!/usr/bin/env bash
# Backup and restore speed, size and memory against their anchors, in one run on one
# throwaway cluster and one database:
#   backup:  pgward-backup (--jobs 2)  |  pg_dump -Fd -j 2  |  pg_dump -Fp | zstd -3 -T2
#            and the floor: raw COPY ... TO STDOUT of every table on 2 connections, the
#            big table cut into ctid ranges
#   restore: pgward-restore (--jobs 2) into a new database (--create), and after
#            pgward-backup verify into an existing empty one  |  pg_restore -j 2
# Prints wall time, CPU (user+sys of the client processes) and peak RSS of each, and the
# ratios the issue sets as targets: backup <= 0.15 x pg_dump -Fd -j2 and <= 1.6 x the
# floor; size <= 1.05 x the zstd pipeline; restore <= 0.6 x pg_restore -j2; RSS <= 150 MB.
#
# SIZE=1 builds the issue's ~3 GB database (pgbench -s 50, a 3 M-row wide table, 300 small
# tables); SIZE=0.25 a quarter of it for a quick look. ROUNDS repeats, alternating;
# RESTORE_ROUNDS repeats the restores within each round (they vary more than the backups).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/cluster.sh
SIZE=${SIZE:-1}
ROUNDS=${ROUNDS:-1}
RESTORE_ROUNDS=${RESTORE_ROUNDS:-1}
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

echo "== building the benchmark database (SIZE=$SIZE)" >&2
psql -q -d postgres -c "CREATE DATABASE bench"
"$bin/pgbench" -i -q -s "$(awk -v s="$SIZE" 'BEGIN { print int(50 * s) }')" bench >/dev/null 2>&1
wide_rows=$(awk -v s="$SIZE" 'BEGIN { print int(3000000 * s) }')
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
FROM generate_series(1, $wide_rows) g;
CREATE INDEX wide_uid ON wide (uid);
CREATE INDEX wide_created ON wide (created);
DO \$\$ BEGIN FOR i IN 1..300 LOOP
  EXECUTE format('CREATE TABLE small_%s (id int PRIMARY KEY, name text, at timestamptz DEFAULT now())', i);
  EXECUTE format('INSERT INTO small_%s (id, name) SELECT g, md5(g::text) FROM generate_series(1, 200) g', i);
END LOOP; END \$\$;
VACUUM ANALYZE;
SQL
psql -At -d bench -c "SELECT 'database size: ' || pg_size_pretty(pg_database_size('bench'))" >&2

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
  # Two connections; tables dealt round-robin, the big table cut into 2 ctid halves.
  local pages half
  pages=$(psql -At -d bench -c "SELECT pg_relation_size('wide') / current_setting('block_size')::int")
  half=$(( pages / 2 ))
  psql -At -d bench -c "SELECT quote_ident(relname) FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace AND relname <> 'wide' ORDER BY pg_relation_size(oid) DESC" > "$dir/tables"
  (
    psql -q -d bench -c "COPY (SELECT * FROM wide WHERE ctid < '($half,0)'::tid) TO STDOUT" > /dev/null
    awk 'NR % 2 == 1' "$dir/tables" | while read -r t; do echo "COPY $t TO STDOUT;"; done | psql -q -d bench > /dev/null
  ) &
  (
    psql -q -d bench -c "COPY (SELECT * FROM wide WHERE ctid >= '($half,0)'::tid) TO STDOUT" > /dev/null
    awk 'NR % 2 == 0' "$dir/tables" | while read -r t; do echo "COPY $t TO STDOUT;"; done | psql -q -d bench > /dev/null
  ) &
  wait
}
export -f floor_copy

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
  measure pg_dump_Fd_j2 "$bin/pg_dump" -Fd -j 2 -f "$dir/fd" bench
  measure pg_dump_zstd bash -c "'$bin/pg_dump' -Fp bench | zstd -3 -T2 -q > '$dir/plain.sql.zst'"
  measure copy_floor bash -c floor_copy
  for restore_round in $(seq "$RESTORE_ROUNDS"); do
    echo "== round $round: restores ($restore_round)" >&2
    psql -q -d postgres -c "DROP DATABASE IF EXISTS r_pw" -c "DROP DATABASE IF EXISTS r_pg" -c "CREATE DATABASE r_pg"
    # Twice: into a new database (--create; each data file is checked as it loads into a
    # database renamed to the target once complete), then, after `pgward-backup verify` as
    # backup-cron.sh runs it, into an existing empty database, as pg_restore -d does (loaded
    # in place, so every file's checksum is read before the load; verify decompressed them).
    measure pgward_restore "$B/pgward-restore" restore --from "$dir/pw/latest" --target-db r_pw --create --jobs 2 -q
    phases pgward_restore
    measure pgward_verify "$B/pgward-backup" verify latest --from "$dir/pw" --jobs 2 -q
    psql -q -d postgres -c "DROP DATABASE r_pw" -c "CREATE DATABASE r_pw"
    measure pgward_restore_verified "$B/pgward-restore" restore --from "$dir/pw/latest" --target-db r_pw --jobs 2 -q
    phases pgward_restore_verified
    measure pg_restore_j2 "$bin/pg_restore" -j 2 -d r_pg "$dir/fd"
  done
done

size_pw=$(du -sb "$dir/pw" | cut -f1)
size_zstd=$(stat -c %s "$dir/plain.sql.zst")
size_fd=$(du -sb "$dir/fd" | cut -f1)
med() { awk -v n="$1" -v f="$2" '$1 == n { print $f }' "$dir/results" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo
printf '%-24s %9s %9s %9s\n' command wall_s cpu_s rss_mb
for n in pgward_backup pg_dump_Fd_j2 pg_dump_zstd copy_floor pgward_restore pgward_verify pgward_restore_verified pg_restore_j2; do
  printf '%-24s %9s %9s %9s\n' "$n" "$(med $n 2)" "$(med $n 3)" "$(med $n 4)"
done
echo
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
echo "backup / pg_dump -Fd -j2      = $(ratio "$(med pgward_backup 2)" "$(med pg_dump_Fd_j2 2)")  (target <= 0.15)"
echo "backup / COPY floor           = $(ratio "$(med pgward_backup 2)" "$(med copy_floor 2)")  (target <= 1.6)"
echo "size   / pg_dump | zstd -3    = $(ratio "$size_pw" "$size_zstd")  (target <= 1.05; pgward $size_pw B, zstd pipeline $size_zstd B, -Fd $size_fd B)"
echo "restore / pg_restore -j2      = $(ratio "$(med pgward_restore 2)" "$(med pg_restore_j2 2)")  (target <= 0.6; into a new database)"
echo "  into an existing empty one   = $(ratio "$(med pgward_restore_verified 2)" "$(med pg_restore_j2 2)")  (checksums read first; after pgward-backup verify, as backup-cron.sh runs it)"
cat "$dir/phases"
rm -rf "$dir/pw" "$dir/fd" "$dir/plain.sql.zst"   # 2.6 GB of backups; $dir keeps the figures
echo "peak RSS: backup $(med pgward_backup 4) MB, restore $(med pgward_restore 4) MB, verify $(med pgward_verify 4) MB  (target <= 150 MB)"
