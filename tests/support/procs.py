"""Shared handling of the subprocesses tests start (agent, operator): graceful stop and log tails."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path


def terminate(proc: subprocess.Popen[bytes] | subprocess.Popen[str] | None, grace_s: float = 20.0) -> None:
    """SIGTERM (the process drains), then SIGKILL if it has not exited within `grace_s`."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def log_tail(path: Path, n: int = 4000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else ""
