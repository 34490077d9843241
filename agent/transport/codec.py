"""L16 helpers: G.711 µ-law, resampling, exact 20 ms framing, levels.

All PCM here is signed 16-bit little-endian mono ("L16"), the format of the audio websocket. Resampling uses
libsoxr (python-soxr): a well-kept band-limited resampler, so piper's 22050 Hz voices and 8k/16k calls convert
without aliasing, and its streaming mode keeps filter state across TTS chunks (no clicks at chunk edges).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import soxr

SAMPLE_WIDTH = 2
_ULAW_BIAS = 0x84  # G.711: added to the magnitude so the segment search starts at 2**7
_PCM = np.dtype("<i2")


# ------------------------------------------------------------------------------------------------ G.711 µ-law
def _build_ulaw_encode_table() -> npt.NDArray[np.uint8]:
    """µ-law byte for every int16 value, indexed by the value's uint16 bit pattern.

    Same rounding as ITU-T G.191 / spandsp (negative values use BIAS - x - 1), so -1 encodes to 0x7F ("-0")
    and decode(encode(x)) is the nearest µ-law level without a sign-dependent offset.
    """
    lin = np.arange(-32768, 32768, dtype=np.int32)
    neg = lin < 0
    mag = np.where(neg, _ULAW_BIAS - lin - 1, _ULAW_BIAS + lin)
    mask = np.where(neg, 0x7F, 0xFF)
    seg = np.floor(np.log2(mag | 0xFF)).astype(np.int32) - 7  # top bit of the biased magnitude, minus 7
    mant = (mag >> (np.minimum(seg, 7) + 3)) & 0x0F
    code = np.where(seg >= 8, 0x7F, (seg << 4) | mant) ^ mask
    table = np.empty(65536, dtype=np.uint8)
    table[lin.astype(np.int16).view(np.uint16)] = code.astype(np.uint8)
    return table


def _build_ulaw_decode_table() -> npt.NDArray[np.int16]:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + _ULAW_BIAS) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, _ULAW_BIAS - t, t - _ULAW_BIAS).astype(np.int16)


ULAW_ENCODE = _build_ulaw_encode_table()
ULAW_DECODE = _build_ulaw_decode_table()


def ulaw_encode(pcm: bytes) -> bytes:
    """L16 → G.711 µ-law, one byte per sample. A trailing odd byte is an error, not silently dropped."""
    samples = as_samples(pcm)
    return ULAW_ENCODE[samples.view(np.uint16)].tobytes()


def ulaw_decode(data: bytes) -> bytes:
    """G.711 µ-law → L16."""
    return ULAW_DECODE[np.frombuffer(data, dtype=np.uint8)].astype(_PCM).tobytes()


# ------------------------------------------------------------------------------------------------ samples
def as_samples(pcm: bytes | bytearray | memoryview) -> npt.NDArray[np.int16]:
    """View L16 bytes as int16 samples (no copy)."""
    if len(pcm) % SAMPLE_WIDTH:
        raise ValueError(f"pcm: {len(pcm)} bytes is not a whole number of 16-bit samples")
    return np.frombuffer(pcm, dtype=_PCM)


def to_bytes(samples: npt.NDArray[np.generic]) -> bytes:
    """int16 (or float in [-1, 1]) samples → L16 bytes, clipping instead of wrapping around."""
    if np.issubdtype(samples.dtype, np.floating):
        samples = np.clip(np.rint(samples.astype(np.float64) * 32767.0), -32768, 32767)
    elif samples.dtype != _PCM:
        samples = np.clip(samples, -32768, 32767)
    return samples.astype(_PCM).tobytes()


def silence(nbytes: int) -> bytes:
    return bytes(nbytes)


def rms(pcm: bytes) -> float:
    """Root mean square in sample units (0..32768); 0.0 for empty input."""
    s = as_samples(pcm)
    if s.size == 0:
        return 0.0
    return float(np.sqrt(np.mean(np.square(s.astype(np.float64)))))


def peak(pcm: bytes) -> int:
    """Largest absolute sample value (0..32768)."""
    s = as_samples(pcm)
    return int(np.max(np.abs(s.astype(np.int32)))) if s.size else 0


def dbfs(pcm: bytes) -> float:
    """RMS level relative to full scale (a full-scale square wave is 0 dBFS); -inf for silence."""
    level = rms(pcm)
    return float("-inf") if level == 0.0 else 20.0 * float(np.log10(level / 32768.0))


# ------------------------------------------------------------------------------------------------ resampling
def resample(pcm: bytes, from_rate: int, to_rate: int, *, quality: str = "HQ") -> bytes:
    """One-shot resampling of a whole L16 buffer (e.g. a synthesized prompt)."""
    _check_rate("from_rate", from_rate)
    _check_rate("to_rate", to_rate)
    if from_rate == to_rate:
        as_samples(pcm)  # same validation as the converting path
        return bytes(pcm)
    out = soxr.resample(as_samples(pcm), from_rate, to_rate, quality=quality)
    return to_bytes(np.asarray(out))


class Resampler:
    """Streaming resampler: feed chunks as they come (TTS output), `flush()` at the end of the utterance.

    Keeps the filter state and any odd trailing byte across chunks, so chunk boundaries are inaudible.
    Output lags input by the filter delay (a few ms at HQ); `flush()` returns the tail.
    """

    def __init__(self, from_rate: int, to_rate: int, *, quality: str = "HQ") -> None:
        _check_rate("from_rate", from_rate)
        _check_rate("to_rate", to_rate)
        self.from_rate = from_rate
        self.to_rate = to_rate
        self._quality = quality
        self._odd = b""
        self._stream: soxr.ResampleStream | None = None
        self._new_stream()

    def _new_stream(self) -> None:
        if self.from_rate != self.to_rate:
            self._stream = soxr.ResampleStream(self.from_rate, self.to_rate, 1, dtype="int16", quality=self._quality)

    def process(self, chunk: bytes) -> bytes:
        data = self._odd + chunk
        cut = len(data) - len(data) % SAMPLE_WIDTH
        self._odd = data[cut:]
        whole = data[:cut]
        if self._stream is None:
            return whole
        if not whole:
            return b""
        return to_bytes(np.asarray(self._stream.resample_chunk(as_samples(whole))))

    def flush(self) -> bytes:
        """End of the stream: the filter's tail; the resampler is ready for a new, unrelated stream."""
        self._odd = b""  # half a sample cannot be played
        if self._stream is None:
            return b""
        tail = np.asarray(self._stream.resample_chunk(np.zeros(0, dtype=np.int16), last=True))
        self._new_stream()
        return to_bytes(tail)


