"""Every Prometheus object of the speech service (`storeagent_speech_*`) and its named recorders.

Labels: kind (stt|tts), reason, code, worker (the worker's index, 0..N-1: bounded by the pod's CPUs).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
KINDS = ("stt", "tts")
RTF_BUCKETS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0)
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
LATENCY_BUCKETS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)
REFUSALS = ("streams", "behind", "no_worker", "shutting_down")
ERROR_CODES = ("protocol", "bad_request", "worker_lost", "engine", "unsupported")


class SpeechMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()
        self._in_flight = Gauge("storeagent_speech_streams_in_flight", "Streams being served, by kind.", ["kind"],
                                registry=r)
        self._streams = Counter("storeagent_speech_streams_total", "Streams admitted, by kind.", ["kind"], registry=r)
        self._refused = Counter("storeagent_speech_refusals_total",
                                "Streams refused with a retryable error, by kind and reason.", ["kind", "reason"],
                                registry=r)
        self._errors = Counter("storeagent_speech_errors_total",
                               "Stream failures by kind and code (worker_lost, engine, bad_request, protocol).",
                               ["kind", "code"], registry=r)
        self._rtf = Histogram("storeagent_speech_real_time_factor",
                              "Processing seconds per second of audio: an STT utterance (send..final) or a TTS "
                              "clause; above 1 the engine cannot keep up.", ["kind"], buckets=RTF_BUCKETS,
                              registry=r)
        self._wait = Histogram("storeagent_speech_queue_wait_seconds",
                               "From a request's arrival at its worker until the worker started it.", ["kind"],
                               buckets=WAIT_BUCKETS, registry=r)
        self._latency = Histogram("storeagent_speech_latency_seconds",
                                  "stage=stt_final: finalize received -> final transcript produced; "
                                  "stage=tts_first_audio: speak received -> first audio.", ["stage"],
                                  buckets=LATENCY_BUCKETS, registry=r)
        self._tts_cache = Counter("storeagent_speech_tts_cache_total",
                                  "TTS utterances by result: hit = replayed from the worker's cache, miss = "
                                  "synthesized.", ["result"], registry=r)
        self._workers = Gauge("storeagent_speech_workers", "Worker processes ready to serve.", registry=r)
        self._restarts = Counter("storeagent_speech_worker_restarts_total", "Worker processes that exited.",
                                 registry=r)
        self._rss = Gauge("storeagent_speech_worker_memory_bytes", "Resident memory of each worker.", ["worker"],
                          registry=r)
        self._lag = Gauge("storeagent_speech_worker_lag_seconds", "Worst event-loop lag of each worker, last second.",
                          ["worker"], registry=r)
        self._draining = Gauge("storeagent_speech_draining", "1 while the service drains for shutdown.", registry=r)
        for k in KINDS:  # pre-created: a quiet service shows 0, not "no data"
            self._in_flight.labels(k)
            self._streams.labels(k)
            self._rtf.labels(k)
            self._wait.labels(k)
            for reason in REFUSALS:
                self._refused.labels(k, reason)
            for code in ERROR_CODES:
                self._errors.labels(k, code)
        for stage in ("stt_final", "tts_first_audio"):
            self._latency.labels(stage)
        for result in ("hit", "miss"):
            self._tts_cache.labels(result)

    # ---- recorders
    def stream_opened(self, kind: str) -> None:
        self._streams.labels(kind).inc()
        self._in_flight.labels(kind).inc()

    def stream_closed(self, kind: str) -> None:
        self._in_flight.labels(kind).dec()

    def refused(self, kind: str, reason: str) -> None:
        self._refused.labels(kind, reason).inc()

    def error(self, kind: str, code: str) -> None:
        self._errors.labels(kind, code).inc()

    def set_workers(self, n: int) -> None:
        self._workers.set(n)

    def set_draining(self, draining: bool) -> None:
        self._draining.set(1 if draining else 0)

    # ---- pool.Observer
    def observe(self, name: str, kind: str, value: float) -> None:
        if kind not in KINDS or value < 0:
            return
        if name == "rtf":
            self._rtf.labels(kind).observe(value)
        elif name == "queue_wait":
            self._wait.labels(kind).observe(value)
        elif name == "stt_finalize":
            self._latency.labels("stt_final").observe(value)
        elif name == "tts_first_audio":
            self._latency.labels("tts_first_audio").observe(value)
        elif name == "tts_cache":
            self._tts_cache.labels("hit" if value else "miss").inc()

    def worker_stats(self, index: int, stats: dict[str, Any]) -> None:
        self._rss.labels(str(index)).set(float(stats.get("rss_bytes", 0)))
        self._lag.labels(str(index)).set(float(stats.get("lag_s", 0.0)))

    def worker_exit(self, index: int, returncode: int | None) -> None:
        self._restarts.inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
