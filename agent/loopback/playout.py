"""The playout side of mod_storeagent without I/O: a jitter buffer of agent speech with marks, and the record
of what the loopback played (for tests, barge-in timing and the demo's stereo WAV).

`PlayoutBuffer` is freeswitch/mod_storeagent/src/sa_playout.c in Python, decision for decision (issue 5: where
they disagree the module wins, and tests/unit/test_playout.py runs the cmocka vectors of the module's
tests/test_playout.c against it):
- speech arrives in any chunk size; an odd trailing byte waits for its other half; beyond `max_ms` queued the
  excess is dropped and counted (`overflow_bytes`);
- a mark sits at the sample position of the audio queued so far;
- playout starts when `prebuffer_ms` (default 40, at most 60) is buffered, or when a mark is pending (the
  segment is complete), or once the data has waited a prebuffer's time; then it plays straight through marks,
  a mark reported `played` in the read that hands out its position;
- running dry pads the frame with silence and stops playout (prebuffering restarts); it is an underrun unless
  the buffer ran dry exactly at the last mark (the end of an utterance). Ending a whole frame exactly at the
  last mark also stops playout, without an underrun;
- `clear` drops all queued audio and the odd byte and returns every pending mark (reported `cleared`); the
  next read is silence; it also ends a pause. Underrun and overflow counts survive a clear;
- `pause` holds playout: reads return silence and consume nothing (no mark reported, no underrun, the prebuffer
  wait does not advance) while writes and marks still queue; `resume` continues from the exact sample where the
  pause held it. Both idempotent.
"""

from __future__ import annotations

import wave
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAX_PREBUFFER_MS = 60  # SA_MAX_PREBUFFER_MS
DEFAULT_PREBUFFER_MS = 40  # SA_DEFAULT_PREBUFFER_MS (the module's `prebuffer-ms`)
DEFAULT_MAX_MS = 120_000  # SA_DEFAULT_MAX_BUFFER_MS (the module's `max-buffer-ms`)


@dataclass(frozen=True, slots=True)
class Tick:
    """One playout read: the audio played (padded with silence) and the marks playout passed with it."""

    pcm: bytes
    real_bytes: int  # bytes of agent speech at the start of `pcm` (sa_playout_read's return value, in bytes)
    played_marks: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        """False: pure silence because nothing was playing."""
        return self.real_bytes > 0


