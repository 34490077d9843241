"""L16 codec helpers: G.711 µ-law against the standard's values, resampling, framing, levels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from storeagent.agent.transport import codec


def pcm(*samples: int) -> bytes:
    return np.array(samples, dtype="<i2").tobytes()


def sine(freq: float, rate: int, seconds: float, amp: float = 0.5) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return codec.to_bytes(amp * np.sin(2 * np.pi * freq * t))


def dominant_hz(data: bytes, rate: int) -> float:
    s = codec.as_samples(data).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(s * np.hanning(s.size)))
    return float(np.fft.rfftfreq(s.size, 1 / rate)[int(np.argmax(spectrum))])


# ------------------------------------------------------------------------------------------------ µ-law
@pytest.mark.parametrize(
    ("code", "linear"),
    [(0x00, -32124), (0x80, 32124), (0xFF, 0), (0x7F, 0), (0xCE, 988), (0x4E, -988), (0xF0, 120), (0x70, -120)],
)
def test_ulaw_decode_known_values(code: int, linear: int) -> None:
    assert codec.ulaw_decode(bytes([code])) == pcm(linear)


@pytest.mark.parametrize(
    ("linear", "code"),
    [(0, 0xFF), (-1, 0x7F), (1000, 0xCE), (-1000, 0x4E), (32767, 0x80), (-32768, 0x00), (8, 0xFE), (-9, 0x7E)],
)
def test_ulaw_encode_known_values(linear: int, code: int) -> None:
    assert codec.ulaw_encode(pcm(linear)) == bytes([code])


def test_ulaw_round_trip_every_code() -> None:
    codes = bytes(range(256))
    back = codec.ulaw_encode(codec.ulaw_decode(codes))
    # Every code survives except 0x7F ("negative zero"), which decodes to 0 and re-encodes as 0xFF.
    assert [c for c, b in zip(codes, back, strict=True) if c != b] == [0x7F]
    assert back[0x7F] == 0xFF


def test_ulaw_encode_is_monotonic_and_close() -> None:
    every = np.arange(-32768, 32768, dtype="<i2")
    decoded = codec.as_samples(codec.ulaw_decode(codec.ulaw_encode(every.tobytes()))).astype(np.int32)
    assert np.all(np.diff(decoded) >= 0)
    # Error bounded by half the largest step (1024 at the top segment) outside the clipped range.
    inside = np.abs(every.astype(np.int32)) <= 32124
    assert int(np.max(np.abs(decoded[inside] - every[inside]))) <= 512


def test_ulaw_rejects_odd_bytes() -> None:
    with pytest.raises(ValueError, match="whole number of 16-bit samples"):
        codec.ulaw_encode(b"\x00\x01\x02")


# ------------------------------------------------------------------------------------------------ resampling
@pytest.mark.parametrize(("src", "dst"), [(8000, 16000), (16000, 8000), (22050, 8000), (22050, 16000)])
def test_resample_keeps_tone_and_duration(src: int, dst: int) -> None:
    out = codec.resample(sine(440, src, 1.0), src, dst)
    assert len(out) // 2 == pytest.approx(dst, abs=2)
    assert dominant_hz(out, dst) == pytest.approx(440, abs=3)


def test_downsampling_removes_what_the_new_rate_cannot_carry() -> None:
    # 6 kHz is above 8k's Nyquist (4 kHz): a naive decimator would fold it to 2 kHz.
    tone = sine(6000, 22050, 1.0, amp=0.8)
    out = codec.resample(tone, 22050, 8000)
    assert codec.rms(out[800:-800]) < codec.rms(tone) * 0.01


def test_streaming_resampler_matches_one_shot_length_and_handles_odd_chunks() -> None:
    data = sine(300, 22050, 0.5)
    r = codec.Resampler(22050, 8000)
    out = b""
    sizes = [1, 3, 700, 441, 2, 5]
    i = 0
    while i < len(data):
        n = sizes[i % len(sizes)]
        out += r.process(data[i : i + n])
        i += n
    out += r.flush()
    assert len(out) % 2 == 0
    assert len(out) // 2 == pytest.approx(4000, abs=2)
    assert dominant_hz(out, 8000) == pytest.approx(300, abs=4)


def test_same_rate_is_passthrough() -> None:
    r = codec.Resampler(8000, 8000)
    assert r.process(b"\x01") == b""
    assert r.process(b"\x02\x03") == b"\x01\x02"
    assert codec.resample(pcm(1, 2, 3), 8000, 8000) == pcm(1, 2, 3)


def test_bad_rate_is_named() -> None:
    with pytest.raises(ValueError, match="to_rate"):
        codec.Resampler(8000, 0)


# ------------------------------------------------------------------------------------------------ framing
def test_frame_splitter_keeps_odd_bytes_across_chunks() -> None:
    fs = codec.FrameSplitter(320)
    stream = bytes(range(256)) * 10  # 2560 bytes = 8 frames
    frames: list[bytes] = []
    for size in (1, 319, 1, 3, 640, 7, 999):
        frames += fs.push(stream[:size])
        stream = stream[size:]
    frames += fs.push(stream)
    assert [len(f) for f in frames] == [320] * 8
    assert b"".join(frames) == bytes(range(256)) * 10
    assert fs.pending == 0


def test_frame_splitter_flush_pads_and_drops_half_sample() -> None:
    fs = codec.FrameSplitter(8)
    assert fs.push(b"\x01\x02\x03") == []
    assert fs.flush() == b"\x01\x02" + bytes(6)
    assert fs.flush() is None


@given(st.lists(st.binary(max_size=700), max_size=30))
def test_frame_splitter_never_loses_or_reorders(chunks: list[bytes]) -> None:
    fs = codec.FrameSplitter(320)
    out = b"".join(f for c in chunks for f in fs.push(c))
    joined = b"".join(chunks)
    assert out == joined[: len(out)]
    assert len(out) + fs.pending == len(joined)
    assert fs.pending < 320


# ------------------------------------------------------------------------------------------------ levels
def test_levels() -> None:
    assert codec.rms(b"") == 0.0
    assert codec.rms(pcm(3, -3, 3, -3)) == 3.0
    assert codec.peak(pcm(1, -32768, 5)) == 32768
    assert codec.dbfs(bytes(320)) == float("-inf")
    assert codec.dbfs(pcm(32767, -32768)) == pytest.approx(0.0, abs=0.01)
    assert codec.dbfs(sine(1000, 8000, 0.1, amp=0.5)) == pytest.approx(-9.03, abs=0.1)  # 0.5/sqrt(2)


def test_to_bytes_clips_instead_of_wrapping() -> None:
    assert codec.to_bytes(np.array([1.5, -1.5])) == pcm(32767, -32768)
    assert codec.to_bytes(np.array([40000, -40000], dtype=np.int32)) == pcm(32767, -32768)
