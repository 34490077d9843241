#!/usr/bin/env bash
# Builds helm from the Go module proxy at a pinned version, once per machine.
#
#   tests/tools/build-helm.sh          build if missing; last line = path of the helm binary
#   tests/tools/build-helm.sh --path   only print that path (no build)
#
# The binary lands outside the repo in ${STOREAGENT_CACHE:-$HOME/.cache/storeagent}/bin/helm-<version>/helm and
# Go's GOCACHE/GOMODCACHE are reused. Niced and -p 2 (override: STOREAGENT_GO_P): CI machines are small and shared.
set -euo pipefail
# Helm 4 (chart apiVersion v2 stays compatible with Helm 3). Bump here only; the cache key follows.
HELM_MODULE="helm.sh/helm/v4"
HELM_VERSION="${STOREAGENT_HELM_VERSION:-v4.3.1}"
out="${STOREAGENT_CACHE:-$HOME/.cache/storeagent}/bin/helm-${HELM_VERSION}"

if [[ "${1:-}" == "--path" ]]; then
    echo "$out/helm"
    exit 0
fi
if [[ -x "$out/helm" ]]; then
    echo "helm: ${HELM_VERSION} cached" >&2
    echo "$out/helm"
    exit 0
fi

export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
mkdir -p "$out"
start=$SECONDS
echo "helm: building ${HELM_MODULE}/cmd/helm@${HELM_VERSION} with -p ${STOREAGENT_GO_P:-2}" >&2
# `go install pkg@version` builds from the module's own go.mod/go.sum (checksummed), outside any local module.
# The version is stamped like helm's release Makefile does, so `helm version` reports the real release.
# A private temp dir: two test runs building at once must not trip over each other.
tmpbin="$(mktemp -d "$out/.tmp.XXXXXX")"
trap 'rm -rf "$tmpbin"' EXIT
GOBIN="$tmpbin" nice -n 10 go install -p "${STOREAGENT_GO_P:-2}" \
    -ldflags "-s -w -X ${HELM_MODULE}/internal/version.version=${HELM_VERSION} -X ${HELM_MODULE}/internal/version.gitTreeState=clean" \
    "${HELM_MODULE}/cmd/helm@${HELM_VERSION}"
mv "$tmpbin/helm" "$out/helm"
echo "helm: built ${HELM_VERSION} in $((SECONDS - start)) s" >&2
echo "$out/helm"
