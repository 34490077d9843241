"""The playout side of mod_storeagent without I/O: a jitter buffer of agent speech with marks, and the record
of what the loopback played (for tests, barge-in timing and the demo's stereo WAV).

`PlayoutBuffer` mirrors the C module's playout core (freeswitch/mod_storeagent/src/sa_playout.c, issue 5: where
they disagree the module wins): speech arrives in any chunk size (an odd trailing byte waits for its other
half), playout starts once `prebuffer` is buffered (or a mark ends the segment, or the data has waited a
prebuffer's time), then one 20 ms frame per tick of the module's own clock, the last partial frame padded with
silence. Running dry anywhere but at the last mark is an underrun (counted once, then prebuffering restarts).
`clear` drops everything at once and returns the pending marks, which the module reports `cleared`.
"""

from __future__ import annotations

import wave
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True, slots=True)
class Tick:
    """One playout frame: the audio played (silence if none) and the marks playout passed with it."""

    pcm: bytes
    active: bool  # False: silence because nothing was playing
    played_marks: tuple[str, ...] = ()


class PlayoutBuffer:
    def __init__(self, frame_bytes: int, prebuffer_frames: int = 3) -> None:
        if frame_bytes <= 0 or frame_bytes % 2:
            raise ValueError(f"frame_bytes: {frame_bytes} must be a positive even number")
        if not 0 <= prebuffer_frames <= 3:
            raise ValueError(f"prebuffer_frames: {prebuffer_frames} must be 0..3 (at most 60 ms)")
        self.frame_bytes = frame_bytes
        self.prebuffer_bytes = prebuffer_frames * frame_bytes
        self._prebuffer_frames = prebuffer_frames
        self._buf = bytearray()
        self._written = 0  # bytes ever queued (positions of marks are in this count)
        self._consumed = 0  # bytes ever played or dropped
        self._marks: deque[tuple[int, str]] = deque()
        self._playing = False
        self._waited = 0
        self.underruns = 0

    @property
    def buffered_bytes(self) -> int:
        return len(self._buf)

    @property
    def playing(self) -> bool:
        return self._playing

    @property
    def pending_marks(self) -> list[str]:
        return [name for _, name in self._marks]

    def write(self, pcm: bytes) -> None:
        self._buf += pcm
        self._written += len(pcm)

    def mark(self, name: str) -> None:
        self._marks.append((self._written - self._written % 2, name))  # after the last whole sample

    def clear(self) -> tuple[int, list[str]]:
        """Drop all queued speech; returns (bytes dropped, marks cleared in order)."""
        dropped = len(self._buf)
        cleared = self.pending_marks
        self._buf.clear()
        self._written -= self._written % 2  # a pending odd byte goes too
        self._consumed = self._written
        self._marks.clear()
        self._playing = False
        self._waited = 0
        return dropped, cleared

    def next_frame(self) -> Tick:
        """The frame for this 20 ms tick (same decisions as sa_playout_read in the C module)."""
        fb = self.frame_bytes
        playable = len(self._buf) - len(self._buf) % 2  # an odd trailing byte waits for its other half
        if not self._playing and playable:
            # Start once the prebuffer is full, when a mark ends the segment, or once a short segment has
            # waited a prebuffer's time: a reply shorter than the prebuffer must still play.
            if playable >= self.prebuffer_bytes or self._marks or self._waited >= self._prebuffer_frames:
                self._playing = True
            else:
                self._waited += 1
        real = 0
        pcm = bytes(fb)
        if self._playing:
            real = min(playable, fb)
            pcm = bytes(self._buf[:real]) + bytes(fb - real)
            del self._buf[:real]
            self._consumed += real
            if len(self._buf) < 2:
                # Ran dry. At a mark the segment simply ended; anywhere else the speech was cut: an underrun.
                at_mark = bool(self._marks) and self._marks[-1][0] == self._consumed
                if real < fb and not at_mark:
                    self.underruns += 1
                if real < fb or at_mark:
                    self._playing = False
                    self._waited = 0
        played: list[str] = []
        while self._marks and self._marks[0][0] <= self._consumed:
            played.append(self._marks.popleft()[1])
        return Tick(pcm, real > 0, tuple(played))


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
        stopped: the first playout tick after the first clear that came after the onset. None: no clear."""
        if not 0 <= onset_tick < len(self.uplink_times):
            return None
        onset = self.uplink_times[onset_tick]
        for clear in self.clears:
            if clear.received_at >= onset:
                stopped = self.playout_time(clear.frame_index)
                return (stopped if stopped is not None else clear.received_at) - onset
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
