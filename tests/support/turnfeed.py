"""Drive a TurnDetector with a frame pattern: 'S' a speech frame, anything else silence, 20 ms apart."""

from __future__ import annotations

from storeagent.agent.pipeline.turn import TurnDetector


def feed(det: TurnDetector, pattern: str, t0: float = 0.0) -> list[tuple[int, object]]:
    out = []
    for i, ch in enumerate(pattern):
        ev = det.feed(ch == "S", t0 + i * 0.02)
        if ev is not None:
            out.append((i, ev))
    return out
