"""Which caller turn each final transcript belongs to, and who decides that a turn ended.

Finals are never drained as "stale": a streaming recognizer with its own endpointing (Deepgram's `speech_final`)
often finalizes the caller's words *before* our VAD's end-of-turn silence has passed, and those words belong to
the turn that is ending, not to nobody. So finals wait here, each stamped with when the audio it ends at was
sent (`Transcript.audio_end_at`, the provider's result timing mapped to our clock; None when the provider
gives none), until a turn decision takes them:

- our VAD's `TurnEnd` takes every pending final, waiting (up to a timeout) only while none of them covers the
  turn's last speech — a final that came before the decision is kept, and a turn with a pause inside keeps
  both of its parts;
- the provider's end of utterance (`UtteranceEnd`: Deepgram's `speech_final` or its `UtteranceEnd` message)
  decides the turn at once when the stream says its endpointing may (`decides_turns`), words are pending and
  the caller is silent now — whichever of the two comes first wins, and the other finds nothing left to take.

Pure bookkeeping with one asyncio.Event; the conversation feeds it frames, finals and decisions.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from storeagent.agent.pipeline.turn import FRAME_MS, TurnEnd

COVER_SLACK_S = 0.12  # a final ending this close before the last speech frame still covers it (frame jitter)
SILENT_FOR_S = 0.1  # the caller counts as silent after this long without a speech frame


@dataclass(frozen=True, slots=True)
class _Final:
    text: str
    audio_end_at: float | None
    received: float
    alternatives: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HeardTurn:
    text: str  # the turn's finals joined in order
    final_at: float  # when the last of them arrived
    alternatives: tuple[str, ...] = ()  # other readings of the turn: the earlier finals + each reading of the last


class SttTurns:
    def __init__(self, *, silent_for_s: float = SILENT_FOR_S, cover_slack_s: float = COVER_SLACK_S) -> None:
        self._pending: list[_Final] = []
        self._changed = asyncio.Event()
        self._silent_for = silent_for_s
        self._slack = cover_slack_s
        self._last_speech_at = 0.0
        self._speech_frames = 0  # speech since the last decision
        self._decided_upto = 0.0  # speech up to here was answered by a decided turn

    # ------------------------------------------------------------------ inputs
    def frame(self, speech: bool, at: float) -> None:
        """One uplink frame's VAD decision (arrival time `at`)."""
        if speech:
            self._last_speech_at = at
            self._speech_frames += 1

    def final(self, text: str, audio_end_at: float | None, received: float | None = None,
              alternatives: tuple[str, ...] = ()) -> None:
        """A final transcript from the recognizer; empty ones only wake a waiting decision."""
        text = text.strip()
        if text:
            self._pending.append(_Final(text, audio_end_at, time.monotonic() if received is None else received,
                                        alternatives))
        self._changed.set()

    # ------------------------------------------------------------------ decisions
    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def provider_endpoint(self, now: float) -> TurnEnd | None:
        """The provider says the utterance ended: the turn to answer now, or None (nothing heard yet, or the
        caller is speaking again)."""
        if not self._pending or now - self._last_speech_at < self._silent_for:
            return None
        return TurnEnd(self._speech_frames * FRAME_MS, self._last_speech_at, now)

    def already_decided(self, end: TurnEnd) -> bool:
        """The VAD's end of speech that a provider decision already answered (nothing new since)."""
        return not self._pending and end.last_speech_at <= self._decided_upto

    def covered(self, end: TurnEnd) -> bool:
        """A pending final reaches the turn's last speech: nothing more is coming for this turn."""
        return any(f.audio_end_at is None or f.audio_end_at >= end.last_speech_at - self._slack
                   for f in self._pending)

    async def collect(self, end: TurnEnd, timeout: float) -> HeardTurn | None:
        """The words of the turn that ended at `end`: the finals already in, plus those arriving until one
        covers the turn's last speech or `timeout` s pass; None when nothing at all was heard."""
        deadline = time.monotonic() + timeout
        while not self.covered(end):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._changed.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._changed.wait()
            except TimeoutError:
                break
        return self.take(end)

    def take(self, end: TurnEnd) -> HeardTurn | None:
        """Every pending final, as the words of the turn `end` (which now counts as decided)."""
        self._decided_upto = max(self._decided_upto, end.last_speech_at)
        self._speech_frames = 0
        finals, self._pending = self._pending, []
        if not finals:
            return None
        before = " ".join(f.text for f in finals[:-1])
        alternatives = tuple(f"{before} {a}".strip() for a in finals[-1].alternatives)
        return HeardTurn(" ".join(f.text for f in finals), finals[-1].received, alternatives)
