#!/usr/bin/env bash
# A minimal Debian bookworm rootfs tarball from Debian's packages (no base image is pulled), for images/build.sh.
#
#   images/rootfs.sh OUTDIR      a directory tree: the packages of images/debian-packages.txt + the storeagent user (10001)
#
# The host's apt sources are used, so the rootfs comes from the same mirror as the host's packages.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$1"
sources=""
for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    [[ -s "$f" ]] && { sources="$f"; break; }
done
[[ -n "$sources" ]] || { echo "rootfs.sh: no apt sources on this host" >&2; exit 1; }
include="$(grep -v '^#' "$here/debian-packages.txt" | xargs | tr ' ' ',')"
excl=()
for p in /usr/share/doc/'*' /usr/share/man/'*' /usr/share/info/'*' /usr/share/locale/'*' /usr/share/lintian/'*'; do
    excl+=("--dpkgopt=path-exclude=$p")
done
mmdebstrap --quiet --format=directory --variant=essential --include="$include" "${excl[@]}" \
    --customize-hook='echo "storeagent:x:10001:10001:StoreAgent:/var/lib/storeagent:/usr/sbin/nologin" >>"$1/etc/passwd"' \
    --customize-hook='echo "storeagent:x:10001:" >>"$1/etc/group"' \
    --customize-hook='mkdir -p "$1/var/lib/storeagent" "$1/etc/storeagent" && chown 10001:10001 "$1/var/lib/storeagent"' \
    --customize-hook='rm -rf "$1/var/cache/debconf"/*-old "$1/var/log"/*' \
    bookworm "$out" "$sources"
