#!/usr/bin/env bash
# Generates the prometheus-operator CRDs (PodMonitor, ServiceMonitor, PrometheusRule) from the Go types pinned
# in go.mod, with the pinned controller-gen, into the cache; last line = the directory holding them.
#
#   tests/tools/monitoring-crds/build.sh        build/generate if missing
#   tests/tools/monitoring-crds/build.sh --dir  only print the directory
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
sum="$(cat go.mod go.sum | sha256sum | cut -c1-8)"
out="${STOREAGENT_CACHE:-$HOME/.cache/storeagent}/monitoring-crds-${sum}"
if [[ "${1:-}" == "--dir" ]]; then
    echo "$out"
    exit 0
fi
want=(monitoring.coreos.com_podmonitors.yaml monitoring.coreos.com_servicemonitors.yaml
      monitoring.coreos.com_prometheusrules.yaml)
if [[ -f "$out/${want[0]}" && -f "$out/${want[1]}" && -f "$out/${want[2]}" ]]; then
    echo "$out"
    exit 0
fi
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
start=$SECONDS
mkdir -p "$(dirname "$out")"
tmp="$(mktemp -d "$out.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
# maxDescLen=0: descriptions are not needed for validation and make the CRDs several times smaller.
nice -n 10 go tool controller-gen crd:crdVersions=v1,maxDescLen=0 \
    paths=github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1 output:crd:dir="$tmp" >&2
for f in "${want[@]}"; do
    test -s "$tmp/$f" || { echo "monitoring-crds: $f was not generated" >&2; exit 1; }
done
rm -rf "$out" && mv "$tmp" "$out" && trap - EXIT
echo "monitoring-crds: generated in $((SECONDS - start)) s" >&2
echo "$out"
