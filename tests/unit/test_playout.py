"""The loopback's playout buffer (the C module's playout core, in Python): prebuffer, pacing, marks, clear."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
from storeagent.agent.loopback.playout import CallRecord, ClearRecord, PlayoutBuffer

FB = 320  # 20 ms at 8 kHz


def frames(n: int, start: int = 1) -> bytes:
    return b"".join(bytes([(start + i) % 256]) * FB for i in range(n))


def test_prebuffer_then_frame_by_frame() -> None:
    pb = PlayoutBuffer(FB, prebuffer_frames=3)
    pb.write(frames(2))
    assert not pb.next_frame().active  # 40 ms < 60 ms prebuffer
    pb.write(frames(2, start=3))
    played = [pb.next_frame() for _ in range(4)]
    assert all(t.active for t in played)
    assert b"".join(t.pcm for t in played) == frames(4)


def test_prebuffer_does_not_hold_a_short_utterance_forever() -> None:
    pb = PlayoutBuffer(FB, prebuffer_frames=3)
    pb.write(frames(1))
    ticks = [pb.next_frame() for _ in range(5)]
    assert sum(t.active for t in ticks) == 1


def test_odd_chunks_are_joined_across_writes() -> None:
    pb = PlayoutBuffer(FB, prebuffer_frames=0)
    data = frames(3)
    for i in range(0, len(data), 7):
        pb.write(data[i : i + 7])
    assert b"".join(pb.next_frame().pcm for _ in range(3)) == data


def test_marks_played_in_order_when_playout_passes_them() -> None:
    pb = PlayoutBuffer(FB, prebuffer_frames=0)
    pb.write(frames(2))
    pb.mark("a")
    pb.write(frames(1))
    pb.mark("b")
    ticks = [pb.next_frame() for _ in range(4)]
    assert [t.played_marks for t in ticks] == [(), ("a",), ("b",), ()]
    assert pb.underruns == 0  # ran dry exactly at a mark: the end of an utterance


def test_mark_with_nothing_queued_is_played_at_once() -> None:
    pb = PlayoutBuffer(FB)
    pb.mark("m")
    assert pb.next_frame().played_marks == ("m",)


def test_partial_last_frame_before_a_mark_is_padded() -> None:
    pb = PlayoutBuffer(FB, prebuffer_frames=3)
    pb.write(b"\x01\x02" * 50 + b"\x09")  # a stray half sample at the end of the segment is dropped
    pb.mark("end")
    t = pb.next_frame()
    assert t.active and t.played_marks == ("end",)
    assert t.pcm == b"\x01\x02" * 50 + bytes(FB - 100)
    assert pb.underruns == 0


def test_back_to_back_utterances_play_without_a_gap() -> None:
    pb = PlayoutBuffer(FB, prebuffer_frames=0)
    pb.write(b"\x01\x02" * 50)
    pb.mark("first")
    pb.write(b"\x03\x04" * 200)
    t = pb.next_frame()
    assert t.pcm == b"\x01\x02" * 50 + b"\x03\x04" * 110
    assert t.played_marks == ("first",)


def test_underrun_when_speech_runs_dry_mid_segment() -> None:
    pb = PlayoutBuffer(FB, prebuffer_frames=0)
    pb.write(frames(1) + b"\x05" * 101)  # 50 samples and half of one more
    assert pb.next_frame().active
    t = pb.next_frame()  # the partial frame plays, padded; no mark follows: the speech was cut
    assert t.active and t.pcm == b"\x05" * 100 + bytes(FB - 100)
    for _ in range(3):
        t = pb.next_frame()
        assert not t.active and t.pcm == bytes(FB)
    assert pb.underruns == 1
    assert pb.buffered_bytes == 1  # the odd byte waits for its other half
    pb.write(b"\x05" + frames(3))
    assert pb.next_frame().pcm == b"\x05" * 2 + frames(3)[: FB - 2]


def test_clear_drops_everything_and_returns_pending_marks() -> None:
    pb = PlayoutBuffer(FB, prebuffer_frames=0)
    pb.write(frames(10))
    pb.mark("m1")
    pb.write(frames(10))
    pb.mark("m2")
    assert pb.next_frame().active
    dropped, cleared = pb.clear()
    assert dropped == 19 * FB and cleared == ["m1", "m2"]
    t = pb.next_frame()
    assert not t.active and t.played_marks == ()
    assert pb.underruns == 0
    pb.write(frames(1))
    pb.mark("m3")
    assert pb.next_frame().played_marks == ("m3",)


def test_prebuffer_is_at_most_60_ms() -> None:
    with pytest.raises(ValueError, match="prebuffer_frames"):
        PlayoutBuffer(FB, prebuffer_frames=4)


def test_stereo_wav_caller_left_agent_right(tmp_path: Path) -> None:
    rec = CallRecord(8000)
    rec.caller = [b"\x01\x00" * 160, b"\x02\x00" * 160]
    rec.agent = [b"\x03\x00" * 160]
    rec.agent_active = [True]
    path = rec.write_wav(tmp_path / "call.wav")
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (2, 2, 8000, 320)
        data = np.frombuffer(w.readframes(320), dtype="<i2").reshape(-1, 2)
    assert list(data[0]) == [1, 3] and list(data[160]) == [2, 0]


def test_barge_in_stop_from_onset_to_first_silent_tick() -> None:
    rec = CallRecord(8000)
    rec.uplink_times = [10.0 + 0.02 * k for k in range(20)]
    rec.playout_times = list(rec.uplink_times)
    rec.clears = [ClearRecord(received_at=10.125, frame_index=7, dropped_bytes=640, marks_cleared=("m",))]
    assert rec.barge_in_stop(3) == pytest.approx(10.14 - 10.06)
    assert rec.barge_in_stop(10) is None  # no clear after that onset
