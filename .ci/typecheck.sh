#!/usr/bin/env bash
# mypy cannot follow setuptools' package-dir mapping (agent/ -> storeagent.agent), so type-check a link tree
# that has the installed layout: build/typecheck/storeagent/{__init__,cli,shop}.py + agent/ + operator/.
set -euo pipefail
cd "$(dirname "$0")/.."
tree=build/typecheck
rm -rf "$tree"; mkdir -p "$tree/storeagent"
for f in storeagent/*.py; do ln -s "../../../$f" "$tree/storeagent/$(basename "$f")"; done
ln -s ../../../agent "$tree/storeagent/agent"
ln -s ../../../operator "$tree/storeagent/operator"
MYPYPATH="$tree" exec "${MYPY:-.venv/bin/mypy}" -p storeagent "$@"
