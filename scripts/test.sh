#!/usr/bin/env bash
# The README's test command: installs what the tests need when it is missing (Debian
# packages, and SeaweedFS under target/), builds every binary and runs every test against
# throwaway PostgreSQL clusters and a throwaway S3 server. Extra arguments go to
# `cargo test` (`bash scripts/test.sh -p pgward-tests --test tls`).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/install.sh
pgw_install test
cargo build --workspace --locked
cargo test --workspace --locked "$@"
