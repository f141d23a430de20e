#!/usr/bin/env bash
# The README's test command: installs what the tests need when it is missing (Debian
# packages, and SeaweedFS under target/), builds every binary and runs every test against
# throwaway PostgreSQL clusters and a throwaway S3 server, on the machine's PostgreSQL
# (Debian's 15); then the per-major subset (scripts/lib/pg-matrix.sh) on 14, 16, 17 and
# 18, from target/pg. Extra arguments go to `cargo test` and skip the subset
# (`bash scripts/test.sh -p pgward-tests --test tls`); PGWARD_TEST_PG=17 runs them on 17.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/install.sh
pgw_install test
cargo build --workspace --locked
cargo test --workspace --locked "$@"
if [ $# -eq 0 ]; then
  . scripts/lib/pg-matrix.sh
  for major in 14 16 17 18; do
    pgw_pg_matrix "$major"
  done
fi