def _check_rate(name: str, rate: int) -> None:
    if not isinstance(rate, int) or isinstance(rate, bool) or not 1000 <= rate <= 384_000:
        raise ValueError(f"{name}: {rate!r} is not a sample rate in Hz (1000..384000)")


# ------------------------------------------------------------------------------------------------ framing
class FrameSplitter:
    """Turns byte chunks of any size into exact frames of `frame_bytes`, keeping the rest for the next chunk.

    Odd bytes (half a sample split across websocket messages) stay in the remainder, so they are joined with
    the next chunk instead of shifting every later sample by one byte.
    """

    def __init__(self, frame_bytes: int) -> None:
        if frame_bytes <= 0 or frame_bytes % SAMPLE_WIDTH:
            raise ValueError(f"frame_bytes: {frame_bytes} must be a positive whole number of samples")
        self.frame_bytes = frame_bytes
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes waiting for the rest of their frame."""
        return len(self._buf)

    def push(self, chunk: bytes) -> list[bytes]:
        return list(self.iter_push(chunk))

    def iter_push(self, chunk: bytes) -> Iterator[bytes]:
        self._buf += chunk
        n = len(self._buf) // self.frame_bytes
        if n == 0:
            return
        end = n * self.frame_bytes
        whole = bytes(self._buf[:end])
        del self._buf[:end]
        for i in range(0, end, self.frame_bytes):
            yield whole[i : i + self.frame_bytes]

    def flush(self, *, pad: bool = True) -> bytes | None:
        """The partial last frame, padded with silence to a full frame (or as is); None if nothing is pending.

        A trailing odd byte is dropped: half a sample cannot be played.
        """
        if not self._buf:
            return None
        data = bytes(self._buf[: len(self._buf) - len(self._buf) % SAMPLE_WIDTH])
        self._buf.clear()
        if pad:
            data += bytes(self.frame_bytes - len(data))
        return data

    def clear(self) -> None:
        self._buf.clear()
