"""`make bench-operator` in miniature: both control planes (floor and operator), 4 shops, 2 onboarded.

Checks that the benchmark runs end to end and reports what it claims (floor, ratio, CPU, requests by verb from
the audit log, the tail, onboarding latencies); it asserts no speed target: figures come from the big runs
(docs/benchmarks.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_operator_bench_smoke_reports_floor_ratio_requests_tail_and_onboarding() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "operator_bench.py"), "--count", "4", "--onboard", "2",
         "--onboard-interval", "1", "--settle", "1", "--timeout", "240"],
        capture_output=True, text=True, timeout=540, check=False,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    floor, op = result["floor"], result["operator"]
    assert floor["converge_s"] > 0 and op["converge_s"] > 0 and op["ready"] == 4
    assert result["ratio_to_floor"] == round(op["converge_s"] / floor["converge_s"], 2)
    # The floor applied the six children of each shop itself (plus the StoreAgent POST): from the audit log.
    assert floor["requests"]["per_shop"]["patch deployments"] == 1
    assert floor["requests"]["per_shop"]["create storeagents"] == 1
    # The operator applied each child, wrote each status, and watched; nobody else's requests are counted.
    per_shop = op["requests"]["per_shop"]
    assert per_shop["patch deployments"] >= 1 and per_shop.get("patch storeagents/status", 0) >= 1
    assert "create storeagents" not in per_shop  # the bench's own POSTs are the admin's, not the operator's
    assert op["operator_cpu_s"] > 0 and op["operator_peak_rss_mb"] > 0 and op["reloadxml_rounds"] >= 1
    assert op["tail"]["t100_s"] == op["converge_s"] and op["tail"]["late_shops"] >= 0
    onboarding = op["onboarding"]
    assert onboarding["shops"] == onboarding["ready"] == 2
    assert 0 < onboarding["p50_s"] <= onboarding["p95_s"] <= onboarding["max_s"]
