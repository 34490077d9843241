"""The playout side of mod_storeagent without I/O: a jitter buffer of agent speech with marks, and the record
of what the loopback played (for tests, barge-in timing and the demo's stereo WAV).

`PlayoutBuffer` mirrors the C module's playout core (issue 5): speech arrives in any chunk size (odd bytes stay
in the buffer and join the next chunk), playout starts once `prebuffer` is buffered (or a mark says the
segment is complete, or a frame has waited a prebuffer's time), then one 20 ms frame per tick of the caller's
own clock. A buffer that runs dry while playing is an underrun (silence is played, one underrun counted per dry
spell, prebuffering starts again) unless it ran dry exactly at a mark: that is the end of an utterance.
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
        self._boundary = 0  # position of the last mark passed: running dry there is not an underrun
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
        self._marks.append((self._written, name))

    def clear(self) -> tuple[int, list[str]]:
        """Drop all queued speech; returns (bytes dropped, marks cleared in order)."""
        dropped = len(self._buf)
        cleared = self.pending_marks
        self._buf.clear()
        self._consumed = self._written
        self._boundary = self._written
        self._marks.clear()
        self._playing = False
        self._waited = 0
        return dropped, cleared

    def next_frame(self) -> Tick:
        """The frame for this 20 ms tick."""
        fb = self.frame_bytes
        played = self._pass_marks()  # marks queued at the current position (nothing left to play before them)
        if not self._playing and self._buf:
            # Start with the prebuffer, or once a frame has waited a prebuffer's time, or when a mark says the
            # segment is complete. Less than a frame and no mark: keep waiting (no underrun ping-pong).
            full = len(self._buf) >= fb
            if self._marks or (
                full and (len(self._buf) >= self.prebuffer_bytes or self._waited >= self._prebuffer_frames)
            ):
                self._playing = True
            else:
                self._waited += 1
        pcm: bytes | None = None
        if self._playing:
            if len(self._buf) >= fb:
                pcm = bytes(self._buf[:fb])
                del self._buf[:fb]
                self._consumed += fb
            elif self._buf and self._marks:
                # Less than a frame up to the next mark: the end of a segment. Play it padded with silence;
                # data after the mark waits for the next tick.
                cut = min(len(self._buf), self._marks[0][0] - self._consumed)
                whole = cut - cut % 2
                pcm = bytes(self._buf[:whole]) + bytes(fb - whole)
                del self._buf[:cut]
                self._consumed += cut
            else:
                if self._consumed != self._boundary or self._buf:
                    self.underruns += 1
                self._playing = False
                self._waited = 0
        played += self._pass_marks()
        if pcm is None:
            return Tick(bytes(fb), False, tuple(played))
        return Tick(pcm, True, tuple(played))

    def _pass_marks(self) -> list[str]:
        played: list[str] = []
        while self._marks and self._marks[0][0] <= self._consumed:
            pos, name = self._marks.popleft()
            self._boundary = pos
            played.append(name)
        return played


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
