"""Turn detection: a pure state machine over per-frame VAD decisions (no clocks, no I/O).

Feed it one decision per 20 ms frame with the frame's arrival time; it says when the caller started speaking
(after `speech_start_ms` of speech: the barge-in trigger) and when the turn ended (after `end_of_turn_ms` of
silence). Times it reports are the arrival times of the frames that mattered, so latency is measured from what
the caller did, not from when we noticed.

With a turn model (endturn.py), a pause is judged instead of timed: after `probe_ms` of silence the detector
reports a `TurnPause` once; the conversation asks the model and answers with `decide()`. "Complete" ends the turn
at once; "not complete" (or no answer yet) lets the silence run to `unfinished_ms` before the turn ends anyway;
no verdict (the model failed) falls back to `end_of_turn_ms`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

FRAME_MS = 20


class TurnState(Enum):
    SILENCE = "silence"
    ONSET = "onset"  # some speech seen, not yet enough to call it a turn
    SPEAKING = "speaking"
    TRAILING = "trailing"  # speech stopped; waiting for end_of_turn_ms of silence


@dataclass(frozen=True, slots=True)
class SpeechStart:
    onset_at: float  # arrival time of the first speech frame
    detected_at: float  # arrival time of the frame that confirmed it


@dataclass(frozen=True, slots=True)
class TurnEnd:
    speech_ms: int  # speech in this turn (frames classified speech x 20 ms)
    last_speech_at: float  # arrival time of the last speech frame (end of the caller's voice)
    detected_at: float  # arrival time of the frame that completed the silence


@dataclass(frozen=True, slots=True)
class TurnPause:
    """The caller has paused `probe_ms`: is the turn complete? (answer with `TurnDetector.decide`)"""

    pause: int  # which pause of this detector (a later one makes the answer moot)
    onset_at: float  # arrival time of the turn's first speech frame
    last_speech_at: float
    at: float  # arrival time of the frame that made the pause long enough


TurnEvent = SpeechStart | TurnEnd | TurnPause


class TurnDetector:
    def __init__(self, speech_start_ms: int = 60, end_of_turn_ms: int = 500, *, probe_ms: int | None = None,
                 unfinished_ms: int = 2000) -> None:
        self._start_frames = max(1, speech_start_ms // FRAME_MS)
        self._timer_frames = max(1, end_of_turn_ms // FRAME_MS)
        self._probe_frames = max(1, probe_ms // FRAME_MS) if probe_ms is not None else None
        self._unfinished_frames = max(1, unfinished_ms // FRAME_MS)
        self._end_frames = self._timer_frames  # the silence that ends the current pause
        self._pause = 0
        self.state = TurnState.SILENCE
        self._run = 0  # consecutive frames of the current kind
        self._onset_at = 0.0
        self._last_speech_at = 0.0
        self._speech_frames = 0

    def feed(self, speech: bool, at: float) -> TurnEvent | None:
        s = self.state
        if s is TurnState.SILENCE:
            if speech:
                self.state, self._run, self._onset_at = TurnState.ONSET, 1, at
                self._speech_frames, self._last_speech_at = 1, at
                return self._confirm(at)
            return None
        if s is TurnState.ONSET:
            if speech:
                self._run += 1
                self._speech_frames += 1
                self._last_speech_at = at
                return self._confirm(at)
            self.state, self._run = TurnState.SILENCE, 0  # a click, not speech
            return None
        if s is TurnState.SPEAKING:
            if speech:
                self._speech_frames += 1
                self._last_speech_at = at
                return None
            self.state, self._run = TurnState.TRAILING, 1
            self._pause += 1
            if self._probe_frames is not None:  # a model judges this pause: its timer is the long one
                self._end_frames = self._unfinished_frames
            return self._probe(at) or self._maybe_end(at)
        # TRAILING
        if speech:
            self.state, self._run = TurnState.SPEAKING, 0
            self._speech_frames += 1
            self._last_speech_at = at
            return None
        self._run += 1
        return self._probe(at) or self._maybe_end(at)

    def set_timer(self, end_of_turn_ms: int) -> None:
        """The silence timer from the next pause on (a pause being judged keeps its own until the verdict)."""
        self._timer_frames = max(1, end_of_turn_ms // FRAME_MS)
        if self._probe_frames is None or self.state is not TurnState.TRAILING:
            self._end_frames = self._timer_frames

    def decide(self, pause: int, complete: bool | None, at: float) -> TurnEnd | None:
        """The turn model's answer for `pause` (None: it has none). The turn's end when that ends it now."""
        if self.state is not TurnState.TRAILING or pause != self._pause:
            return None  # the caller spoke again meanwhile (or the turn already ended)
        if complete:
            return self._end(at)
        self._end_frames = self._unfinished_frames if complete is not None else self._timer_frames
        return self._maybe_end(at)

    @property
    def in_turn(self) -> bool:
        return self.state in (TurnState.SPEAKING, TurnState.TRAILING)

    def _confirm(self, at: float) -> SpeechStart | None:
        if self._run >= self._start_frames:
            self.state = TurnState.SPEAKING
            return SpeechStart(onset_at=self._onset_at, detected_at=at)
        return None

    def _probe(self, at: float) -> TurnPause | None:
        if self._run == self._probe_frames:
            return TurnPause(self._pause, self._onset_at, self._last_speech_at, at)
        return None

    def _maybe_end(self, at: float) -> TurnEnd | None:
        return self._end(at) if self._run >= self._end_frames else None

    def _end(self, at: float) -> TurnEnd:
        ev = TurnEnd(self._speech_frames * FRAME_MS, self._last_speech_at, at)
        self.state, self._run, self._speech_frames = TurnState.SILENCE, 0, 0
        self._end_frames = self._timer_frames
        return ev
