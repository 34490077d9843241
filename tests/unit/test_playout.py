"""The loopback's playout buffer obeys the module's rules (issue 5: the module wins).

The first group runs the cmocka cases of freeswitch/mod_storeagent/tests/test_playout.c with the same vectors
(8 kHz, 160-sample frames, ramps counting up from a start value); the rest pin the points where the loopback
once disagreed with sa_playout.c, and the record the loopback keeps."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from storeagent.agent.loopback.audio_client import AudioClient
from storeagent.agent.loopback.playout import CallRecord, ClearRecord, PauseRecord, PlayoutBuffer

RATE = 8000
FRAME = 160  # samples per 20 ms read
FB = 2 * FRAME


def ramp(start: int, n: int) -> bytes:
    """`n` samples counting up from `start` (wrapping like uint16_t), little-endian: the cmocka ramp()."""
    return ((np.arange(n, dtype=np.int64) + start) % 65536).astype("<u2").tobytes()


def samples(pcm: bytes) -> list[int]:
    return np.frombuffer(pcm, dtype="<i2").tolist()


def make(prebuffer_ms: int) -> PlayoutBuffer:
    return PlayoutBuffer(RATE, prebuffer_ms=prebuffer_ms, max_ms=2000)


# ------------------------------------------------------------------------- test_playout.c, same vectors
def test_rejects_bad_config() -> None:
    with pytest.raises(ValueError, match="sample_rate"):
        PlayoutBuffer(0, prebuffer_ms=40, max_ms=1000)
    with pytest.raises(ValueError, match="prebuffer_ms"):
        PlayoutBuffer(RATE, prebuffer_ms=61, max_ms=1000)
    with pytest.raises(ValueError, match="max_ms"):
        PlayoutBuffer(RATE, prebuffer_ms=40, max_ms=20)
    with pytest.raises(ValueError, match="nsamples"):
        make(0).read(0)


def test_waits_for_prebuffer_then_plays_in_order() -> None:
    pb = make(40)
    pb.write(ramp(1, FRAME))  # 20 ms: less than the 40 ms prebuffer
    t = pb.read(FRAME)
    assert t.real_bytes == 0 and t.pcm == bytes(FB)
    pb.write(ramp(1 + FRAME, FRAME * 3))
    out = [pb.read(FRAME) for _ in range(4)]
    assert [t.real_bytes for t in out] == [FB] * 4
    assert samples(b"".join(t.pcm for t in out)) == list(range(1, 4 * FRAME + 1))


def test_odd_bytes_join_the_next_chunk() -> None:
    pb = make(0)
    data = ramp(1000, FRAME)
    off = 0
    for cut in (3, 1, 250, FB - 254):  # every split leaves an odd byte at some point
        pb.write(data[off : off + cut])
        off += cut
    t = pb.read(FRAME)
    assert t.real_bytes == FB and samples(t.pcm) == list(range(1000, 1000 + FRAME))


def test_short_reply_plays_after_waiting_a_prebuffer() -> None:
    pb = make(60)
    pb.write(ramp(1, 80))  # 10 ms only, no mark
    reals = [pb.read(FRAME).real_bytes for _ in range(5)]
    assert reals == [0, 0, 0, 160, 0]  # three silent reads (60 ms waited), then the reply, padded
    assert pb.underruns == 1  # it ran dry without a mark: the module counts that too


def test_marks_report_played_when_passed_in_order() -> None:
    pb = make(0)
    data = ramp(1, FRAME * 2)
    pb.write(data[: FB + 100])  # mark "a" sits 50 samples into the 2nd frame
    pb.mark("a")
    pb.write(data[FB + 100 :])
    pb.mark("b")
    assert pb.read(FRAME).played_marks == ()
    t = pb.read(FRAME)
    assert t.played_marks == ("a", "b")  # "a" mid-frame and "b" at its end: both passed by this frame
    assert samples(t.pcm) == list(range(FRAME + 1, 2 * FRAME + 1))  # no silence at "a": played straight through
    assert pb.underruns == 0


def test_mark_without_audio_is_played_on_next_frame() -> None:
    pb = make(40)
    pb.mark("empty")
    assert pb.read(FRAME).played_marks == ("empty",)


def test_clear_is_honoured_within_one_frame() -> None:
    pb = make(0)
    pb.write(ramp(1, FRAME * 10))
    pb.mark("m1")
    pb.write(ramp(1, FRAME * 10)[:3])  # an odd byte pending: dropped too
    pb.mark("m2")
    assert pb.read(FRAME).real_bytes == FB
    dropped, cleared = pb.clear()
    assert cleared == ["m1", "m2"] and dropped == 9 * FB + 3
    t = pb.read(FRAME)
    assert t.real_bytes == 0 and t.pcm == bytes(FB) and t.played_marks == ()
    pb.write(ramp(7, FRAME))  # new speech after the clear starts clean (no stale odd byte)
    pb.mark("m3")
    t = pb.read(FRAME)
    assert t.real_bytes == FB and samples(t.pcm)[0] == 7 and t.played_marks == ("m3",)


def test_dry_mid_speech_is_an_underrun_dry_at_mark_is_not() -> None:
    pb = make(0)
    pb.write(ramp(1, FRAME + 40))
    pb.mark("end")
    pb.read(FRAME)
    t = pb.read(FRAME)
    assert t.real_bytes == 80 and t.pcm[80:] == bytes(FB - 80)  # segment end: padded with silence
    assert t.played_marks == ("end",) and pb.underruns == 0
    pb.write(ramp(1, FRAME + 40))  # no mark: the agent fell behind
    for _ in range(3):
        pb.read(FRAME)  # still dry after the second read: one dry spell, one underrun
    assert pb.underruns == 1 and not pb.playing


def test_overflow_is_dropped_and_counted() -> None:
    pb = PlayoutBuffer(RATE, prebuffer_ms=0, max_ms=1000)
    pb.write(bytes(RATE * 2 * 2))
    assert pb.buffered_bytes == RATE * 2 and pb.overflow_bytes == RATE * 2


# ------------------------------------------------------------------ where the loopback used to disagree
def test_default_prebuffer_is_the_modules_40_ms() -> None:
    pb = PlayoutBuffer(RATE)
    assert pb.prebuffer_ms == 40
    pb.write(ramp(1, FRAME))
    assert not pb.read(FRAME).active  # 20 ms < 40 ms
    pb.write(ramp(1, FRAME))
    assert pb.read(FRAME).active  # 40 ms: go (the old loopback waited for 60)
    client = AudioClient("ws://127.0.0.1:9/v1/calls/u/audio", uuid="u", token=None)
    assert client.playout.prebuffer_ms == 40 and client.playout.capacity_bytes == 120 * RATE * 2


def test_less_than_a_frame_before_a_mark_plays_straight_through() -> None:
    pb = make(0)
    pb.write(ramp(1, 50))
    pb.mark("first")
    pb.write(ramp(51, 200))
    t = pb.read(FRAME)
    assert samples(t.pcm) == list(range(1, FRAME + 1)) and t.played_marks == ("first",)
    assert pb.playing  # the mark was not the last one: playout goes on


def test_dry_without_mark_plays_the_partial_frame_padded() -> None:
    pb = make(0)
    pb.write(ramp(1, FRAME) + ramp(1000, 50) + b"\x05")  # a frame, 50 samples and half of one more
    assert pb.read(FRAME).real_bytes == FB
    t = pb.read(FRAME)
    assert t.real_bytes == 100 and samples(t.pcm) == list(range(1000, 1050)) + [0] * (FRAME - 50)
    assert pb.underruns == 1 and not pb.playing
    for _ in range(3):
        assert pb.read(FRAME).pcm == bytes(FB)
    assert pb.underruns == 1  # one per dry spell
    assert pb.buffered_bytes == 0  # the odd byte is not audio yet
    pb.write(b"\x00" + ramp(2, FRAME))  # its other half arrives: sample 0x0005, then the ramp
    t = pb.read(FRAME)
    assert samples(t.pcm) == [5, *range(2, FRAME + 1)]


def test_an_earlier_mark_does_not_excuse_running_dry_later() -> None:
    pb = make(0)
    pb.write(ramp(1, FRAME))
    pb.mark("a")
    pb.write(ramp(1, 40))
    assert pb.read(FRAME).played_marks == ("a",)
    assert pb.read(FRAME).real_bytes == 80
    assert pb.underruns == 1


def test_frame_ending_exactly_at_the_last_mark_stops_playout_without_underrun() -> None:
    pb = make(40)
    pb.write(ramp(1, 2 * FRAME))
    pb.mark("end")
    assert [pb.read(FRAME).played_marks for _ in range(2)] == [(), ("end",)]
    assert not pb.playing and pb.underruns == 0
    pb.write(ramp(1, FRAME))  # the next utterance gathers its prebuffer again
    assert not pb.read(FRAME).active
    assert pb.underruns == 0


def test_clear_keeps_the_counters_and_restarts_the_prebuffer() -> None:
    pb = make(40)
    pb.write(ramp(1, 2 * FRAME + 10))
    assert [pb.read(FRAME).real_bytes for _ in range(3)] == [FB, FB, 20]
    assert pb.underruns == 1 and pb.played_bytes == 2 * FB + 20
    pb.write(ramp(1, 4 * FRAME))
    assert pb.read(FRAME).active
    pb.clear()
    assert pb.underruns == 1 and pb.played_bytes == 3 * FB + 20 and not pb.playing
    pb.write(ramp(1, FRAME))
    assert not pb.read(FRAME).active  # 20 ms after the clear: gathering again


async def test_api_clear_reports_pending_marks_cleared_like_sa_call_clear() -> None:
    client = AudioClient("ws://127.0.0.1:9/v1/calls/u/audio", uuid="u", token=None)
    client.playout.write(ramp(1, 4 * FRAME))
    client.playout.mark("m1")
    assert client.clear_playout() == ("m1",)
    assert [(m.name, m.event) for m in client.record.marks] == [("m1", "cleared")]
    assert client.record.clears[0].marks_cleared == ("m1",) and client.playout.buffered_bytes == 0
    await client.wait_closed()  # the report goes nowhere (not connected) and its task ends


def test_pause_holds_the_exact_position_and_marks_resume_continues() -> None:
    pb = make(0)
    pb.write(ramp(1, FRAME * 6)[: (FRAME * 3 + 10) * 2])  # "m1" 10 samples into the 4th frame
    pb.mark("m1")
    pb.write(ramp(1, FRAME * 6)[(FRAME * 3 + 10) * 2 :])
    pb.mark("m2")
    assert samples(pb.read(FRAME).pcm)[-1] == FRAME
    pb.pause()
    pb.pause()  # idempotent
    held = [pb.read(FRAME) for _ in range(25)]  # half a second: silence, nothing consumed, no mark, no underrun
    assert all(t.real_bytes == 0 and t.pcm == bytes(FB) and not t.played_marks for t in held)
    assert pb.underruns == 0 and pb.paused and pb.pauses == 1
    assert pb.buffered_bytes == 5 * FB and pb.pending_marks == ["m1", "m2"]
    pb.write(ramp(1 + FRAME * 6, FRAME))  # speech keeps arriving during the pause: queued behind
    pb.mark("m3")
    pb.resume()
    out = [pb.read(FRAME) for _ in range(6)]
    assert samples(b"".join(t.pcm for t in out)) == list(range(FRAME + 1, 7 * FRAME + 1))
    assert [t.played_marks for t in out] == [(), (), ("m1",), (), ("m2",), ("m3",)]
    assert pb.underruns == 0 and not pb.paused


def test_clear_during_a_pause_reports_marks_cleared_and_ends_the_pause() -> None:
    pb = make(0)
    pb.write(ramp(1, 2 * FRAME))
    pb.mark("a")
    pb.write(ramp(1, 2 * FRAME))
    pb.mark("b")
    assert pb.read(FRAME).real_bytes == FB
    pb.pause()
    assert pb.read(FRAME).real_bytes == 0
    assert pb.clear()[1] == ["a", "b"]
    assert not pb.paused
    pb.write(ramp(500, FRAME))  # the next reply plays without a resume
    pb.mark("c")
    t = pb.read(FRAME)
    assert samples(t.pcm)[0] == 500 and t.played_marks == ("c",)


def test_pause_before_speech_holds_it_and_the_prebuffer_wait() -> None:
    pb = make(60)
    pb.resume()  # a resume without a pause changes nothing
    pb.pause()
    pb.write(ramp(1, 80))  # 10 ms, no mark: would play after a prebuffer's wait
    assert all(pb.read(FRAME).real_bytes == 0 for _ in range(10))
    pb.resume()
    reads = [pb.read(FRAME) for _ in range(4)]
    assert [t.real_bytes for t in reads] == [0, 0, 0, 160]  # the full 60 ms wait counted from the resume
    assert samples(reads[3].pcm)[0] == 1


async def test_pause_and_resume_frames_and_api_are_recorded() -> None:
    client = AudioClient("ws://127.0.0.1:9/v1/calls/u/audio", uuid="u", token=None)
    client.playout.write(ramp(1, 4 * FRAME))
    await client._on_text('{"type":"pause"}', 1.0)
    assert client.playout.paused and client.protocol_errors == 0
    await client._on_text('{"type":"resume"}', 1.5)
    client.pause(2.0)
    client.resume(2.1)
    assert [(p.received_at, p.resume) for p in client.record.pauses] == [(1.0, False), (1.5, True), (2.0, False),
                                                                         (2.1, True)]
    assert not client.playout.paused and client.playout.buffered_bytes == 4 * FB
    await client.wait_closed()


# --------------------------------------------------------------------------------------------- record
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


def test_barge_in_stop_counts_from_the_first_pause_or_clear() -> None:
    rec = CallRecord(8000)
    rec.uplink_times = [10.0 + 0.02 * k for k in range(20)]
    rec.playout_times = list(rec.uplink_times)
    rec.pauses = [PauseRecord(received_at=10.085, frame_index=5), PauseRecord(10.3, 15, resume=True)]
    rec.clears = [ClearRecord(received_at=10.2, frame_index=11, dropped_bytes=640, marks_cleared=())]
    assert rec.barge_in_stop(3) == pytest.approx(10.10 - 10.06)  # the pause stopped it, not the later clear
    assert rec.barge_in_stop(6) == pytest.approx(10.22 - 10.12)  # a resume is not a stop
