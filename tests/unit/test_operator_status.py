"""Agent stats -> status and conditions (pure)."""

from __future__ import annotations

from storeagent.operator import status


def ready_observed(**kw: object) -> status.Observed:
    o = status.Observed(generation=2, reconciled_generation=2, numbers=("+15551230001",), dialplan_ok=True,
                        dialplan_reason="Reloaded", replicas_wanted=2, replicas=2, ready_replicas=2,
                        updated_replicas=2, deployment_generation_seen=True)
    for k, v in kw.items():
        setattr(o, k, v)
    return o


def conds(o: status.Observed) -> dict[str, dict[str, object]]:
    return {c["type"]: c for c in status.conditions(o)}


def test_aggregate_sums_and_weights() -> None:
    t = status.aggregate([
        {"calls_active": 2, "calls_total": 10, "voice_to_voice_ms": {"p50": 500.0, "p95": 900.0, "count": 30}},
        {"calls_active": 1, "calls_total": 5, "draining": True,
         "voice_to_voice_ms": {"p50": 700.0, "p95": 1100.0, "count": 10}},
        {"calls_active": 0, "calls_total": 0, "voice_to_voice_ms": {"p50": None, "p95": None, "count": 0}},
    ])
    assert (t.pods, t.calls_active, t.calls_total, t.draining) == (3, 3, 15, 1)
    assert t.p50_ms == 550.0 and t.p95_ms == 950.0  # (900*30 + 1100*10) / 40
    assert status.aggregate([]) == status.AgentTotals()


def test_ready_when_everything_is_in_place() -> None:
    c = conds(ready_observed())
    assert c["Ready"]["status"] == "True" and c["DialplanSynced"]["status"] == "True"
    assert c["Degraded"]["status"] == "False"


def test_not_ready_reasons() -> None:
    assert conds(ready_observed(reconciled_generation=1))["Ready"]["reason"] == "Reconciling"
    assert conds(ready_observed(ready_replicas=1))["Ready"]["reason"] == "RollingOut"
    assert conds(ready_observed(ready_replicas=1))["Degraded"]["reason"] == "PodsNotReady"
    assert conds(ready_observed(dialplan_ok=False, dialplan_reason="ReloadFailed"))["Ready"]["reason"] == \
        "DialplanNotSynced"
    bad = conds(ready_observed(spec_error="spec.phoneNumbers.0: not E.164"))
    assert bad["Ready"]["reason"] == "InvalidSpec" and "phoneNumbers" in str(bad["Ready"]["message"])


def test_conflict_on_both_sides() -> None:
    loser = conds(ready_observed(lost={"+15551230001": ["a/first"]}))
    assert loser["DialplanSynced"]["status"] == "False" and loser["DialplanSynced"]["reason"] == "NumberConflict"
    assert "a/first" in str(loser["DialplanSynced"]["message"])
    keeper = conds(ready_observed(kept_contested={"+15551230001": ["b/second"]}))
    assert keeper["Ready"]["status"] == "True"
    assert keeper["Degraded"]["reason"] == "NumberConflict" and "b/second" in str(keeper["Degraded"]["message"])


def test_transition_times_only_move_on_change() -> None:
    first = status.with_transition_times(status.compose(ready_observed()), [], "T1")
    same = status.with_transition_times(status.compose(ready_observed()), first["conditions"], "T2")
    assert status.strip_times(first) == status.strip_times(same)
    assert {c["lastTransitionTime"] for c in same["conditions"]} == {"T1"}
    changed = status.with_transition_times(status.compose(ready_observed(ready_replicas=1)), first["conditions"], "T3")
    times = {c["type"]: c["lastTransitionTime"] for c in changed["conditions"]}
    assert times["Ready"] == "T3" and times["DialplanSynced"] == "T1"


def test_replicas_zero_is_paused_not_ready_and_not_degraded() -> None:
    c = conds(ready_observed(replicas_wanted=0, replicas=0, ready_replicas=0, updated_replicas=0))
    assert c["Paused"]["status"] == "True" and c["Paused"]["reason"] == "ReplicasZero"
    assert c["Ready"]["status"] == "False" and c["Ready"]["reason"] == "Paused"
    assert c["Degraded"]["status"] == "False"
    assert conds(ready_observed())["Paused"]["status"] == "False"


def test_apply_failure_explains_itself_in_ready_and_degraded() -> None:
    msg = "ConfigMap t/bakery-config: HTTP 422 Invalid: Too long (not retried until the StoreAgent changes)"
    c = conds(ready_observed(apply_error=("ApplyFailed", msg), dialplan_ok=None, dialplan_reason="Pending"))
    assert c["Ready"]["status"] == "False" and c["Ready"]["reason"] == "ApplyFailed"
    assert c["Degraded"]["status"] == "True" and c["Degraded"]["reason"] == "ApplyFailed"
    assert "bakery-config" in str(c["Degraded"]["message"]) and "Too long" in str(c["Ready"]["message"])


def test_hostile_stats_are_reduced_to_sane_numbers() -> None:
    got = status.sanitize_stats({"calls_active": "9" * 400, "calls_total": -5, "draining": "yes",
                                 "voice_to_voice_ms": {"p50": float("inf"), "p95": True, "count": [1]},
                                 "extra": "x" * 1000})
    assert got == {"calls_active": 0, "calls_total": 0, "draining": False,
                   "voice_to_voice_ms": {"count": 0, "p50": None, "p95": None}}
    assert status.aggregate([got]).p95_ms is None
