"""A small streaming windowed-sinc resampler (numpy only; providers must not depend on the transport's codec).

Used for 8 kHz caller audio -> 16 kHz for pocketsphinx and 22050 Hz voices -> the call's rate for TTS.
Quality: Blackman-windowed sinc, 32 taps per side, cut off at 90 % of the lower Nyquist: plenty for speech.
"""

from __future__ import annotations

from math import gcd

import numpy as np
import numpy.typing as npt

_HALF = 32  # taps either side of the output instant
_Floats = npt.NDArray[np.float64]


class StreamResampler:
    """Converts a stream of L16 chunks from `src` to `dst` Hz, keeping filter history between chunks."""

    def __init__(self, src: int, dst: int) -> None:
        if src <= 0 or dst <= 0:
            raise ValueError(f"sample rates must be positive, got {src} -> {dst}")
        self.src, self.dst = src, dst
        self._cut = 0.9 * min(1.0, dst / src)  # cut-off as a fraction of the input Nyquist
        self._buf: _Floats = np.zeros(_HALF)  # leading zeros: history before the first sample
        self._base = -_HALF  # absolute input index of _buf[0]
        g = gcd(src, dst)
        self._phases = dst // g  # output instants repeat their fractional position with this period
        k = np.arange(self._phases)
        frac = (k * src % dst) / dst  # fractional input position of output k
        dist = frac[:, None] + _HALF - 1 - np.arange(2 * _HALF)[None, :]  # tap distance from the instant
        win = np.clip(0.5 + dist / (2 * _HALF), 0.0, 1.0)
        blackman = 0.42 - 0.5 * np.cos(2 * np.pi * win) + 0.08 * np.cos(4 * np.pi * win)
        self._taps: _Floats = self._cut * np.sinc(self._cut * dist) * blackman
        self._k = 0  # outputs produced; the next one sits at input position k * src / dst (no float drift)

    def push(self, pcm: bytes) -> bytes:
        """Feed L16 bytes; returns the L16 output that is fully determined so far."""
        if self.src == self.dst:
            return pcm
        x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
        self._buf = np.concatenate([self._buf, x])
        return self._emit()

    def flush(self) -> bytes:
        """End of stream: emit the tail (zero-padded) and reset for a new stream."""
        if self.src == self.dst:
            return b""
        end = self._base + len(self._buf)  # input samples seen
        self._buf = np.concatenate([self._buf, np.zeros(_HALF + 1)])
        n = max(0, -(-end * self.dst // self.src) - self._k)  # outputs strictly before the end
        out = self._emit(n)
        self._buf, self._base, self._k = np.zeros(_HALF), -_HALF, 0
        return out

    def _ready(self) -> int:
        """Outputs whose every tap is buffered: floor(t) + HALF must not pass the newest sample."""
        newest = self._base + len(self._buf) - 1
        # largest k with floor(k * src / dst) + HALF <= newest
        return max(0, ((newest - _HALF + 1) * self.dst - 1) // self.src + 1 - self._k)

    def _emit(self, n: int | None = None) -> bytes:
        n = self._ready() if n is None else n
        if n <= 0:
            return b""
        ks = self._k + np.arange(n)
        left = ks * self.src // self.dst - _HALF + 1 - self._base  # first tap, index into _buf
        idx = left[:, None] + np.arange(2 * _HALF)[None, :]
        y = np.einsum("ij,ij->i", self._buf[idx], self._taps[ks % self._phases])
        self._k += n
        drop = max(0, self._k * self.src // self.dst - _HALF - self._base)  # history the next output still needs
        self._buf = self._buf[drop:]
        self._base += drop
        out: bytes = np.clip(np.rint(y), -32768, 32767).astype("<i2").tobytes()
        return out


def resample(pcm: bytes, src: int, dst: int) -> bytes:
    """One-shot L16 resample of a whole buffer."""
    r = StreamResampler(src, dst)
    return r.push(pcm) + r.flush()
