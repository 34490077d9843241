"""Barge-in: a sound under the agent's speech pauses it at once; the interruption judge decides the rest.

Runs inside the uplink task (principle 4): the first loud speech frame heard while the agent talks sends `pause`
without queueing behind anything; the judge (interruption.py, a pure state machine) then decides from the frames
after it and any recognizer words whether to stop the agent (a real interruption: the conversation's `stop`) or
`resume` where playout stopped (a cough, a click, a backchannel). A turn whose sound was judged no interruption
gets a second look at its final words (`second_look`); so does one judged real by its voice alone, which keeps
the agent paused until those words come and resumes it if they ask nothing (a long "mm-hmm").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from storeagent.agent.pipeline.interruption import (
    InterruptionConfig,
    InterruptionJudge,
    Judgement,
    Verdict,
    request_words,
)
from storeagent.agent.ports import AudioFrame, AudioLink, Transcript

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SecondLook:
    drop: bool  # the words said nothing: no reply, the agent goes on
    stop_onset_at: float | None  # the words are real: stop the agent (barge-in from this onset), then answer
    stopped_at: float | None = None  # when the pause that silenced the agent was sent (the barge-in stop time)


StopFn = Callable[[float, float | None], Awaitable[None]]  # (onset_at, stopped_at): a real interruption


class BargeIn:
    def __init__(self, sample_rate: int, cfg: InterruptionConfig, *, link: Callable[[], AudioLink],
                 talking: Callable[[], bool], turn: Callable[[], tuple[int, bool]], stop: StopFn,
                 spawn: Callable[[Awaitable[None]], None], verdict: Callable[[str], None]) -> None:
        """`turn()`: (turns opened so far, a turn is open now); `verdict("real"|"false")` counts judgements."""
        self._cfg = cfg
        self._link, self._talking, self._turn, self._stop = link, talking, turn, stop
        self._spawn, self._verdict = spawn, verdict
        self.judge = InterruptionJudge(sample_rate, cfg)
        self.paused = False  # a pause was sent and neither resume nor clear followed
        self._pause_sent_at: float | None = None
        self._judged_frame_at = 0.0  # when the uplink last handed the judge a frame (the pause watchdog)
        self._false_turns: dict[int, Judgement] = {}  # turns whose sound was judged not an interruption
        # turns judged real by voice alone, agent still paused: their words decide clear or resume (`second_look`)
        self._voice_turns: dict[int, Judgement] = {}
        self._judged_turn = 0  # the turn the sound being judged belongs to (once it opens one)

    def reset(self, sample_rate: int) -> None:
        """A new audio link (the transfer was not answered): nothing heard on the old one is judged."""
        self.judge = InterruptionJudge(sample_rate, self._cfg)
        self.paused = False
        self._false_turns.clear()
        self._voice_turns.clear()

    def release(self) -> bool:
        """The agent stops or starts anew: drop the judgement; True when a pause was held (it needs a clear)."""
        held, self.paused = self.paused, False
        self.judge.cancel()
        self._voice_turns.clear()
        return held

    def judging(self, seq: int) -> bool:
        """Turn `seq`'s sound paused the agent and was judged no interruption, or is still being judged."""
        return (seq in self._false_turns or seq in self._voice_turns
                or (self.judge.pending and seq >= self._judged_turn))

    async def forget(self, seq: int) -> None:
        """Turn `seq` gets no answer (too short, or no transcript came): a pause its voice held is a barge-in."""
        self._false_turns.pop(seq, None)
        judged = self._voice_turns.pop(seq, None)
        if judged is not None:
            self._verdict("real")
            await self._stop(judged.onset_at, self._pause_sent_at)

    # ------------------------------------------------------------------ inputs
    async def frame(self, speech: bool, frame: AudioFrame) -> None:
        self._judged_frame_at = time.monotonic()
        if self.judge.pending:
            judged = self.judge.feed(speech, frame.pcm, frame.received)
            if judged is not None:
                await self._on_judgement(judged)
        elif self._talking() and not self._voice_turns:  # a voice verdict holds the pause: no new judgement
            if self.judge.onset(speech, frame.pcm, frame.received):
                self.paused = True
                self._pause_sent_at = time.monotonic()
                await self._link().send_pause()  # the caller hears the agent stop now; the judge decides the rest
                seq, in_turn = self._turn()
                self._judged_turn = seq + (0 if in_turn else 1)  # the turn open now, or (before it opens) the next
                self._spawn(self._pause_watchdog(self._pause_sent_at))
        else:
            self.judge.observe(speech, frame.pcm)

    async def transcript(self, ev: Transcript) -> None:
        if self.judge.pending:  # words decide a pending interruption
            judged = self.judge.words(ev.text, time.monotonic(), ev.is_final)
            if judged is not None:
                await self._on_judgement(judged)
        self.judge.transcript(ev.text, ev.is_final)

    def second_look(self, seq: int, text: str) -> SecondLook | None:
        """A turn whose sound paused the agent and was judged no interruption (or is still being judged) gets a
        second look at its words: backchannels and voiceless words are dropped; real words ("wait, what about
        Sunday") stop the resumed playout and are answered. None: the turn had no such sound."""
        voice = self._voice_turns.pop(seq, None)
        if voice is not None:  # judged real by voice, still paused: any word that asks something clears
            if request_words(text):
                self._verdict("real")
                return SecondLook(drop=False, stop_onset_at=voice.onset_at, stopped_at=self._pause_sent_at)
            log.info("voice but no words (%r): resuming", text[:60])
            self._verdict("false")
            self._spawn(self._resume())
            return SecondLook(drop=True, stop_onset_at=None)
        judged = self._false_turns.pop(seq, None)
        pending = judged is None and self.judge.pending and seq >= self._judged_turn
        if judged is None and not pending:
            return None
        if not self.judge.says_something(text, judged):
            log.info("not an interruption: %r dropped", text[:60])
            return SecondLook(drop=True, stop_onset_at=None)
        return SecondLook(drop=False, stop_onset_at=judged.onset_at if judged else self.judge.onset_at)

    async def _resume(self) -> None:
        if self.paused:
            self.paused = False
            await self._link().send_resume()

    # ------------------------------------------------------------------ verdicts
    async def _pause_watchdog(self, sent_at: float) -> None:
        """The judge runs on uplink frames, which the far end sends every 20 ms even in silence; should they stop
        coming for a second, a pause must still not hold the agent's speech for good. (A loaded event loop that
        serves the frames late is not that: the judge counts frames, and so does this.)"""
        while self.paused and self._pause_sent_at == sent_at:
            await asyncio.sleep(0.25)
            if self.paused and self._pause_sent_at == sent_at and time.monotonic() - self._judged_frame_at > 1.0:
                self.judge.cancel()
                self.paused = False
                log.info("no uplink audio to judge a pause by: resuming")
                await self._link().send_resume()

    async def _on_judgement(self, judged: Judgement) -> None:
        if judged.verdict is Verdict.REAL:
            log.info("interruption (%s after %.0f ms)", judged.reason, (judged.decided_at - judged.onset_at) * 1000)
            self._false_turns.pop(self._judged_turn, None)  # the caller went on talking: this turn is real
            if judged.reason == "voice" and self.paused and self._turn()[0] >= self._judged_turn:
                # Voice alone: a long "mm-hmm" has as much as a short question. The caller already hears the agent
                # stopped (the pause), so clearing can wait for the turn's words at no cost (`second_look`).
                self._voice_turns[self._judged_turn] = judged
                return
            self._verdict("real")
            await self._stop(judged.onset_at, self._pause_sent_at)
            return
        self._verdict("false")
        if self._turn()[0] >= self._judged_turn:  # the sound opened a turn: its transcript gets a second look
            self._false_turns[self._judged_turn] = judged
        if self.paused:
            self.paused = False
            await self._link().send_resume()
