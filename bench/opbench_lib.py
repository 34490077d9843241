"""Measuring tools of `bench/operator_bench.py`, all from outside the operator: watches of the API server (when
each shop became Ready, and why the last ones waited), /proc (CPU seconds, peak RSS, CPU pressure), the API
server's audit log (requests by verb) and a stand-in for the agents' /v1/stats."""

from __future__ import annotations

import asyncio
import json
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp

from storeagent.operator.k8s import Credentials

Obj = dict[str, Any]
TICK = os.sysconf("SC_CLK_TCK")


# -- /proc ------------------------------------------------------------------------------------------------------
def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def vm_mb(pid: int, key: str = "VmHWM") -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Pressure:
    """Share of wall time some task waited for a CPU (/proc/pressure/cpu "some"), between start and read."""

    def __init__(self) -> None:
        self.t0, self.total0 = time.monotonic(), self._total()

    @staticmethod
    def _total() -> int:
        try:
            for line in Path("/proc/pressure/cpu").read_text().splitlines():
                if line.startswith("some"):
                    return int(line.rsplit("total=", 1)[1])
        except (OSError, ValueError, IndexError):
            pass
        return -1

    def percent(self) -> float | None:
        total, wall = self._total(), time.monotonic() - self.t0
        if total < 0 or self.total0 < 0 or wall <= 0:
            return None
        return round(100 * (total - self.total0) / 1e6 / wall, 1)


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


# -- readiness from watches -------------------------------------------------------------------------------------
@dataclass
class Shop:
    created: float | None = None  # monotonic, when its create was sent
    ready: float | None = None  # first seen Ready (StoreAgent: Ready=True at its generation; floor: Deployment)
    deployment_ready: float | None = None
    reasons: list[tuple[float, str]] = field(default_factory=list)  # (when, Ready's reason) as it changed

    def reason_at(self, t: float) -> str:
        out = "NoStatus"
        for when, reason in self.reasons:
            if when <= t:
                out = reason
        return out


def storeagent_ready(obj: Obj) -> tuple[bool, str]:
    st = obj.get("status") or {}
    for c in st.get("conditions") or []:
        if c.get("type") == "Ready":
            current = st.get("observedGeneration") == obj["metadata"].get("generation")
            return c.get("status") == "True" and current, str(c.get("reason") or "")
    return False, "NoStatus"


def deployment_ready(obj: Obj) -> bool:
    spec, st, meta = obj.get("spec") or {}, obj.get("status") or {}, obj["metadata"]
    want = int(spec.get("replicas", 1) or 0)
    return (int(st.get("observedGeneration", 0) or 0) >= int(meta.get("generation", 0) or 0)
            and int(st.get("readyReplicas", 0) or 0) == want and int(st.get("updatedReplicas", 0) or 0) == want
            and int(st.get("replicas", 0) or 0) == want)


class Watch:
    """List, then watch, a collection; `on(obj)` for every object seen. Reconnects; re-lists after 410 Gone."""

    def __init__(self, session: aiohttp.ClientSession, creds: Credentials, path: str,
                 on: Callable[[Obj], None]) -> None:
        self.session, self.creds, self.path, self.on = session, creds, path, on
        self.task: asyncio.Task[None] | None = None
        self.synced = asyncio.Event()

    def start(self) -> Watch:
        self.task = asyncio.create_task(self._run(), name=f"watch {self.path}")
        return self

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def _get(self, params: dict[str, str]) -> aiohttp.ClientResponse:
        return await self.session.get(self.creds.server + self.path, params=params, ssl=self.creds.ssl,
                                      headers={**self.creds.headers_fn(), "Accept": "application/json"})

    async def _run(self) -> None:
        rv = ""
        while True:
            try:
                if not rv:
                    async with await self._get({}) as r:
                        listing = await r.json()
                    for o in listing.get("items") or []:
                        self.on(o)
                    rv = listing["metadata"]["resourceVersion"]
                    self.synced.set()
                params = {"watch": "1", "resourceVersion": rv, "allowWatchBookmarks": "true", "timeoutSeconds": "600"}
                async with await self._get(params) as r:
                    async for line in r.content:
                        ev = json.loads(line)
                        if ev.get("type") == "ERROR":
                            rv = ""  # 410 Gone: too old, list again
                            break
                        rv = ev["object"]["metadata"].get("resourceVersion") or rv
                        if ev.get("type") != "BOOKMARK":
                            self.on(ev["object"])
            except asyncio.CancelledError:
                raise
            except Exception:  # a dropped stream: resume from the last version seen
                await asyncio.sleep(0.5)


