"""`make bench` in miniature: the real agent process and the external load generator, 3-4 calls, a few seconds.

Checks that the benchmark runs and reports what it claims (every key, counts that add up, barge-ins timed from
the caller's onset); it asserts no speed target: `make bench` on a quiet machine is where figures come from.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OLD_KEYS = {"overhead_p95_ms", "overhead_p50_ms", "barge_in_stop_p95_ms", "barge_in_stop_p50_ms", "latency_calls",
            "max_calls_without_slip", "agent_cores_at_max", "calls_per_core", "cpu_s_per_call_minute", "machine"}
NEW_KEYS = {"barge_ins", "barge_in_missed", "slip_reason"}


def test_bench_smoke_reports_every_key_with_consistent_counts() -> None:
    calls, questions = 3, 1
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "agent_bench.py"), "--calls", str(calls), "--ladder", "4",
         "--retries", "0", "--questions", str(questions), "--seconds-per-char", "0.03", "--ramp", "0.3"],
        capture_output=True, text=True, timeout=240, check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    assert OLD_KEYS | NEW_KEYS <= result.keys()
    assert result["latency_calls"] == calls
    # every call interrupted its last answer once, and the agent cleared every time
    assert result["barge_ins"] == calls and result["barge_in_missed"] == 0
    # one reply per question plus the reply to the interruption, each timed to its first byte received
    assert result["turns"] == calls * (questions + 1) and result["turns_unanswered"] == 0
    assert result["overhead_p50_ms"] is not None and result["overhead_p50_ms"] <= result["overhead_p95_ms"]
    # from the scheduled onset: the third speech frame (speech_start_ms = 60) goes up 40 ms after the first,
    # so no clear can be received sooner (a clock taken when the caller's tick woke could say less)
    assert result["barge_in_clear_p95_ms"] >= 40
    assert 0 <= result["barge_in_stop_p50_ms"] <= result["barge_in_stop_p95_ms"]
    rungs = [json.loads(line.split(": ", 1)[1]) for line in lines if line.startswith("rung: ")]
    assert len(rungs) == 1 and rungs[0]["calls"] == 4 and rungs[0]["barge_ins"] == 4
    slipped = bool(rungs[0]["slip_reasons"])
    assert result["max_calls_without_slip"] == (0 if slipped else 4)
    assert isinstance(result["slip_reason"], str)
    assert result["slip_reason"].startswith("at 4 calls: " if slipped else "none up to 4")
