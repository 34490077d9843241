"""The chart under test and the real helm binary (built from the Go module proxy by tests/tools/build-helm.sh)."""

from __future__ import annotations

import functools
import json
import os
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "storeagent"
BUILD = REPO / "tests" / "tools" / "build-helm.sh"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))

Manifest = dict[str, Any]


@functools.cache
def helm_binary() -> Path:
    """The pinned helm that `make helm` builds before any test runs; a test never builds it (see controlplane)."""
    path = Path(subprocess.run([str(BUILD), "--path"], check=True, capture_output=True, text=True).stdout.strip())
    if not path.exists():
        raise RuntimeError(f"helm not built: {path} missing; run `make helm` (`make test` runs it before pytest)")
    return path


def helm(*args: str, env: Mapping[str, str] | None = None, check: bool = True,
         input: str | None = None) -> subprocess.CompletedProcess[str]:
    # Keep helm's cache/config/data out of $HOME and away from other helpers' runs.
    base = Path(os.environ.get("STOREAGENT_CACHE", Path.home() / ".cache" / "storeagent")) / "helm-home"
    full_env = {**os.environ, "HELM_CACHE_HOME": str(base / "cache"), "HELM_CONFIG_HOME": str(base / "config"),
                "HELM_DATA_HOME": str(base / "data"), **(env or {})}
    proc = subprocess.run([str(helm_binary()), *args], capture_output=True, text=True, env=full_env, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def value_args(values_files: Iterable[Path] = (), sets: Mapping[str, Any] | None = None) -> list[str]:
    args: list[str] = []
    for f in values_files:
        args += ["-f", str(f)]
    for key, value in (sets or {}).items():
        args += ["--set-json", f"{key}={json.dumps(value)}"]
    return args


def template_text(values_files: Sequence[Path] = (), sets: Mapping[str, Any] | None = None, *,
                  release: str = "sa", namespace: str = "storeagent-system", include_crds: bool = True,
                  extra: Sequence[str] = ()) -> str:
    args = ["template", release, str(CHART), "--namespace", namespace, *value_args(values_files, sets), *extra]
    if include_crds:
        args.append("--include-crds")
    return helm(*args).stdout


def render(values_files: Sequence[Path] = (), sets: Mapping[str, Any] | None = None, **kw: Any) -> list[Manifest]:
    """`helm template` parsed into objects (empty documents dropped)."""
    return [d for d in yaml.safe_load_all(template_text(values_files, sets, **kw)) if d]


def find(objs: Iterable[Manifest], kind: str, name_suffix: str = "") -> list[Manifest]:
    return [o for o in objs if o["kind"] == kind and o["metadata"]["name"].endswith(name_suffix)]


def one(objs: Iterable[Manifest], kind: str, name_suffix: str = "") -> Manifest:
    found = find(objs, kind, name_suffix)
    assert len(found) == 1, f"expected one {kind} *{name_suffix}, found {[o['metadata']['name'] for o in found]}"
    return found[0]


def pod_spec(workload: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec
