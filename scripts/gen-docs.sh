#!/usr/bin/env bash
# Writes shell completions and man pages of every pgward binary, generated from their clap
# definitions, into DIR (default target/docs): DIR/completions/{bash,zsh,fish}/ and DIR/man/.
#   bash scripts/gen-docs.sh [DIR]
#   sudo cp target/docs/man/*.1 /usr/local/share/man/man1/
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/docs}
bin=${PGWARD_BIN:-target/debug}
mkdir -p "$out/man" "$out/completions/bash" "$out/completions/zsh" "$out/completions/fish"
for tool in migrate backup restore validate report; do
  b="$bin/pgward-$tool"
  [ -x "$b" ] || { echo "skipping pgward-$tool: $b not built" >&2; continue; }
  "$b" --generate man > "$out/man/pgward-$tool.1"
  "$b" --generate bash > "$out/completions/bash/pgward-$tool"
  "$b" --generate zsh > "$out/completions/zsh/_pgward-$tool"
  "$b" --generate fish > "$out/completions/fish/pgward-$tool.fish"
done
echo "completions and man pages in $out" >&2
