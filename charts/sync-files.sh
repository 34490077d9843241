#!/usr/bin/env bash
# Copies the files the chart ships but does not own into it: Helm can only read files inside the chart.
#   crds/            -> charts/storeagent/crds/                (generated from the operator's model: make crds)
#   freeswitch/conf/ -> charts/storeagent/files/freeswitch/conf/
# tests/unit/test_chart_files.py fails when a copy drifts; `make chart-sync` fixes it.
set -euo pipefail
cd "$(dirname "$0")/.."
sync() {
    local src="$1" dst="$2"
    rm -rf "$dst"
    mkdir -p "$dst"
    if [[ -d "$src" ]] && [[ -n "$(ls -A "$src")" ]]; then
        cp -R "$src"/. "$dst"/
    fi
    echo "chart-sync: $src -> $dst ($(find "$dst" -type f | wc -l) files)"
}
sync crds charts/storeagent/crds
sync freeswitch/conf charts/storeagent/files/freeswitch/conf
