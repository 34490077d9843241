#!/usr/bin/env bash
# Builds the test control plane from the Go module proxy at the versions pinned in go.mod, once per pin.
#
#   tests/controlplane/build.sh          build what is missing, print progress, last line = the bin directory
#   tests/controlplane/build.sh --dir    only print the bin directory (no build)
#
# Binaries land outside the repo in ${STOREAGENT_CACHE:-$HOME/.cache/storeagent}/bin/<pin>/ and Go's own
# GOCACHE/GOMODCACHE are reused, so a second run on the same machine is a no-op and a go.mod bump only
# recompiles what changed. Niced and -p 2 (override: STOREAGENT_GO_P): CI machines are small and shared.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

ver() { awk -v m="$1" '$1 == m && $2 ~ /^v/ {print $2; exit}' go.mod; }
k8s="$(ver k8s.io/kubernetes)"
etcd="$(ver go.etcd.io/etcd/server/v3)"
kwok="$(ver sigs.k8s.io/kwok)"
sum="$(cat go.mod go.sum | sha256sum | cut -c1-8)"
pin="k8s-${k8s}_etcd-${etcd}_kwok-${kwok}_${sum}"
out="${STOREAGENT_CACHE:-$HOME/.cache/storeagent}/bin/${pin}"

if [[ "${1:-}" == "--dir" ]]; then
    echo "$out"
    exit 0
fi

export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
mkdir -p "$out"
# kube version stamping: kubectl, helm and kube-apiserver's /version then report the real release.
minor="${k8s#v1.}"; minor="${minor%%.*}"
kv="-X k8s.io/component-base/version.gitVersion=${k8s} -X k8s.io/component-base/version.gitMajor=1"
kv="$kv -X k8s.io/component-base/version.gitMinor=${minor} -X k8s.io/component-base/version.gitTreeState=clean"
kv="$kv -X k8s.io/client-go/pkg/version.gitVersion=${k8s} -X k8s.io/client-go/pkg/version.gitMajor=1"
kv="$kv -X k8s.io/client-go/pkg/version.gitMinor=${minor}"

# name  package  extra-ldflags
targets=(
    "etcd go.etcd.io/etcd/server/v3 "
    "kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver $kv"
    "kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager $kv"
    "kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler $kv"
    "kwok sigs.k8s.io/kwok/cmd/kwok -X sigs.k8s.io/kwok/pkg/consts.Version=${kwok}"
    "kubectl k8s.io/kubernetes/cmd/kubectl $kv"
)
p="${STOREAGENT_GO_P:-2}"
start=$SECONDS
for t in "${targets[@]}"; do
    read -r name pkg flags <<<"$t"
    if [[ -x "$out/$name" ]]; then
        echo "controlplane: $name cached"
        continue
    fi
    echo "controlplane: building $name ($pkg) with -p $p, $((SECONDS - start)) s elapsed" >&2
    t0=$SECONDS
    # A per-process temp name: two concurrent builds (two CI runs on one cache) must not rename each other's file.
    nice -n 10 go build -p "$p" -ldflags "-s -w $flags" -o "$out/$name.tmp.$$" "$pkg"
    mv "$out/$name.tmp.$$" "$out/$name"
    echo "controlplane: built $name in $((SECONDS - t0)) s" >&2
done
# kwok ships no stages built in: take the "fast" node/pod lifecycle and the lease heartbeat from the pinned
# module (node heartbeats keep the node-lifecycle controller from evicting the fake pods).
if [[ ! -s "$out/kwok-stages.yaml" ]]; then
    stages="$(go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage"
    for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
             pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
        echo "---"; cat "$stages/$f"
    done >"$out/kwok-stages.yaml.tmp.$$"
    mv "$out/kwok-stages.yaml.tmp.$$" "$out/kwok-stages.yaml"
fi
echo "controlplane: all binaries ready after $((SECONDS - start)) s" >&2
echo "$out"