def tail(shops: dict[str, Shop], t0: float) -> Obj:
    """From 99 % to 100 % Ready: how long, and what the last shops' Ready condition said at the 99 % mark."""
    times = sorted(s.ready for s in shops.values() if s.ready is not None)
    if not times:
        return {}
    k = max(1, math.ceil(0.99 * len(shops)))
    t99 = times[min(k, len(times)) - 1]
    late = {n: s for n, s in shops.items() if s.ready is not None and s.ready > t99}
    reasons = Counter(s.reason_at(t99) for s in late.values())
    dep_first = sum(1 for s in late.values() if s.deployment_ready is not None and s.deployment_ready <= t99)
    examples = []
    for n, s in sorted(late.items(), key=lambda kv: kv[1].ready or 0)[-5:]:
        examples.append({"shop": n, "created_s": _rel(s.created, t0), "pods_ready_s": _rel(s.deployment_ready, t0),
                         "ready_s": _rel(s.ready, t0),
                         "reasons": [f"{_rel(w, t0)}:{r}" for w, r in s.reasons]})
    return {"t99_s": round(t99 - t0, 1), "t100_s": round(times[-1] - t0, 1), "tail_s": round(times[-1] - t99, 1),
            "late_shops": len(late), "ready_reason_at_t99": dict(reasons),
            "late_with_pods_ready_at_t99": dep_first, "latest": examples}


def _rel(t: float | None, t0: float) -> float | None:
    return None if t is None else round(t - t0, 2)


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return round(v[min(len(v) - 1, max(0, math.ceil(q * len(v)) - 1))], 2)


# -- audit log --------------------------------------------------------------------------------------------------
def audit_counts(path: Path, user: str, since: datetime | None = None, until: datetime | None = None,
                 agent: Callable[[str], bool] = lambda _: True) -> tuple[Counter[str], Counter[str]]:
    """Requests of `user` (and a user agent `agent` accepts) by "verb resource[/subresource]" and by response
    code, from a JSON-lines audit log. A watch counts once (its ResponseStarted); the rest at ResponseComplete.
    (The control plane's components share the test admin's certificate: the user agent tells them apart.)"""
    by_verb: Counter[str] = Counter()
    by_code: Counter[str] = Counter()
    if not path.exists():
        return by_verb, by_code
    with path.open() as f:
        for line in f:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if (ev.get("user") or {}).get("username") != user or not agent(str(ev.get("userAgent") or "")):
                continue
            verb, stage = ev.get("verb", "?"), ev.get("stage")
            if stage != ("ResponseStarted" if verb == "watch" else "ResponseComplete"):
                continue
            when = datetime.fromisoformat(ev["requestReceivedTimestamp"].replace("Z", "+00:00"))
            if (since and when < since) or (until and when > until):
                continue
            ref = ev.get("objectRef") or {}
            res = ref.get("resource", ev.get("requestURI", "?").split("?")[0])
            if ref.get("subresource"):
                res += "/" + ref["subresource"]
            by_verb[f"{verb} {res}"] += 1
            by_code[str((ev.get("responseStatus") or {}).get("code", "?"))] += 1
    return by_verb, by_code


def by_component(path: Path, user: str) -> Counter[str]:
    """All requests of `user` by the first word of their user agent (kube-controller-manager, kwok, ...)."""
    out: Counter[str] = Counter()
    if path.exists():
        with path.open() as f:
            for line in f:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if (ev.get("user") or {}).get("username") == user and ev.get("stage") == "ResponseComplete":
                    out[str(ev.get("userAgent") or "?").split("/")[0]] += 1
    return out


def per_shop(counts: Counter[str], shops: int) -> dict[str, float]:
    out = {k: round(v / max(1, shops), 2) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])}
    out["total"] = round(sum(counts.values()) / max(1, shops), 2)
    return out


# -- the agents' /v1/stats --------------------------------------------------------------------------------------
class StatsServer:
    """Answers every operator poll like an idle agent that has taken a few calls (all shops' polls land here,
    through the operator's --stats-address-override)."""

    def __init__(self) -> None:
        self.polls = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.polls += 1
                body = json.dumps({"calls_active": 0, "calls_total": 3, "draining": False,
                                   "voice_to_voice_ms": {"count": 12, "p50": 780.0, "p95": 1150.0}}).encode()
                self.send_response(200 if self.path == "/v1/stats" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> StatsServer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
