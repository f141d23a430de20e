# shellcheck shell=bash
# Throwaway PostgreSQL cluster for the demo and the benchmarks (sourced, not run).
# pg_cluster_start DIR PORT: initdb into DIR (as the postgres user when we are root),
# start the server on 127.0.0.1:PORT with its socket in DIR, and stop it and remove DIR
# when the calling shell exits.

pg_bindir() {
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
    pg_config --bindir
  else
    printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1
  fi
}

pg_as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_cluster_start() {
  local dir=$1 port=$2 bin
  bin=$(pg_bindir)
  [ -x "$bin/initdb" ] || { echo "PostgreSQL server binaries not found: apt-get install postgresql" >&2; return 1; }
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  pg_as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 --locale=C >/dev/null
  pg_as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off ${PG_EXTRA_OPTS:-}" start >/dev/null
  # The paths are fixed now, when the trap is set (the variables are local).
  # shellcheck disable=SC2064
  trap "pg_as_owner '$bin/pg_ctl' -D '$dir/data' -m immediate stop >/dev/null 2>&1; rm -rf '$dir'" EXIT
  export PGHOST=$dir PGPORT=$port PGUSER=postgres
}

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
