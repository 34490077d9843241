"""Synthetic audio for tests: a voiced, speech-like signal WebRTC's VAD classifies as speech, and silence."""

from __future__ import annotations

import numpy as np


def voiced(ms: int, rate: int = 8000, f0: float = 140.0, amplitude: int = 8000) -> bytes:
    t = np.arange(rate * ms // 1000) / rate
    sig = sum((1 / k) * np.sin(2 * np.pi * f0 * k * t) for k in range(1, 20))
    sig = sig * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    peak = float(np.abs(sig).max()) or 1.0
    return (sig / peak * amplitude).astype("<i2").tobytes()


def silence(ms: int, rate: int = 8000) -> bytes:
    return bytes(rate * 2 * ms // 1000)


def frames(pcm: bytes, rate: int = 8000) -> list[bytes]:
    n = rate * 2 * 20 // 1000
    return [pcm[i : i + n] for i in range(0, len(pcm) - n + 1, n)]
