"""Live call statistics for `/v1/stats` (read by the operator into the StoreAgent status) and the bench."""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Sequence
from typing import Any, Protocol


class _Latency(Protocol):
    @property
    def voice_to_voice(self) -> float | None: ...

    @property
    def decision_to_audio(self) -> float | None: ...


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None when there is no data."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


class CallStats:
    """Counts and a rolling window of recent turn latencies (the last `window` turns)."""

    def __init__(self, store: str, window: int = 1000) -> None:
        self.store = store
        self.started_at = time.monotonic()
        self.active = 0
        self.total = 0
        self.by_outcome: Counter[str] = Counter()
        self._v2v: deque[float] = deque(maxlen=window)
        self.recent_turns: deque[dict[str, float | None]] = deque(maxlen=window)

    def call_started(self) -> None:
        self.active += 1

    def call_ended(self, outcome: str, latencies: Sequence[_Latency]) -> None:
        self.active -= 1
        self.total += 1
        self.by_outcome[outcome] += 1
        for lat in latencies:
            if lat.voice_to_voice is not None:
                self._v2v.append(lat.voice_to_voice)
            self.recent_turns.append(
                {k: getattr(lat, k) for k in ("stt_final", "llm_first_token", "tts_first_audio", "voice_to_voice",
                                               "decision_to_audio")}
            )

    def snapshot(self, *, ready: bool, draining: bool) -> dict[str, Any]:
        v = list(self._v2v)

        def ms(x: float | None) -> float | None:
            return None if x is None else round(x * 1000, 1)

        return {
            "store": self.store,
            "ready": ready,
            "draining": draining,
            "calls_active": self.active,
            "calls_total": self.total,
            "calls_by_outcome": dict(self.by_outcome),
            "voice_to_voice_ms": {"p50": ms(percentile(v, 50)), "p95": ms(percentile(v, 95)), "count": len(v)},
            "uptime_s": round(time.monotonic() - self.started_at, 1),
        }
