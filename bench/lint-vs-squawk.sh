#!/usr/bin/env bash
# pgward-validate lint against squawk, the linter teams already run, on real Prisma
# histories: per rule family, the statements each flags, both, only one (bench/
# lint_vs_squawk.py maps the rules into families); then the time of each on the largest
# history. squawk (PyPI's squawk-cli) is installed into a venv under target/ when missing.
#   bash bench/lint-vs-squawk.sh [HISTORY_DIR...]   (default: tests/fixtures/corpus/* and
#                                                    ../shared/corpus/* when present)
#   LIST="lock timeout" bash bench/lint-vs-squawk.sh   also lists that family's disagreements
# squawk runs with --assume-in-transaction --pg-version 15 (as Prisma runs a file), pgward
# with --all, so earlier files of a history count as applied.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/squawk-venv
if [ ! -x "$venv/bin/squawk" ]; then
  echo "== installing squawk-cli into $venv" >&2
  if ! { python3 -m venv "$venv" && "$venv/bin/pip" install -q squawk-cli; } >&2; then
    echo "skipped: squawk could not be installed (python3 -m venv and PyPI's squawk-cli are needed)" >&2
    exit 0
  fi
fi
cargo build -p pgward-validate --release --quiet
V=target/release/pgward-validate
S=$venv/bin/squawk
histories=("$@")
if [ ${#histories[@]} -eq 0 ]; then
  for d in tests/fixtures/corpus/*/ ../shared/corpus/*/; do
    [ -d "$d/migrations" ] && histories+=("${d%/}")
  done
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "pgward: $("$V" --version); squawk: $("$S" --version)"
largest="" largest_n=0
seen=" "
for h in "${histories[@]}"; do
  name=$(basename "$h")
  # The same history in two places (the repository's copy and ../shared) counts once.
  case "$seen" in *" $name "*) continue ;; esac
  seen="$seen$name "
  n=$(find "$h/migrations" -name migration.sql | wc -l)
  if [ "$n" -gt "$largest_n" ]; then largest=$h largest_n=$n; fi
  "$V" lint --all --dir "$h/migrations" > "$out/$name.pgward.json" 2>/dev/null || true
  find "$h/migrations" -name migration.sql -print0 | sort -z \
    | xargs -0 "$S" --assume-in-transaction --pg-version 15 --reporter json > "$out/$name.squawk.json" 2>/dev/null || true
  echo
  echo "== $name ($n migrations)"
  python3 bench/lint_vs_squawk.py "$out/$name.pgward.json" "$out/$name.squawk.json" "$h/migrations" ${LIST:+--list "$LIST"}
done
echo
echo "== time on $(basename "$largest") ($largest_n migrations), best of 5"
best() {
  local best=999999 t0 t1 ms
  for _ in 1 2 3 4 5; do
    t0=$(date +%s%N); "$@" >/dev/null 2>&1 || true; t1=$(date +%s%N)
    ms=$(( (t1 - t0) / 1000000 )); [ "$ms" -lt "$best" ] && best=$ms
  done
  echo "$best"
}
pw=$(best "$V" lint --all --dir "$largest/migrations")
sq=$(best sh -c "find '$largest/migrations' -name migration.sql -print0 | xargs -0 '$S' --assume-in-transaction --pg-version 15 --reporter json")
echo "pgward-validate lint --all: ${pw} ms; squawk: ${sq} ms"
