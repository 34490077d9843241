#!/usr/bin/env bash
# Builds images/{agent,speech,operator}/Containerfile with an OCI builder (buildah bud) on this machine, where no base image
# can be pulled, and compares each result with the image `make images` built (`make images-containerfiles`).
#
#   images/containerfiles.sh [agent|speech|operator ...]    default: all three; last line per image = JSON of the comparison
#
# The Containerfiles' base, debian:bookworm-slim, is stood in for by a local image made from Debian's packages
# (mmdebstrap --variant=minbase with the docs and locales left out, as the official slim image is made), tagged with
# that name in a private buildah store; `--pull=never` makes the build use it. Everything else runs as written: apt
# and pip inside the build's RUN steps, the multi-stage copy. Compared with `make images`: the image config (user,
# env, command, working dir, stop signal), the Python distributions under /opt/storeagent/site (name and version),
# images/debian-packages.txt installed, the storeagent user and its data dir. Exit 1 when they differ.
# Not in `make test`: it builds the images a second time (minutes each on the 2-core CI machine).
#
# Only for this host's builds (never in the images): pip inside the RUN steps reads the host's CA bundle
# (a bind mount of the build, not a layer), as the host's own pip does (PIP_CERT).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
cd "$repo"
names=("$@")
[[ ${#names[@]} -gt 0 ]] || names=(agent speech operator)
for n in "${names[@]}"; do [[ "$n" == agent || "$n" == speech || "$n" == operator ]] || { echo "unknown image $n" >&2; exit 2; }; done
paths="$(bash images/build.sh --paths)"
archive_of() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]]['archive'])" "$paths" "$1"; }
for n in "${names[@]}"; do
    [[ -s "$(archive_of "$n")" ]] || { echo "containerfiles: $(archive_of "$n") missing: run \`make images\`" >&2; exit 1; }
done
start=$SECONDS
work="$(mktemp -d "${TMPDIR:-/tmp}/storeagent-containerfiles.XXXXXX")"
trap 'rm -rf "$work"' EXIT
bh() { buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs "$@"; }

sources=""
for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    [[ -s "$f" ]] && { sources="$f"; break; }
done
[[ -n "$sources" ]] || { echo "containerfiles: no apt sources on this host" >&2; exit 1; }
excl=()
for p in /usr/share/doc/'*' /usr/share/man/'*' /usr/share/info/'*' /usr/share/locale/'*'; do
    excl+=("--dpkgopt=path-exclude=$p")
done
echo "containerfiles: making the debian:bookworm-slim stand-in (mmdebstrap minbase)" >&2
mmdebstrap --quiet --format=directory --variant=minbase "${excl[@]}" \
    --customize-hook='rm -rf "$1/var/lib/apt/lists"/* "$1/var/cache/apt"/*.bin' bookworm "$work/base" "$sources"
c="$(bh from --quiet scratch)"
bh add --quiet "$c" "$work/base" / >/dev/null
bh config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd '["bash"]' "$c"
bh commit --rm --quiet "$c" docker.io/library/debian:bookworm-slim >/dev/null
rm -rf "$work/base"
echo "containerfiles: stand-in base $(bh images --format '{{.Size}}' docker.io/library/debian:bookworm-slim)," \
     "$((SECONDS - start)) s" >&2

ca="${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}"
printf '[global]\ncert = /run/storeagent-build-ca.crt\n' >"$work/pip.conf"

describe() {  # IMAGE OUT.json: what the comparison looks at, read from the image's files and config
    local c m
    c="$(bh from --quiet --pull-never "$1")"
    m="$(bh mount "$c")"
    bh inspect --type image "$1" >"$work/config.json"  # buildah 1.28's --format has no json function
    python3 - "$m" "$work/config.json" images/debian-packages.txt >"$2" <<'EOF'
import json, os, re, sys
root, config, wanted = sys.argv[1], json.load(open(sys.argv[2]))["OCIv1"]["config"], sys.argv[3]
site = os.path.join(root, "opt/storeagent/site")
dists = {}
for d in os.listdir(site):
    if d.endswith(".dist-info"):
        name, version = d[: -len(".dist-info")].rsplit("-", 1)
        dists[re.sub(r"[-_.]+", "-", name).lower()] = version
status = open(os.path.join(root, "var/lib/dpkg/status")).read().split("\n\n")
installed = {m.group(1) for b in status if "Status: install ok installed" in b
             for m in [re.search(r"^Package: (\S+)", b, re.M)] if m}
want = [w.strip() for w in open(wanted) if w.strip() and not w.startswith("#")]
data = os.stat(os.path.join(root, "var/lib/storeagent"))
passwd = [l for l in open(os.path.join(root, "etc/passwd")) if l.startswith("storeagent:")]
stray = [p for p in ("etc/pip.conf", "run/storeagent-build-ca.crt") if os.path.lexists(os.path.join(root, p))]
print(json.dumps({
    "config": {k: config.get(k) for k in ("User", "Cmd", "Entrypoint", "WorkingDir", "StopSignal")}
              | {"Env": sorted(config.get("Env") or [])},
    "dists": dists, "debian_packages_missing": [w for w in want if w not in installed],
    "user": [l.strip() for l in passwd], "data_dir_owner": [data.st_uid, data.st_gid], "stray_build_files": stray,
}))
EOF
    bh umount "$c" >/dev/null
    bh rm "$c" >/dev/null
}

rc=0
for name in "${names[@]}"; do
    t0=$SECONDS
    echo "containerfiles: buildah bud -f images/$name/Containerfile, $((SECONDS - start)) s elapsed" >&2
    bh bud --quiet --pull=never --isolation=chroot --network=host --layers=false \
        -v "$ca:/run/storeagent-build-ca.crt:ro" -v "$work/pip.conf:/etc/pip.conf:ro" \
        -f "images/$name/Containerfile" -t "localhost/containerfile/$name:check" . >/dev/null
    built=$((SECONDS - t0))
    ref="$(bh pull --quiet "docker-archive:$(archive_of "$name")")"  # a local file: nothing is fetched
    describe "localhost/containerfile/$name:check" "$work/bud.json"
    describe "$ref" "$work/make.json"
    size="$(bh images --format '{{.Size}}' "localhost/containerfile/$name:check")"
    python3 - "$name" "$built" "$size" "$work/bud.json" "$work/make.json" <<'EOF' || rc=1
import json, sys
name, built, size = sys.argv[1], int(sys.argv[2]), sys.argv[3]
bud, make = (json.load(open(p)) for p in sys.argv[4:6])
diff = {}
for key in ("config", "user", "data_dir_owner", "debian_packages_missing", "stray_build_files"):
    if bud[key] != make[key] or (key in ("debian_packages_missing", "stray_build_files") and bud[key]):
        diff[key] = {"containerfile": bud[key], "make images": make[key]}
dists = {d: (bud["dists"].get(d), make["dists"].get(d)) for d in bud["dists"].keys() | make["dists"].keys()
         if bud["dists"].get(d) != make["dists"].get(d)}
if dists:
    diff["dists (containerfile, make images)"] = dict(sorted(dists.items()))
print(json.dumps({"image": name, "built_s": built, "size": size, "dists": len(bud["dists"]),
                  "same": not diff, "differences": diff}))
sys.exit(1 if diff else 0)
EOF
    bh rmi --force "localhost/containerfile/$name:check" "$ref" >/dev/null 2>&1 || true
done
echo "containerfiles: done after $((SECONDS - start)) s" >&2
exit $rc
