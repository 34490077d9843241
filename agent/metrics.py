"""Every Prometheus object of the agent, and the named recorders the rest of the code calls (principle 7).

Labels stay low-cardinality: store, stage, provider, kind, outcome, wire, reason: never call ids or numbers.
One `AgentMetrics` per process owns its own registry, so tests can run several agents in one interpreter.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Voice latency lives between ~50 ms and a few seconds; finer buckets at the low end for barge-in.
LATENCY_BUCKETS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
TURN_STAGES = ("stt_final", "llm_first_token", "tts_first_audio", "voice_to_voice")
FALLBACK_STAGES = ("stt", "llm", "tts")  # Chain(stage=...) of the provider fallback chains
OUTCOMES = ("answered", "message", "transferred", "abandoned", "failed")
WEBHOOK_RESULTS = ("delivered", "retry", "dead")

CONTENT_TYPE = CONTENT_TYPE_LATEST


class AgentMetrics:
    def __init__(self, store: str, registry: CollectorRegistry | None = None) -> None:
        self.store = store
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self._turn = Histogram(
            "storeagent_turn_latency_seconds",
            "Per-turn latency by stage, from the end of the caller's speech.",
            ["store", "stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._barge = Histogram(
            "storeagent_barge_in_stop_seconds",
            "From caller speech onset while the agent speaks to the clear sent to the far end.",
            ["store"],
            buckets=(0.01, 0.02, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0),
            registry=r,
        )
        self._active = Gauge("storeagent_calls_active", "Calls in progress.", ["store"], registry=r)
        self._total = Counter("storeagent_calls_total", "Calls ended, by outcome.", ["store", "outcome"], registry=r)
        self._perr = Counter(
            "storeagent_provider_errors_total",
            "Provider failures by provider and kind.",
            ["store", "provider", "kind"],
            registry=r,
        )
        self._fallback = Counter(
            "storeagent_provider_fallbacks_total",
            "Times a stage moved to its fallback provider.",
            ["store", "stage"],
            registry=r,
        )
        self._underruns = Counter(
            "storeagent_audio_underruns_total", "Playout underruns reported by the far end.", ["store"], registry=r
        )
        self._protocol = Counter(
            "storeagent_protocol_errors_total",
            "Malformed or refused input on a wire, by wire and reason; the connection was closed or the frame dropped.",
            ["store", "wire", "reason"],
            registry=r,
        )
        self._draining = Gauge("storeagent_draining", "1 while the process drains for shutdown.", ["store"], registry=r)
        self._tool = Counter(
            "storeagent_tool_calls_total", "Tool calls by tool and result.", ["store", "tool", "result"], registry=r
        )
        self._webhook = Counter(
            "storeagent_webhook_deliveries_total",
            "Webhook delivery attempts by result: delivered, retry (will be retried), dead (refused permanently).",
            ["store", "result"],
            registry=r,
        )
        self._outbox_pending = Gauge(
            "storeagent_outbox_pending",
            "Messages and call records waiting for the shop's webhook.",
            ["store"],
            registry=r,
        )
        # Pre-create the label sets dashboards and alerts query, so a quiet shop shows 0, not "no data".
        self._active.labels(store)
        self._draining.labels(store)
        self._underruns.labels(store)
        # Histograms too: a child born at its first observation is invisible to rate() (no 0 -> 1 increase).
        self._barge.labels(store)
        for stage in TURN_STAGES:
            self._turn.labels(store, stage)
        for stage in FALLBACK_STAGES:
            self._fallback.labels(store, stage)
        for outcome in OUTCOMES:
            self._total.labels(store, outcome)
        self._outbox_pending.labels(store)
        for result in WEBHOOK_RESULTS:
            self._webhook.labels(store, result)

    # ---- recorders (CallMetrics port and process-level ones)
    def turn_latency(self, stage: str, seconds: float) -> None:
        self._turn.labels(self.store, stage).observe(seconds)

    def barge_in_stop(self, seconds: float) -> None:
        self._barge.labels(self.store).observe(seconds)

    def provider_error(self, provider: str, kind: str) -> None:
        self._perr.labels(self.store, provider, kind).inc()

    def provider_fallback(self, stage: str) -> None:
        self._fallback.labels(self.store, stage).inc()

    def underruns(self, count: int) -> None:
        if count > 0:
            self._underruns.labels(self.store).inc(count)

    def protocol_error(self, wire: str, reason: str) -> None:
        self._protocol.labels(self.store, wire, reason).inc()

    def tool_call(self, tool: str, result: str) -> None:
        self._tool.labels(self.store, tool, result).inc()

    def webhook_delivery(self, result: str) -> None:
        self._webhook.labels(self.store, result).inc()

    def outbox_pending(self, count: int) -> None:
        self._outbox_pending.labels(self.store).set(count)

    def call_started(self) -> None:
        self._active.labels(self.store).inc()

    def call_ended(self, outcome: str) -> None:
        self._active.labels(self.store).dec()
        self._total.labels(self.store, outcome).inc()

    def set_draining(self, draining: bool) -> None:
        self._draining.labels(self.store).set(1 if draining else 0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
