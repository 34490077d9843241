#!/usr/bin/env bash
# Builds the kubelet of the real-node test tier (tests/node/) from the same pinned k8s.io/kubernetes module as the
# control plane (go.mod here), into the control plane's bin directory (`make kubelet`).
#
#   tests/controlplane/build-kubelet.sh    build it when missing, print progress; last line = the bin directory
#
# A separate script (not a target of build.sh) so that the kwok-only tiers never wait for it; it reuses the
# kube-apiserver build's Go cache for most packages. Niced and -p 2 (override: STOREAGENT_GO_P).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
out="$(bash build.sh --dir)"
k8s="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit}' go.mod)"
mkdir -p "$out"
if [[ -x "$out/kubelet" ]]; then
    echo "kubelet: cached" >&2
    echo "$out"
    exit 0
fi
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
minor="${k8s#v1.}"; minor="${minor%%.*}"
kv="-X k8s.io/component-base/version.gitVersion=${k8s} -X k8s.io/component-base/version.gitMajor=1"
kv="$kv -X k8s.io/component-base/version.gitMinor=${minor} -X k8s.io/component-base/version.gitTreeState=clean"
p="${STOREAGENT_GO_P:-2}"
start=$SECONDS
echo "kubelet: building k8s.io/kubernetes/cmd/kubelet ${k8s} with -p $p" >&2
nice -n 10 go build -p "$p" -ldflags "-s -w $kv" -o "$out/kubelet.tmp.$$" k8s.io/kubernetes/cmd/kubelet
mv "$out/kubelet.tmp.$$" "$out/kubelet"
echo "kubelet: built in $((SECONDS - start)) s" >&2
echo "$out"
