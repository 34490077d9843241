"""`make bench-speech` in miniature: one real-speech call through the speech service and one in-process, one
question each. Checks the benchmark runs and reports what it claims; it asserts no capacity target (the figures
come from `make bench-speech`, docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_speech_bench_smoke_reports_both_modes() -> None:
    out = subprocess.run([sys.executable, "speech_bench.py", "--ladder", "1", "--questions", "1", "--workers", "1",
                          "--saturation-s", "60"],  # a starved CI box must not turn the one call away
                         capture_output=True, text=True, timeout=400, check=False, cwd=ROOT / "bench")
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    rungs = [json.loads(line.split(": ", 1)[1]) for line in lines if line.startswith("rung: ")]
    assert [r["mode"] for r in rungs] == ["service", "offline"]
    for r in rungs:
        assert r["calls"] == 1 and r["errors"] == 0 and r["turns"] >= 1, r
        assert r["agent_cpu_s_per_call_minute"] > 0
        assert "word_recall" in r and "response_p95_ms" in r  # recognition and speed: figures, not asserted
    service = rungs[0]
    assert service["speech_cpu_s_per_call_minute"] > 0 and service["rtf_stt"] and service["rtf_tts"]
    assert len(service["worker_rss_mb"]) == 1 and service["worker_rss_mb"][0] > 50
    assert [m["mode"] for m in result["results"]] == ["service", "offline"]
    for m in result["results"]:
        assert m["max_calls"] in (0, 1) and isinstance(m["slip"], str)
