#!/usr/bin/env bash
# mypy and import-linter cannot follow setuptools' package-dir mapping (agent/ -> storeagent.agent) from the
# repository root, where the local storeagent/ folder shadows the installed mapping. Both run on a link tree
# with the installed layout: build/typecheck/storeagent/{__init__,cli,shop}.py + agent/ + operator/.
#   .ci/typecheck.sh          mypy (strict)
#   .ci/typecheck.sh imports  import-linter contracts
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tree=build/typecheck
rm -rf "$tree"; mkdir -p "$tree/storeagent"
for f in storeagent/*.py; do ln -s "../../../$f" "$tree/storeagent/$(basename "$f")"; done
ln -s ../../../agent "$tree/storeagent/agent"
ln -s ../../../operator "$tree/storeagent/operator"
ln -s ../../../storeagent/web "$tree/storeagent/web"
ln -s ../../../storeagent/speech "$tree/storeagent/speech"
if [ "${1:-}" = "imports" ]; then
  cd "$tree" && exec env PYTHONPATH="$root/$tree" "$root/.venv/bin/lint-imports" --config "$root/pyproject.toml"
fi
MYPYPATH="$tree" exec "${MYPY:-.venv/bin/mypy}" -p storeagent "$@"
