"""Every Prometheus object of the operator, and the named recorders handlers call (principle 7).

The chart's "StoreAgent / Operator" dashboard and the StoreAgentShopNotReady, StoreAgentDialplanNotSynced and
StoreAgentOperatorReconcileErrors alerts read exactly these series (tests/integration/test_dashboards.py proves it).
Shop series carry the shop's own `namespace` and `store` labels (the ServiceMonitor keeps them: honorLabels).

The chart sets STOREAGENT_OPERATOR_METRICS_ADDRESS=host:port; `serve_from_env()` starts /metrics there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server

RECONCILE_RESULTS = ("success", "retry", "error")  # retry = kopf.TemporaryError, error = PermanentError/other
RELOAD_RESULTS = ("success", "failed")
ADDRESS_ENV = "STOREAGENT_OPERATOR_METRICS_ADDRESS"


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self._reconciles = Counter(
            "storeagent_operator_reconciles_total",
            "StoreAgent reconciles by result: success, retry (temporary error), error.",
            ["result"],
            registry=r,
        )
        self._reconcile_seconds = Histogram(
            "storeagent_operator_reconcile_seconds",
            "Duration of one StoreAgent reconcile.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=r,
        )
        self._ready = Gauge(
            "storeagent_shop_ready", "1 while the shop's Ready condition is True.", ["namespace", "store"], registry=r
        )
        self._synced = Gauge(
            "storeagent_shop_dialplan_synced",
            "1 while the shop's DialplanSynced condition is True.",
            ["namespace", "store"],
            registry=r,
        )
        self._paused = Gauge(
            "storeagent_shop_paused",
            "1 while the shop is deliberately paused (scaling.replicas 0): not Ready, yet nothing to alert on.",
            ["namespace", "store"],
            registry=r,
        )
        self._restores = Counter(
            "storeagent_operator_child_restores_total",
            "Child objects (and dialplan ConfigMaps) rewritten after someone else deleted or edited them.",
            ["kind"],
            registry=r,
        )
        self._reloads = Counter(
            "storeagent_operator_dialplan_reloads_total",
            "reloadxml sent to FreeSWITCH over inbound ESL, by result.",
            ["result"],
            registry=r,
        )
        # Pre-create the label sets dashboards and alerts query, so no errors shows 0, not "no data".
        for result in RECONCILE_RESULTS:
            self._reconciles.labels(result)
        for result in RELOAD_RESULTS:
            self._reloads.labels(result)

    # ---- recorders
    def reconciled(self, result: str, seconds: float) -> None:
        if result not in RECONCILE_RESULTS:
            raise ValueError(f"reconcile result must be one of {RECONCILE_RESULTS}, not {result!r}")
        self._reconciles.labels(result).inc()
        self._reconcile_seconds.observe(seconds)

    def shop_status(self, namespace: str, store: str, *, ready: bool, dialplan_synced: bool,
                    paused: bool = False) -> None:
        self._ready.labels(namespace, store).set(1 if ready else 0)
        self._synced.labels(namespace, store).set(1 if dialplan_synced else 0)
        self._paused.labels(namespace, store).set(1 if paused else 0)

    def child_restored(self, kind: str) -> None:
        self._restores.labels(kind).inc()

    def shop_deleted(self, namespace: str, store: str) -> None:
        """A deleted shop must not stay "not Ready" forever in the alerts."""
        for gauge in (self._ready, self._synced, self._paused):
            try:
                gauge.remove(namespace, store)
            except KeyError:
                pass

    def dialplan_reload(self, ok: bool) -> None:
        self._reloads.labels("success" if ok else "failed").inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def parse_address(text: str) -> tuple[str, int]:
    """`host:port` (IPv6 in brackets; port 0 = any free port) -> (host, port); errors name the variable."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{ADDRESS_ENV}={text!r}: expected host:port with a port in 0..65535")
    return host.strip("[]") or "0.0.0.0", int(port)


def serve_from_env(metrics: OperatorMetrics, env: Mapping[str, str] | None = None) -> tuple[str, int] | None:
    """Serve /metrics in a background thread if the address variable is set; returns the bound address."""
    text = (os.environ if env is None else env).get(ADDRESS_ENV, "")
    if not text:
        return None
    host, port = parse_address(text)
    server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    bound = server.server_address
    return str(bound[0]), int(bound[1])
