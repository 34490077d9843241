"""Build the wheel and import every module from it, so a forgotten subpackage fails here, not in an image."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_contains_and_imports_every_module(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
         str(ROOT)],
        check=True,
        cwd=tmp_path,
    )
    wheel = next(tmp_path.glob("storeagent-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    modules = sorted(n[:-3].replace("/", ".").removesuffix(".__init__") for n in names if n.endswith(".py"))
    sources = [p for d in ("agent", "operator", "storeagent") for p in (ROOT / d).rglob("*.py")]
    assert len(modules) == len(sources), f"wheel has {len(modules)} modules, tree has {len(sources)}"
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    code = "import importlib,sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
    subprocess.run([sys.executable, "-P", "-c", code, *modules], check=True, cwd=tmp_path,
                   env={"PYTHONPATH": str(target)})
