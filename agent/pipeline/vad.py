"""Voice activity detection with WebRTC's VAD (a well-kept C implementation, ~µs per 20 ms frame)."""

from __future__ import annotations

from typing import Protocol

import webrtcvad


class Vad(Protocol):
    def is_speech(self, frame: bytes) -> bool: ...


class WebRtcVad:
    """webrtcvad accepts 10/20/30 ms frames at 8/16/32/48 kHz; our frames are 20 ms L16."""

    def __init__(self, sample_rate: int, aggressiveness: int = 2) -> None:
        if sample_rate not in (8000, 16000, 32000, 48000):
            raise ValueError(f"webrtcvad does not support sample_rate={sample_rate}")
        self._vad = webrtcvad.Vad(aggressiveness)
        self._rate = sample_rate
        self._frame_bytes = sample_rate * 2 * 20 // 1000

    def is_speech(self, frame: bytes) -> bool:
        if len(frame) != self._frame_bytes:
            return False  # a short tail frame cannot be classified; treat as silence
        return bool(self._vad.is_speech(frame, self._rate))
