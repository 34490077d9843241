"""images/build.sh prunes old content-hashed results from the shared cache, and never what is current or in use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "images" / "build.sh"


def run(cache: Path, *args: str, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STOREAGENT_CACHE": str(cache), "PY": sys.executable, **env_extra}
    return subprocess.run(["bash", str(BUILD), *args], env=env, capture_output=True, text=True, timeout=60,
                          check=True)


def make(path: Path, age_min: float, directory: bool = False) -> Path:
    if directory:
        path.mkdir(parents=True)
        (path / "etc").mkdir()
    else:
        path.write_bytes(b"x")
    t = time.time() - age_min * 60
    os.utime(path, (t, t))
    return path


def test_prune_keeps_the_current_the_recent_and_the_newest_few(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    images = cache / "images"
    images.mkdir(parents=True)
    paths = json.loads(run(cache, "--paths").stdout.strip().splitlines()[-1])
    current = make(Path(paths["agent"]["archive"]), age_min=600)  # the current inputs' archive
    old = [make(images / f"agent-{i:012x}.tar", age_min=120 + i) for i in range(1, 6)]
    recent = make(images / "agent-00000000beef.tar", age_min=5)  # another clone may import it now
    op_old = make(images / "operator-00000000aaaa.tar", age_min=500)
    rootfs_old = [make(images / f"rootfs-{i:016x}-{i:016x}", age_min=300 + i, directory=True) for i in range(1, 5)]
    dead_tmp = make(images / "agent-00000000cafe.tar.tmp.999999999", age_min=1)  # no such pid
    live_tmp = make(images / f"agent-00000000f00d.tar.tmp.{os.getpid()}", age_min=1)  # a build still running
    slim = make(images / "agent-slim-00000000.tar", age_min=900)  # another kind's name: not ours to judge

    run(cache, "--paths")  # what a node tier run does before it imports: marks the current archives used
    out = run(cache, "--prune")

    left = {p.name for p in images.iterdir()}
    # --paths touched the current archive; the 3 most recently used agent archives are current, recent, old[0]
    assert current.name in left and recent.name in left and old[0].name in left
    assert not any(p.name in left for p in old[1:]), (left, out.stderr)
    assert op_old.name in left  # the only operator archive: within the newest 3 of its kind
    assert [p.name in left for p in rootfs_old] == [True, True, True, False]
    assert dead_tmp.name not in left and live_tmp.name in left and slim.name in left
    assert "pruning" in out.stderr


def test_prune_never_removes_the_current_inputs_results(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    (cache / "images").mkdir(parents=True)
    paths = json.loads(run(cache, "--paths").stdout.strip().splitlines()[-1])
    current = [make(Path(paths[k]["archive"]), age_min=900) for k in ("agent", "operator", "pause")]
    other = make(cache / "images" / "operator-0000000000ff.tar", age_min=900)
    run(cache, "--prune", STOREAGENT_IMAGES_KEEP="0", STOREAGENT_IMAGES_KEEP_MINUTES="0")
    assert all(p.exists() for p in current) and not other.exists()
