"""Semantic end of turn: VAD finds the pauses, a turn model judges from the audio whether the caller finished.

A silence timer has one length for every pause. 500 ms makes every answer wait half a second after a complete
question, and still cuts off a caller reading out a phone number ("five five five ... one two three ...") whose
pauses between digit groups run longer. The turn model (smart-turn v3.2, agent/providers/smart_turn.py) hears
intonation and rhythm instead: a question that falls and ends, a digit group left hanging.

How the two are combined (turn.py's `TurnPause` / `decide`):
- after `probe_ms` of silence the model is asked once, on the turn's audio (from `pre_speech_ms` before its
  onset, at most the last 8 s, up to this pause);
- complete (P >= `threshold`): the turn ends now — probe_ms + the model's time after the caller's last word;
- surely not complete (P < `unfinished_below`): the silence must reach `unfinished_ms` before the turn ends
  anyway (a caller who stopped for good is still answered); speech before that continues the same turn;
- in between, or no verdict (the model raised, or took longer than `timeout_s`): the plain `end_of_turn_ms`
  timer decides, as it does for every pause when no model is installed.
The uncertain band keeps the model's misses cheap: a finished question it doubts waits the old 500 ms, not
`unfinished_ms`. probe 200 ms and threshold 0.5 are pipecat's settings for this model (VAD stop_secs 0.2,
prediction > 0.5); the measurements are in docs/turn-taking.md.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from storeagent.agent.pipeline.turn import TurnPause

log = logging.getLogger(__name__)


# The agent asked for a phone number ("Please tell me your name, your phone number and your message"): the
# caller's next turn is read out in digit groups.
_ASKS_DIGITS = re.compile(r"(tell me|say|give me|what's|what is|leave|repeat)\b[^.?!]*\b(phone |callback )?number\b"
                          r"|연락처|번호[를을]?\s*(말씀|알려|남겨)", re.IGNORECASE)


def asks_for_digits(agent_text: str) -> bool:
    return bool(_ASKS_DIGITS.search(agent_text))


class TurnModel(Protocol):
    """Judges a caller's turn from its audio (L16 mono at `sample_rate`): P(the turn is complete)."""

    name: str

    async def complete_probability(self, pcm: bytes, sample_rate: int) -> float: ...


@dataclass(frozen=True, slots=True)
class EndTurnConfig:
    probe_ms: int = 200  # silence before the model is asked
    threshold: float = 0.5  # P(complete) at or above this ends the turn
    unfinished_below: float = 0.2  # P(complete) under this: the turn is surely unfinished
    unfinished_ms: int = 1000  # silence that ends a turn the model called surely unfinished
    pre_speech_ms: int = 500  # audio before the onset the model hears (pipecat's pre_speech_ms)
    max_audio_ms: int = 8000  # the model's window
    timeout_s: float = 1.0  # a verdict later than this is no verdict (the timer decides)


class CallerAudio:
    """The uplink's last `max_audio_ms` + `pre_speech_ms` of audio, with each frame's arrival time."""

    def __init__(self, cfg: EndTurnConfig, frame_ms: int = 20) -> None:
        self._cfg = cfg
        self._frames: deque[tuple[float, bytes]] = deque(maxlen=(cfg.max_audio_ms + cfg.pre_speech_ms) // frame_ms)

    def add(self, at: float, pcm: bytes) -> None:
        self._frames.append((at, pcm))

    def turn(self, pause: TurnPause) -> bytes:
        """The audio the model judges `pause` by: from pre_speech_ms before the onset up to the pause's frame."""
        start = pause.onset_at - self._cfg.pre_speech_ms / 1000
        pcm = b"".join(p for at, p in self._frames if start <= at <= pause.at)
        return pcm


class EndTurn:
    """One call's turn judge: the model and the audio it hears."""

    def __init__(self, model: TurnModel, sample_rate: int, cfg: EndTurnConfig) -> None:
        self.model, self.cfg, self.rate = model, cfg, sample_rate
        self.audio = CallerAudio(cfg)

    async def complete(self, pause: TurnPause) -> bool | None:
        """True: complete; False: surely not; None: unsure or no verdict (the silence timer decides)."""
        pcm = self.audio.turn(pause)
        if not pcm:
            return None
        try:
            async with asyncio.timeout(self.cfg.timeout_s):
                p = await self.model.complete_probability(pcm, self.rate)
        except Exception as e:  # TimeoutError too: a slow or broken model never holds a turn open
            log.warning("turn model %s gave no verdict (%s): the silence timer decides", self.model.name,
                        type(e).__name__)
            return None
        log.debug("turn model: P(complete)=%.2f after %d ms of audio", p, len(pcm) * 500 // self.rate)
        if p >= self.cfg.threshold:
            return True
        return False if p < self.cfg.unfinished_below else None
