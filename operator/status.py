"""Agent stats -> StoreAgent status and conditions (pure), plus the one HTTP read of an agent's /v1/stats.

Conditions: `DialplanSynced` (FreeSWITCH routes the shop's numbers to it), `Ready` (spec valid, dialplan
synced, the Deployment rolled out at the current generation with its replicas ready), `Degraded` (something
is wrong even if calls are answered: a number conflict, an invalid spec, an object that cannot be written,
a name already taken by an object the operator did not create, pods not ready, agents draining), `Paused`
(`scaling.replicas: 0`: deliberately no agent; every call gets the fallback, so the shop is not Ready).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp

Obj = dict[str, Any]


@dataclass(frozen=True)
class AgentTotals:
    pods: int = 0
    calls_active: int = 0
    calls_total: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    draining: int = 0


def aggregate(stats: list[Obj]) -> AgentTotals:
    """Sum counters; latency quantiles are count-weighted means of the pods' own quantiles (an approximation:
    exact fleet quantiles come from the Prometheus histograms)."""
    if not stats:
        return AgentTotals()
    active = sum(int(s.get("calls_active", 0)) for s in stats)
    total = sum(int(s.get("calls_total", 0)) for s in stats)

    def weighted(key: str) -> float | None:
        pairs = [(float(v2[key]), int(v2.get("count", 0) or 0)) for s in stats
                 if isinstance(v2 := s.get("voice_to_voice_ms"), dict) and v2.get(key) is not None]
        weight = sum(c for _, c in pairs)
        if not pairs:
            return None
        if weight == 0:
            return round(sum(v for v, _ in pairs) / len(pairs), 1)
        return round(sum(v * c for v, c in pairs) / weight, 1)

    return AgentTotals(len(stats), active, total, weighted("p50"), weighted("p95"),
                       sum(1 for s in stats if s.get("draining")))


@dataclass
class Observed:
    """Everything the status is computed from; filled in by handlers from events, timers and reconciles."""

    generation: int | None = None
    numbers: tuple[str, ...] = ()
    spec_error: str | None = None
    reconciled_generation: int | None = None
    dialplan_ok: bool | None = None
    dialplan_reason: str = "Pending"
    dialplan_message: str = ""
    lost: dict[str, list[str]] = field(default_factory=dict)  # number -> shops holding it
    kept_contested: dict[str, list[str]] = field(default_factory=dict)  # number -> shops also wanting it
    replicas_wanted: int = 0
    replicas: int = 0
    ready_replicas: int = 0
    updated_replicas: int = 0
    deployment_generation_seen: bool = False
    totals: AgentTotals = field(default_factory=AgentTotals)
    # Why the last reconcile could not write the shop's objects: (reason, message); None once one succeeds.
    apply_error: tuple[str, str] | None = None


def _cond(type_: str, ok: bool, reason: str, message: str) -> Obj:
    return {"type": type_, "status": "True" if ok else "False", "reason": reason, "message": message}


def conditions(o: Observed) -> list[Obj]:
    if o.spec_error is not None:
        return [
            _cond("Ready", False, "InvalidSpec", o.spec_error),
            _cond("DialplanSynced", False, "InvalidSpec", "dialplan not rendered: the spec is invalid"),
            _cond("Degraded", True, "InvalidSpec", o.spec_error),
            _cond("Paused", False, "InvalidSpec", "the spec is invalid"),
        ]
    if o.lost:
        parts = [f"{n} is answered by {', '.join(who)} (claimed first)" for n, who in sorted(o.lost.items())]
        dial = _cond("DialplanSynced", False, "NumberConflict", "not routed here: " + "; ".join(parts))
    elif o.dialplan_ok is None:
        dial = _cond("DialplanSynced", False, o.dialplan_reason or "Pending", o.dialplan_message)
    else:
        dial = _cond("DialplanSynced", o.dialplan_ok, o.dialplan_reason, o.dialplan_message)

    problems: list[tuple[str, str]] = []
    if o.lost:
        problems.append(("NumberConflict", dial["message"]))
    if o.kept_contested:
        parts = [f"{n} also claimed by {', '.join(who)}" for n, who in sorted(o.kept_contested.items())]
        problems.append(("NumberConflict", "this shop keeps (claimed first): " + "; ".join(parts)))
    rolled = (o.deployment_generation_seen and o.reconciled_generation == o.generation
              and o.updated_replicas >= o.replicas_wanted and o.ready_replicas >= o.replicas_wanted
              and o.replicas <= o.replicas_wanted)
    if o.deployment_generation_seen and o.ready_replicas < o.replicas_wanted:
        problems.append(("PodsNotReady", f"{o.ready_replicas}/{o.replicas_wanted} agent pods ready"))
    if o.totals.draining:
        problems.append(("Draining", f"{o.totals.draining} agent pod(s) draining calls"))

    if o.apply_error is not None:
        problems.insert(0, o.apply_error)
    paused = o.replicas_wanted == 0 and o.reconciled_generation == o.generation
    if o.apply_error is not None:
        ready = _cond("Ready", False, o.apply_error[0], o.apply_error[1])
    elif dial["status"] != "True":
        ready = _cond("Ready", False, "DialplanNotSynced", dial["message"] or dial["reason"])
    elif o.reconciled_generation != o.generation:
        ready = _cond("Ready", False, "Reconciling", f"generation {o.generation} not yet applied")
    elif paused:
        ready = _cond("Ready", False, "Paused", "scaling.replicas is 0: no agent answers")
    elif not rolled:
        ready = _cond("Ready", False, "RollingOut",
                      f"{o.ready_replicas}/{o.replicas_wanted} ready, {o.updated_replicas} updated")
    else:
        ready = _cond("Ready", True, "AgentsReady", f"{o.ready_replicas}/{o.replicas_wanted} agent pods ready")
    degraded = (_cond("Degraded", True, problems[0][0], "; ".join(m for _, m in problems)) if problems
                else _cond("Degraded", False, "AsExpected", ""))
    # Paused is deliberate, not a problem: its own condition, never Degraded.
    pause = (_cond("Paused", True, "ReplicasZero", "scaling.replicas is 0: every call gets the shop's fallback")
             if paused else _cond("Paused", False, "Scaled", f"{o.replicas_wanted} agent pod(s) wanted"))
    return [ready, dial, degraded, pause]


def compose(o: Observed) -> Obj:
    """The status body (camelCase, as the CRD's status schema says)."""
    return {
        "observedGeneration": o.generation,
        "phoneNumbers": ",".join(o.numbers),
        "replicas": o.replicas,
        "readyReplicas": o.ready_replicas,
        "callsActive": o.totals.calls_active,
        "callsTotal": o.totals.calls_total,
        "voiceToVoice": {"p50Ms": o.totals.p50_ms, "p95Ms": o.totals.p95_ms},
        "conditions": conditions(o),
    }


def with_transition_times(new: Obj, old_conditions: list[Obj], now: str) -> Obj:
    """Keep lastTransitionTime of conditions whose status did not change; stamp the ones that did."""
    before = {c.get("type"): c for c in old_conditions}
    out = []
    for c in new["conditions"]:
        prev = before.get(c["type"])
        stamp = prev.get("lastTransitionTime", now) if prev and prev.get("status") == c["status"] else now
        out.append({**c, "lastTransitionTime": stamp, "observedGeneration": new["observedGeneration"]})
    return {**new, "conditions": out}


def strip_times(status: Obj) -> Obj:
    """The status without timestamps: what "changed" means when deciding to patch."""
    conds = [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in status.get("conditions", [])]
    return {**status, "conditions": conds}


async def fetch_stats(session: aiohttp.ClientSession, base_url: str, timeout_s: float,
                      max_bytes: int = 64 * 1024) -> Obj | None:
    """GET <agent>/v1/stats; None when the pod does not answer in time, answers garbage or too much.

    An agent pod runs tenant-chosen configuration: its answer is read with a deadline for the whole
    exchange and at most `max_bytes` (a real answer is a few hundred bytes), so a hostile or broken pod can
    neither stall the operator's stats loop nor make it buffer an endless body.
    """
    try:
        async with session.get(f"{base_url}/v1/stats", timeout=aiohttp.ClientTimeout(total=timeout_s),
                               allow_redirects=False) as r:
            if r.status != 200 or (r.content_length or 0) > max_bytes:
                return None
            raw = await r.content.read(max_bytes + 1)
            if len(raw) > max_bytes:
                return None
            data = json.loads(raw)
            return sanitize_stats(data) if isinstance(data, dict) else None
    except (aiohttp.ClientError, TimeoutError, ValueError, RecursionError):  # RecursionError: "[[[[..."
        return None


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53 else 0


def _ms(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1e7
    return float(value) if ok else None


def sanitize_stats(data: Obj) -> Obj:
    """Only the fields `aggregate` reads, with sane types and ranges: the rest of an answer is ignored."""
    v2v = data.get("voice_to_voice_ms")
    out: Obj = {"calls_active": _count(data.get("calls_active")), "calls_total": _count(data.get("calls_total")),
                "draining": data.get("draining") is True}
    if isinstance(v2v, dict):
        out["voice_to_voice_ms"] = {"count": _count(v2v.get("count")), "p50": _ms(v2v.get("p50")),
                                    "p95": _ms(v2v.get("p95"))}
    return out
