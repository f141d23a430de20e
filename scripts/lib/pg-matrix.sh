# shellcheck shell=bash
# The tests that run on every PostgreSQL major besides the one the full suite runs on
# (docs/compatibility.md): sourced by scripts/test.sh.
#
#   pgw_pg_matrix MAJOR   runs the subset with PGWARD_TEST_PG=MAJOR (the harness's clusters
#                         and the binaries' client programs of that major, from target/pg)
#
# The subset: the corpus history deployed and compared with psql's, status, drift clean
# and drifted, report health (tests/tests/pg_versions.rs, this_major_*); rollback and
# status (migrate_deploy); drift per object kind (validate_drift); report health's locks
# and leftovers (report); the rich fixture's backup/restore round trip (backup_restore);
# large objects with owners, ACLs and comments, directory and sql formats
# (backup_large_objects); TLS connect, deploy and backup (tls); the lint's
# lock table against the server (pgward-validate's lock_table); lint reading the server's
# major (lint_versions).

#
# On 16 the client programs are PyPI pgserver's 16.2 (the only 16 ones a registry ships;
# 17's and 18's cannot restore into 16), built without TLS and with a psql older than
# restricted mode, so two tests are left out there, by name, and the run says so: backup
# over verify-full TLS (tls) and the --backup-format sql restores (backup_restore,
# backup_large_objects), which
# pgward refuses with that psql, as it must.

# Every run names --workspace, as the full suite's does, so the test binaries it built
# are reused (with -p, cargo resolves other features and builds them all again).
pgw_pg_matrix() {
  local major=$1 started=$SECONDS skip=()
  echo "== tests on PostgreSQL $major (PGWARD_TEST_PG=$major)" >&2
  if [ "$major" = 16 ]; then
    skip=(--skip backup_workers_read_their_copy_streams_over_verified_tls
      --skip a_sql_format_backup_)
    echo "== PostgreSQL 16: not run (its client programs lack TLS and restricted mode): ${skip[*]}" >&2
  fi
  export PGWARD_TEST_PG=$major
  cargo test --locked --workspace --test pg_versions -- this_major_
  cargo test --locked --workspace --test migrate_deploy -- rollback_ status
  cargo test --locked --workspace --test validate_drift -- \
    corpus_langfuse_has_no_drift added_column changed_column dropped_index added_check \
    changed_foreign_key changed_view changed_function added_enum_value changed_sequence \
    added_trigger created_extension
  cargo test --locked --workspace --test report -- health
  cargo test --locked --workspace --test backup_restore -- \
    a_rich_database_round_trips a_sql_format_backup_restores "${skip[@]}"
  cargo test --locked --workspace --test backup_large_objects -- \
    large_objects_round_trip_with_owners a_sql_format_backup_carries "${skip[@]}"
  cargo test --locked --workspace --test tls -- "${skip[@]}"
  cargo test --locked --workspace --test lock_table
  cargo test --locked --workspace --test lint_versions -- the_default_mode
  unset PGWARD_TEST_PG
  echo "== PostgreSQL $major: $((SECONDS - started)) s" >&2
}