class PlayoutBuffer:
    """sa_playout_t: `sample_rate`, `prebuffer_ms` and `max_ms` are sa_playout_config_t; invalid values raise
    ValueError naming the field (where sa_playout_new returns NULL)."""

    def __init__(self, sample_rate: int, *, prebuffer_ms: int = DEFAULT_PREBUFFER_MS,
                 max_ms: int = DEFAULT_MAX_MS) -> None:
        if not 0 < sample_rate <= 192_000:
            raise ValueError(f"sample_rate: {sample_rate} must be 1..192000")
        if not 0 <= prebuffer_ms <= MAX_PREBUFFER_MS:
            raise ValueError(f"prebuffer_ms: {prebuffer_ms} must be 0..{MAX_PREBUFFER_MS}")
        if max_ms <= 0 or max_ms < prebuffer_ms:
            raise ValueError(f"max_ms: {max_ms} must be positive and at least prebuffer_ms ({prebuffer_ms})")
        self.sample_rate = sample_rate
        self.prebuffer_ms = prebuffer_ms
        self.frame_samples = max(1, sample_rate // 50)  # one 20 ms tick of the writer thread
        self.frame_bytes = 2 * self.frame_samples
        self.prebuffer_bytes = 2 * (sample_rate * prebuffer_ms // 1000)
        self.capacity_bytes = 2 * max(1, sample_rate * max_ms // 1000)
        self._buf = bytearray()  # whole little-endian samples only
        self._carry: int | None = None  # an odd trailing byte waiting for its other half
        self._pushed = 0  # bytes ever queued (mark positions count in these)
        self._consumed = 0  # bytes ever played or cleared
        self._marks: deque[tuple[int, str]] = deque()
        self._playing = False
        self._paused = False
        self.pauses = 0  # pause() calls that paused
        self._waited = 0  # bytes of silence read while gathering the prebuffer
        self.underruns = 0  # dry spells mid-speech (not exactly at the last mark)
        self.overflow_bytes = 0  # pushed bytes dropped because max_ms was reached
        self.played_bytes = 0  # real (non-silence) bytes handed out

    # ---------------------------------------------------------------------------------------- stats
    @property
    def buffered_bytes(self) -> int:
        """Queued whole samples, in bytes (a pending odd byte is not audio yet)."""
        return len(self._buf)

    @property
    def buffered_ms(self) -> float:
        return len(self._buf) * 1000 / (2 * self.sample_rate)

    @property
    def playing(self) -> bool:
        """True once playout started, False while gathering the prebuffer (or idle)."""
        return self._playing

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def pending_marks(self) -> list[str]:
        return [name for _, name in self._marks]

    # ---------------------------------------------------------------------------------------- input
    def write(self, pcm: bytes) -> None:
        """sa_playout_push: append raw L16 bytes of any length."""
        data = memoryview(pcm).cast("B")
        if self._carry is not None and len(data):
            self._put(bytes((self._carry, data[0])))
            self._carry = None
            data = data[1:]
        whole = len(data) - len(data) % 2
        self._put(data[:whole])
        if whole < len(data):
            self._carry = data[whole]

    def _put(self, chunk: bytes | memoryview) -> None:
        take = min(len(chunk), self.capacity_bytes - len(self._buf))
        self._buf += chunk[:take]
        self._pushed += take
        self.overflow_bytes += len(chunk) - take

    def mark(self, name: str) -> None:
        """sa_playout_mark: a mark after all audio queued so far."""
        self._marks.append((self._pushed, name))

    def clear(self) -> tuple[int, list[str]]:
        """sa_playout_clear: drop all queued speech; returns (bytes dropped, marks cleared in order)."""
        dropped = len(self._buf) + (self._carry is not None)
        cleared = self.pending_marks
        self._buf.clear()
        self._carry = None
        self._consumed = self._pushed
        self._marks.clear()
        self._playing = False
        self._paused = False
        self._waited = 0
        return dropped, cleared

    def pause(self) -> None:
        """sa_playout_pause: hold playout where it is (queue, position and marks kept)."""
        if not self._paused:
            self.pauses += 1
        self._paused = True

    def resume(self) -> None:
        """sa_playout_resume: continue from the exact sample where the pause held playout."""
        self._paused = False

    # ---------------------------------------------------------------------------------------- output
    def next_frame(self) -> Tick:
        """The frame for this 20 ms tick."""
        return self.read(self.frame_samples)

    def read(self, nsamples: int) -> Tick:
        """sa_playout_read: exactly `nsamples` samples (silence where there is no audio) and the marks passed."""
        if nsamples <= 0:
            raise ValueError(f"nsamples: {nsamples} must be positive")
        want = 2 * nsamples
        if self._paused:  # held, not dry: nothing consumed, nothing reported
            return Tick(bytes(want), 0, ())
        if not self._playing and self._buf:
            # Start once the prebuffer is full, when a mark ends the segment, or once a short segment has
            # waited a prebuffer's time: a reply shorter than the prebuffer must still play.
            if len(self._buf) >= self.prebuffer_bytes or self._marks or self._waited >= self.prebuffer_bytes:
                self._playing = True
            else:
                self._waited += want
        real = 0
        if self._playing:
            real = min(len(self._buf), want)
            pcm = bytes(self._buf[:real]) + bytes(want - real)
            del self._buf[:real]
            self._consumed += real
            self.played_bytes += real
            if not self._buf:
                # Ran dry. At the last mark the segment simply ended; anywhere else the speech was cut.
                at_mark = bool(self._marks) and self._marks[-1][0] == self._consumed
                if real < want and not at_mark:
                    self.underruns += 1
                if real < want or at_mark:
                    self._playing = False
                    self._waited = 0
        else:
            pcm = bytes(want)
        played: list[str] = []
        while self._marks and self._marks[0][0] <= self._consumed:
            played.append(self._marks.popleft()[1])
        return Tick(pcm, real, tuple(played))


# ------------------------------------------------------------------------------------------------ record
@dataclass(frozen=True, slots=True)
class MarkRecord:
    name: str
    event: str  # played | cleared
    at: float  # time.monotonic()
    frame_index: int  # playout tick at which it was reported


@dataclass(frozen=True, slots=True)
class ClearRecord:
    received_at: float  # time.monotonic() when the clear arrived
    frame_index: int  # first playout tick after the clear: always silence
    dropped_bytes: int
    marks_cleared: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PauseRecord:
    received_at: float  # time.monotonic() when the pause / resume arrived
    frame_index: int  # first playout tick after it (silence for a pause, the held speech for a resume)
    resume: bool = False


@dataclass
class CallRecord:
    """What went up and what was played, tick by tick on the shared 20 ms clock (index k = t0 + k * 20 ms)."""

    sample_rate: int
    caller: list[bytes] = field(default_factory=list)  # uplink frame k
    uplink_times: list[float] = field(default_factory=list)
    agent: list[bytes] = field(default_factory=list)  # playout frame k
    agent_active: list[bool] = field(default_factory=list)
    playout_times: list[float] = field(default_factory=list)
    received: bytearray = field(default_factory=bytearray)  # every downlink byte, in arrival order
    marks: list[MarkRecord] = field(default_factory=list)
    clears: list[ClearRecord] = field(default_factory=list)
    pauses: list[PauseRecord] = field(default_factory=list)  # pauses and resumes, in arrival order
    late_ticks: int = 0  # ticks served more than one frame late (a loaded machine)

    def played_audio(self) -> bytes:
        """Concatenated frames that carried agent speech."""
        return b"".join(pcm for pcm, active in zip(self.agent, self.agent_active, strict=True) if active)

    def active_after(self, t: float) -> int:
        """Frames with agent speech played at or after monotonic time `t`."""
        return sum(1 for at, active in zip(self.playout_times, self.agent_active, strict=True) if active and at >= t)

    def playout_time(self, index: int) -> float | None:
        return self.playout_times[index] if 0 <= index < len(self.playout_times) else None

    def barge_in_stop(self, onset_tick: int) -> float | None:
        """Seconds from the caller's speech onset (sent with uplink tick `onset_tick`) until the agent's speech
        stopped: the first playout tick after the first pause or clear that came after the onset. None: neither."""
        if not 0 <= onset_tick < len(self.uplink_times):
            return None
        onset = self.uplink_times[onset_tick]
        stops = [(c.received_at, c.frame_index) for c in self.clears]
        stops += [(p.received_at, p.frame_index) for p in self.pauses if not p.resume]
        for received_at, frame_index in sorted(stops):
            if received_at >= onset:
                stopped = self.playout_time(frame_index)
                return (stopped if stopped is not None else received_at) - onset
        return None

    def write_wav(self, path: str | Path) -> Path:
        """Stereo 16-bit WAV: caller on the left, agent (as played) on the right, sample-aligned by tick."""
        n = max(len(self.caller), len(self.agent))
        frame_bytes = self.sample_rate * 2 // 50

        def track(frames: list[bytes]) -> np.ndarray:
            data = b"".join(frames) + bytes((n - len(frames)) * frame_bytes)
            return np.frombuffer(data, dtype="<i2")

        stereo = np.empty((n * frame_bytes // 2, 2), dtype="<i2")
        stereo[:, 0] = track(self.caller)
        stereo[:, 1] = track(self.agent)
        out = Path(path)
        with wave.open(str(out), "wb") as w:
            w.setnchannels(2)
            w.setsampwidth(2)
            w.setframerate(self.sample_rate)
            w.writeframes(stereo.tobytes())
        return out
