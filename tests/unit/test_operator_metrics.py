"""storeagent.operator.metrics: recorders, label pre-creation, the address variable and the /metrics server."""

from __future__ import annotations

import urllib.request

import pytest

from storeagent.operator.metrics import ADDRESS_ENV, OperatorMetrics, parse_address, serve_from_env


def sample(m: OperatorMetrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_quiet_operator_exports_zero_not_nothing() -> None:
    m = OperatorMetrics()
    for result in ("success", "retry", "error"):
        assert sample(m, "storeagent_operator_reconciles_total", result=result) == 0
    assert sample(m, "storeagent_operator_dialplan_reloads_total", result="failed") == 0


def test_recorders_and_deleted_shops_leave_no_stale_series() -> None:
    m = OperatorMetrics()
    m.reconciled("retry", 0.4)
    m.shop_status("shops", "bakery", ready=False, dialplan_synced=True)
    m.dialplan_reload(ok=False)
    assert sample(m, "storeagent_operator_reconciles_total", result="retry") == 1
    assert sample(m, "storeagent_operator_reconcile_seconds_count") == 1
    assert sample(m, "storeagent_shop_ready", namespace="shops", store="bakery") == 0
    assert sample(m, "storeagent_shop_dialplan_synced", namespace="shops", store="bakery") == 1
    assert sample(m, "storeagent_operator_dialplan_reloads_total", result="failed") == 1
    m.shop_deleted("shops", "bakery")
    m.shop_deleted("shops", "bakery")  # idempotent
    assert sample(m, "storeagent_shop_ready", namespace="shops", store="bakery") is None


def test_unknown_reconcile_result_is_refused() -> None:
    with pytest.raises(ValueError, match="reconcile result"):
        OperatorMetrics().reconciled("maybe", 1.0)


@pytest.mark.parametrize(("text", "want"), [("0.0.0.0:8081", ("0.0.0.0", 8081)), (":9090", ("0.0.0.0", 9090)),
                                            ("[::1]:8081", ("::1", 8081))])
def test_parse_address(text: str, want: tuple[str, int]) -> None:
    assert parse_address(text) == want


@pytest.mark.parametrize("text", ["8081", "host:", "host:http", "host:-1", "host:70000"])
def test_bad_address_names_the_variable(text: str) -> None:
    with pytest.raises(ValueError, match=ADDRESS_ENV):
        parse_address(text)


def test_serve_from_env_serves_metrics_and_is_off_without_the_variable() -> None:
    m = OperatorMetrics()
    assert serve_from_env(m, {}) is None
    host, port = serve_from_env(m, {ADDRESS_ENV: "127.0.0.1:0"}) or ("", 0)
    assert host == "127.0.0.1" and port > 0
    m.shop_status("shops", "bakery", ready=True, dialplan_synced=True)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        body = r.read().decode()
    assert 'storeagent_shop_ready{namespace="shops",store="bakery"} 1.0' in body
