"""`make bench-operator`: N StoreAgents applied at once against the local control plane.

Measures the time from the first create until every StoreAgent reports Ready=True at its generation (pods
Running and Ready under kwok, dialplans written, reloadxml acknowledged by the FreeSWITCH ESL stand-in), and the
operator process's peak RSS (VmHWM). The operator runs as in production: a subprocess under the chart's RBAC,
default settings. Prints a human summary, appends nothing anywhere; the LAST line is one JSON object:
{"storeagents": N, "converge_s": ..., "operator_peak_rss_mb": ...}

    python bench/operator_bench.py [--count 1000] [--replicas 1] [--timeout 900]
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
import urllib.error
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.controlplane import ControlPlane
from support.fake_freeswitch_esl import FakeFreeSwitchEsl
from support.operator_env import API, OperatorProcess, create_namespace, install

NS = "bench"


def storeagent(i: int, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "storeagent.dev/v1alpha1", "kind": "StoreAgent",
        "metadata": {"name": f"shop-{i:04d}", "namespace": NS},
        "spec": {
            "phoneNumbers": [f"+1555{i:07d}"],
            "profile": {"name": f"Shop {i}", "timezone": "America/New_York",
                        "hours": {"monday": [{"open": "08:00", "close": "17:00"}]},
                        "menu": [{"name": "coffee", "price": "2.50"}, {"name": "bagel", "price": "3.00"}]},
            "fallback": {"forwardTo": f"+1666{i:07d}"},
            "scaling": {"replicas": replicas, "maxCallsPerPod": 20},
        },
    }


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def count_ready(cp: ControlPlane) -> int:
    items = cp.request("GET", f"{API}/namespaces/{NS}/storeagents")["items"]
    n = 0
    for o in items:
        st = o.get("status") or {}
        if st.get("observedGeneration") != o["metadata"]["generation"]:
            continue
        if any(c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions") or []):
            n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--replicas", type=int, default=1, help="agent pods per shop")
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--workers", type=int, default=16, help="parallel create requests")
    a = p.parse_args(argv)
    # SIGTERM (timeout, CI cancel) unwinds the context managers, so no control-plane process is left behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="operator-bench-") as tmp, ControlPlane(Path(tmp)) as cp, \
            FakeFreeSwitchEsl() as esl:
        kubeconfig = install(cp)
        create_namespace(cp, NS)
        op = OperatorProcess(kubeconfig, Path(tmp) / "operator.log", [f"--freeswitch-esl=127.0.0.1:{esl.port}"])
        op.start()
        time.sleep(3)  # operator up and watching before the burst
        docs = [storeagent(i, a.replicas) for i in range(a.count)]

        def create(doc: dict[str, Any]) -> None:
            for attempt in range(5):
                try:
                    cp.request("POST", f"{API}/namespaces/{NS}/storeagents", doc)
                    return
                except urllib.error.HTTPError as e:
                    if e.code == 409:
                        return
                    time.sleep(0.5 * (attempt + 1))
            raise RuntimeError(f"could not create {doc['metadata']['name']}")

        t0 = time.monotonic()
        with ThreadPoolExecutor(a.workers) as pool:
            list(pool.map(create, docs))
        applied_s = time.monotonic() - t0
        print(f"bench: {a.count} StoreAgents created in {applied_s:.1f} s", file=sys.stderr)
        ready = 0
        peak = 0.0
        last_print = 0.0
        while time.monotonic() - t0 < a.timeout:
            ready = count_ready(cp)
            peak = max(peak, peak_rss_mb(op.pid))
            if ready >= a.count:
                break
            if not op.alive():
                print(op.log_tail(), file=sys.stderr)
                return 1
            if time.monotonic() - last_print > 10:
                print(f"bench: {ready}/{a.count} Ready after {time.monotonic() - t0:.0f} s, operator RSS peak "
                      f"{peak:.0f} MB", file=sys.stderr)
                last_print = time.monotonic()
            time.sleep(1)
        converge = time.monotonic() - t0
        peak = max(peak, peak_rss_mb(op.pid))
        op.stop()
        ok = ready >= a.count
        print(f"bench: {ready}/{a.count} Ready in {converge:.1f} s ({'converged' if ok else 'TIMED OUT'}); "
              f"operator peak RSS {peak:.0f} MB; reloadxml rounds {esl.reloads}", file=sys.stderr)
        print(json.dumps({"storeagents": a.count, "converge_s": round(converge, 1) if ok else None,
                          "operator_peak_rss_mb": round(peak, 1), "ready": ready, "replicas_per_shop": a.replicas,
                          "create_s": round(applied_s, 1), "reloadxml_rounds": esl.reloads}))
        return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
