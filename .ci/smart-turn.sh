#!/usr/bin/env bash
# The smart-turn v3.2 end-of-turn model (BSD-2-Clause, Daily) for agent/providers/smart_turn.py. Its weights ship
# inside the pipecat-ai wheel: only the .onnx and the wheel's licence are taken from it into the venv (the framework
# is not installed). The wheel is kept in the cache, so a second run downloads nothing; a file whose sha256 is not
# the pinned one is refused. Usage: .ci/smart-turn.sh <venv>
set -euo pipefail
venv=$1
version=1.14.0
member=pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx
sha=2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f  # = MODEL_SHA256 in smart_turn.py
dest=$venv/share/storeagent/smart-turn
if [ -f "$dest/smart-turn-v3.2-cpu.onnx" ] && echo "$sha  $dest/smart-turn-v3.2-cpu.onnx" | sha256sum -c --quiet -; then
    touch "$dest/smart-turn-v3.2-cpu.onnx"; exit 0  # make sees it newer than this script
fi
cache=${STOREAGENT_CACHE:-$HOME/.cache/storeagent}/wheels
wheel=$cache/pipecat_ai-$version-py3-none-any.whl
mkdir -p "$cache" "$dest"
[ -f "$wheel" ] || "$venv/bin/pip" download -q --no-deps --only-binary=:all: -d "$cache" "pipecat-ai==$version"
"$venv/bin/python" - "$wheel" "$member" "$sha" "$dest" <<'PY'
import hashlib, os, sys, zipfile
wheel, member, sha, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    data = z.read(member)
    licence = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/licenses/LICENSE")))
if hashlib.sha256(data).hexdigest() != sha:
    sys.exit(f"{wheel}: {member} is not the pinned smart-turn v3.2 (sha256 differs)")
for name, body in (("LICENSE", licence), ("smart-turn-v3.2-cpu.onnx", data)):  # model last: it marks a whole copy
    tmp = os.path.join(dest, name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(body)
    os.replace(tmp, os.path.join(dest, name))
PY
