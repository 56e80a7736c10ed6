#!/usr/bin/env bash
# mypy over the one import namespace. The source tree keeps ingest/, store/, … at the top (design.md's
# layout) and pyproject.toml maps them to wattbill.ingest, wattbill.store, …; mypy cannot follow that
# mapping (nor an editable install's import hook), so it checks a tree of links laid out as installed:
# build/typecheck/wattbill/{cli.py, …, ingest -> ingest/, …}, plus the benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
tree=build/typecheck
rm -rf "$tree"
mkdir -p "$tree/wattbill"
for entry in wattbill/*; do
    case "$entry" in *__pycache__*) continue ;; esac
    ln -s "$repo/$entry" "$tree/wattbill/$(basename "$entry")"
done
for pkg in ingest store tariffs diagnostics labels bills; do
    ln -s "$repo/$pkg" "$tree/wattbill/$pkg"
done
ln -s "$repo/benchmarks" "$tree/benchmarks"
cd "$tree"
exec "$repo/.venv/bin/mypy" --config-file "$repo/pyproject.toml" --cache-dir "$repo/.mypy_cache" wattbill benchmarks "$@"
