"""One call's conversation: turn-taking, replies, barge-in, reprompts, time limit, keypad.

Three inputs run as their own tasks and never wait on each other: the uplink (caller audio → VAD → turn
detector, and playout marks), the STT's events, and the channel's events (DTMF, hangup). Barge-in is handled
inside the uplink task itself (principle 4; pipeline/bargein.py): the first loud speech frame heard while the
agent talks sends `pause` at once; the interruption judge then decides whether to `clear` or `resume`. The end
of a caller's turn is the VAD's pause judged by the turn model when one is installed (pipeline/endturn.py), else
the silence timer. Everything else meets in one event queue that the main loop serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from storeagent.agent.errors import ProviderError
from storeagent.agent.pipeline.bargein import BargeIn
from storeagent.agent.pipeline.endturn import EndTurn, EndTurnConfig, TurnModel, asks_for_digits
from storeagent.agent.pipeline.history import AgentUtterance, History, TranscriptLine
from storeagent.agent.pipeline.interruption import InterruptionConfig
from storeagent.agent.pipeline.loop_events import Dtmf, Event, Handoff, Hangup, TimeUp, UserTurn, Wake
from storeagent.agent.pipeline.outcome import ConversationOutcome as ConversationOutcome  # re-exported (wiring,
from storeagent.agent.pipeline.outcome import TransferAttempt as TransferAttempt  # demo, benchmarks import
from storeagent.agent.pipeline.outcome import TurnLatency as TurnLatency  # them from here)
from storeagent.agent.pipeline.prompts import Phrases
from storeagent.agent.pipeline.reply import ReplyResult, ReplyTiming, run_reply
from storeagent.agent.pipeline.stt_turns import HeardTurn, SttTurns
from storeagent.agent.pipeline.sttfeed import SttFeed
from storeagent.agent.pipeline.turn import SpeechStart, TurnDetector, TurnEnd, TurnPause
from storeagent.agent.pipeline.vad import Vad
from storeagent.agent.ports import (
    LLM,
    AudioFrame,
    AudioLink,
    CallMetrics,
    EndCall,
    LinkStats,
    LLMChunk,
    MarkReport,
    Message,
    STTStream,
    Tools,
    ToolSpec,
    Transcript,
    Transfer,
    TransferResult,
    TTSSession,
    UtteranceEnd,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ConversationConfig:
    greeting: str
    phrases: Phrases
    speech_start_ms: int = 60
    end_of_turn_ms: int = 500
    preroll_ms: int = 300
    min_turn_ms: int = 120
    ack_after_s: float = 1.0
    ack_grace_s: float = 0.5  # the answer's first clause is already with the TTS: wait this much longer for it
    max_acks: int = 2  # the filler at most this often in one call (a slow provider must not make it a refrain)
    stt_final_timeout_s: float = 2.5
    silence_reprompt_s: float = 8.0
    max_reprompts: int = 2
    max_call_s: float = 600.0
    playout_wait_s: float = 30.0  # bound on waiting for the far end to finish playing before hangup/transfer
    interruption: InterruptionConfig = field(default_factory=InterruptionConfig)
    pause_on_onset: bool = True  # False: the old barge-in (clear after speech_start_ms, no false-interruption resume)
    endturn: EndTurnConfig = field(default_factory=EndTurnConfig)  # used when a turn model is given
    digits_end_of_turn_ms: int = 1500  # the silence timer after the agent asked for a phone number (endturn.py)


TransferFn = Callable[[str], Awaitable[TransferResult]]
HangupFn = Callable[[], Awaitable[None]]


class Conversation:
    def __init__(self, *, cfg: ConversationConfig, link: AudioLink, vad: Vad, stt: STTStream, llm: LLM,
                 tts: TTSSession, tools: Tools, metrics: CallMetrics, system_prompt: str,
                 transfer: TransferFn, hangup: HangupFn, filler_pcm: bytes = b"",
                 turn_model: TurnModel | None = None) -> None:
        self.cfg, self.link, self.vad, self.stt, self.llm, self.tts = cfg, link, vad, stt, llm, tts
        self.tools, self.metrics = tools, metrics
        self._transfer, self._hangup = transfer, hangup
        self._filler = filler_pcm
        # 10 s of the call's audio: a recognizer further behind than that has stalled (its resilience switches).
        self._stt_feed = SttFeed(stt, max_backlog_bytes=10 * 2 * link.fmt.sample_rate)
        self.history = History(system_prompt)
        self.result = ConversationOutcome()
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._heard = SttTurns()  # finals wait there for the turn they belong to (stt_turns.py)
        self._endturn = EndTurn(turn_model, link.fmt.sample_rate, cfg.endturn) if turn_model is not None else None
        self._expect_digits = False  # the agent's last words asked for a phone number
        self._turn = self._turn_detector()
        self._streaming = False  # this turn's audio goes to the recognizer
        self._turn_seq = 0  # turns opened (SpeechStart); a judgement belongs to the turn open when it decided
        # The hand-off line and the goodbyes are the call's last words: a caller's sound does not pause them (with
        # the STT gone nothing could judge that sound, and the pause would hold the line until the call ended).
        self._last_words = False
        self._barge = BargeIn(
            link.fmt.sample_rate, cfg.interruption, link=lambda: self.link, talking=self._talking,
            turn=lambda: (self._turn_seq, self._turn.in_turn), spawn=self._spawn, verdict=self._on_verdict,
            stop=lambda onset, stopped: self._stop_speaking(barge=True, onset_at=onset, stopped_at=stopped))
        self._reply: asyncio.Task[ReplyResult | None] | None = None
        self._utterance: AgentUtterance | None = None
        self._audio_since_clear = False
        self._turn_no = 0
        self._last_activity = time.monotonic()
        self._underruns_seen = 0
        self._bg: set[asyncio.Task[None]] = set()
        self._actions_after_reply: list[Transfer | EndCall] = []
        self._audio_suspended = False
        self._waiting_since: float | None = None  # end-of-turn decision the caller is waiting on
        self.acks = 0  # acknowledgements said because a reply was slow
        self._reply_timing: ReplyTiming | None = None  # the latest reply's
        self._agent_lines: list[tuple[TranscriptLine, AgentUtterance]] = []
        self._uplink_task: asyncio.Task[None] = asyncio.Future()  # type: ignore[assignment]  # set in run()

    # ------------------------------------------------------------------ main loop
    async def run(self) -> ConversationOutcome:
        self._uplink_task = asyncio.create_task(self._uplink(self.link), name="uplink")
        inputs = [
            asyncio.create_task(self._stt_events(), name="stt-events"),
            asyncio.create_task(self._time_limit(), name="time-limit"),
            asyncio.create_task(self._stt_feed.run(), name="stt-feed"),
        ]
        try:
            await self._serve()
        finally:
            tasks = [*inputs, self._uplink_task, *self._bg, *([self._reply] if self._reply else [])]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for line, u in self._agent_lines:  # marks are all in now: record what the caller heard
                line.heard = u.heard_text()
            self.result.transcript.sort(key=lambda x: x.at)  # agent lines are stamped at their first audio
            # a reply cancelled before its first clause (the caller kept talking) said nothing
            self.result.transcript = [x for x in self.result.transcript if x.role == "caller" or x.text]
        return self.result

    def suspend_audio(self) -> None:
        """The audio link is about to go away on purpose (transfer): its end is not a hangup."""
        self._audio_suspended = True

    def resume_audio(self, link: AudioLink) -> None:
        """Continue on a new audio link (the transfer was not answered)."""
        self._audio_suspended = False
        self._uplink_task.cancel()
        self.link = link
        self._audio_since_clear = False
        self._turn = self._turn_detector()
        self._barge.reset(link.fmt.sample_rate)
        self._uplink_task = asyncio.create_task(self._uplink(link), name="uplink")

    def post_dtmf(self, digit: str) -> None:
        self._events.put_nowait(Dtmf(digit))

    def post_hangup(self, reason: str) -> None:
        self._events.put_nowait(Hangup(reason))

    async def _serve(self) -> None:
        self._start_reply(prefix=self.cfg.greeting, use_llm=False, record_turn=None)
        reprompts = 0
        while True:
            timeout = self._idle_timeout()
            try:
                ev = await asyncio.wait_for(self._events.get(), timeout)
            except TimeoutError:
                # The silence counts from the end of playout (the last mark played) or the caller's last
                # speech, not from when the wait began: a long answer is still being heard until its marks say so.
                if self._busy() or self._silent_for() < self.cfg.silence_reprompt_s:
                    continue
                reprompts += 1
                if reprompts > self.cfg.max_reprompts:
                    await self._say_and_end(self.cfg.phrases.goodbye_silence, "abandoned", "caller silent")
                    return
                self._start_reply(prefix=self.cfg.phrases.reprompt, use_llm=False, record_turn=None)
                continue
            if isinstance(ev, Hangup):
                if self.result.outcome == "answered" and not self._caller_spoke():
                    self.result.outcome = "abandoned"
                self.result.reason = ev.reason
                return
            if isinstance(ev, Handoff):
                await self._stop_speaking(barge=False)
                if ev.spoken and self.cfg.phrases.handoff:  # never dead air before the dialplan's fallback
                    self._last_words = True
                    self._start_reply(prefix=self.cfg.phrases.handoff, use_llm=False, record_turn=None)
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await self._reply  # type: ignore[misc]
                    await self._wait_playout()
                self.result.outcome, self.result.reason, self.result.handoff = "failed", ev.reason, True
                return
            if isinstance(ev, TimeUp):
                await self._say_and_end(self.cfg.phrases.time_limit, self.result.outcome, "max call duration")
                return
            if not isinstance(ev, Wake):
                reprompts = 0
            if isinstance(ev, UserTurn):
                self.result.transcript.append(TranscriptLine("caller", ev.text, at=ev.end.last_speech_at))
                self.history.add_user(ev.text, ev.alternatives)
                self._start_reply(prefix=None, use_llm=True, record_turn=ev)
            elif isinstance(ev, Dtmf) and ev.digit == "0":
                await self._keypad_staff()
            if await self._run_actions():
                return

    async def _keypad_staff(self) -> None:
        """Keypad 0: staff when staffed (the tool checks hours and numbers), else straight to a message."""
        await self._stop_speaking(barge=False)
        self.history.add_user("(The caller pressed 0 on the keypad to reach a person.)")
        r = await self.tools.call("transfer_to_staff", "{}")
        self._on_tool("transfer_to_staff", "action" if r.action else "refused")
        if r.action is not None:
            self._actions_after_reply.append(r.action)
            self._start_reply(prefix=r.content, use_llm=False, record_turn=None)
        else:
            self._start_reply(prefix=self.cfg.phrases.no_staff, use_llm=False, record_turn=None)

    def _silent_for(self) -> float:
        return time.monotonic() - self._last_activity

    def _idle_timeout(self) -> float:
        remaining = self.cfg.silence_reprompt_s - self._silent_for()
        # While we speak (or the caller does) no reprompt is due: look again at a coarse interval.
        return max(0.25 if self._busy() else 0.02, remaining)

    def _busy(self) -> bool:
        return (self._reply is not None and not self._reply.done()) or self._turn.in_turn or self._speaking()

    def _caller_spoke(self) -> bool:
        return any(line.role == "caller" for line in self.result.transcript)

    # ------------------------------------------------------------------ replies
    def _start_reply(self, *, prefix: str | None, use_llm: bool, record_turn: UserTurn | None) -> None:
        if self._reply is not None and not self._reply.done():
            self._reply.cancel()
        self._turn_no += 1
        self._reply = asyncio.create_task(self._reply_task(prefix, use_llm, record_turn), name="reply")

    async def _reply_task(
        self, prefix: str | None, use_llm: bool, turn: UserTurn | None
    ) -> ReplyResult | None:
        if self._barge.paused:  # a new reply supersedes what a pause held (never left waiting behind it)
            self._barge.release()
            await self.link.send_clear()
        u = self.history.start_utterance()
        self._utterance = u
        line = TranscriptLine("agent", "", at=time.monotonic())
        self.result.transcript.append(line)
        self._agent_lines.append((line, u))
        result: ReplyResult | None = None
        timing = self._reply_timing = ReplyTiming(started=time.monotonic())
        try:
            result = await run_reply(
                history=self.history, utterance=u, timing=timing, llm=self.llm if use_llm else _NoLLM(), tts=self.tts,
                tools=self.tools, link=self.link, mark_prefix=f"t{self._turn_no}",
                on_first_audio=self._on_first_audio, prefix_text=prefix, on_tool=self._on_tool,
            )
        except* ProviderError as eg:
            for e in eg.exceptions:
                assert isinstance(e, ProviderError)
                self.metrics.provider_error(e.provider, e.kind)
                log.warning("reply failed after fallbacks: %s", e)
            result = await self._apologize(u)
        finally:
            line.text = u.full_text()  # also when cancelled by a barge-in: what was sent so far
            self._expect_digits = asks_for_digits(line.text)
            self._turn.set_timer(self._timer_ms())
            if turn is not None:
                self._record_latency(turn, timing)
        if result is not None:
            self._actions_after_reply.extend(result.actions)
        self._events.put_nowait(Wake())
        return result

    async def _apologize(self, u: AgentUtterance) -> ReplyResult | None:
        try:
            return await run_reply(
                history=self.history, utterance=u, llm=_NoLLM(), tts=self.tts, tools=self.tools,
                link=self.link, mark_prefix=f"t{self._turn_no}e", on_first_audio=self._on_first_audio,
                prefix_text=self.cfg.phrases.trouble,
            )
        except* ProviderError:  # cannot even apologize: the voice is gone
            self._events.put_nowait(Handoff("speech synthesis unavailable"))
        return None

    def _record_latency(self, turn: UserTurn, t: ReplyTiming) -> None:
        lat = TurnLatency(
            stt_final=max(0.0, turn.final_at - turn.end.detected_at),  # 0: heard before the decision
            llm_first_token=(t.llm_first_token - t.started) if t.llm_first_token else None,
            tts_first_audio=(t.first_audio - t.tts_started) if t.first_audio and t.tts_started else None,
            voice_to_voice=(t.first_audio - turn.end.last_speech_at) if t.first_audio else None,
            decision_to_audio=(t.first_audio - turn.end.detected_at) if t.first_audio else None,
        )
        self.result.latencies.append(lat)
        for stage in ("stt_final", "llm_first_token", "tts_first_audio", "voice_to_voice"):
            v = getattr(lat, stage)
            if v is not None:
                self.metrics.turn_latency(stage, v)

    def _on_first_audio(self, t: float) -> None:
        if self._agent_lines and self._agent_lines[-1][1] is self._utterance:
            self._agent_lines[-1][0].at = t
        self._waiting_since = None
        self._audio_since_clear = True

    def _on_tool(self, name: str, result: str) -> None:
        if name == "take_message" and self.result.outcome == "answered":
            self.result.outcome = "message"
        rec = getattr(self.metrics, "tool_call", None)
        if callable(rec):
            rec(name, result)

    async def _ack_watchdog(self, since: float) -> None:
        await asyncio.sleep(max(0.0, since + self.cfg.ack_after_s - time.monotonic()))
        if self._waiting_since != since or not self._filler or self.acks >= self.cfg.max_acks:
            return
        t = self._reply_timing
        if t is not None and t.started >= since and t.tts_started is not None:
            # The answer's first clause is being synthesized: it is about to start, and "One moment." said now
            # would only hold it back. Only a TTS that stays silent past the grace gets the filler.
            deadline = t.tts_started + self.cfg.ack_grace_s
            while self._waiting_since == since and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            if self._waiting_since != since:
                return
        # Dead air: the caller hears a short acknowledgement while providers (or their fallbacks) work.
        self._waiting_since = None
        self.acks += 1
        self.result.transcript.append(TranscriptLine("agent", self.cfg.phrases.filler, at=time.monotonic()))
        await self.link.send_audio(self._filler)

    async def _run_actions(self) -> bool:
        """Run transfer/end-call once the reply asking for them was heard. True = conversation over."""
        if not self._actions_after_reply or (self._reply and not self._reply.done()):
            return False
        actions, self._actions_after_reply = self._actions_after_reply, []
        await self._wait_playout()
        for action in actions:
            if isinstance(action, EndCall):
                self.result.reason = action.reason
                await self._hangup()
                return True
            if isinstance(action, Transfer):
                res = await self._transfer(action.destination)
                self.result.transfers.append(TransferAttempt(action.destination, res.answered, res.cause))
                if res.answered:  # only when FreeSWITCH reported the staff leg answered
                    self.result.outcome, self.result.reason = "transferred", "transferred to staff"
                    self.result.transferred_to = action.destination
                    return True
                if res.caller_gone:
                    self.result.reason = "caller hung up during the transfer"
                    return True
                self.history.add_user("(The transfer was not answered. Offer to take a message.)")
                self._start_reply(prefix=None, use_llm=True, record_turn=None)
        return False

    def note_message_taken(self) -> None:
        self.result.outcome = "message"

    async def _say_and_end(self, text: str, outcome: str, reason: str) -> None:
        await self._stop_speaking(barge=False)
        self._last_words = True
        self._start_reply(prefix=text, use_llm=False, record_turn=None)
        assert self._reply is not None
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reply
        await self._wait_playout()
        self.result.outcome, self.result.reason = outcome, reason
        await self._hangup()

    # ------------------------------------------------------------------ speaking state, barge-in
    def _speaking(self) -> bool:
        return self._audio_since_clear and (
            (self._reply is not None and not self._reply.done())
            or (self._utterance is not None and self._utterance.pending)
        )

    async def _wait_playout(self) -> None:
        # Marks arrive on the uplink task; polling at frame rate keeps this free of extra wiring.
        deadline = time.monotonic() + self.cfg.playout_wait_s
        while self._utterance is not None and self._utterance.pending and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)

    async def _stop_speaking(self, *, barge: bool, onset_at: float | None = None,
                             stopped_at: float | None = None) -> None:
        """`stopped_at`: when the pause that already silenced the agent was sent (the barge-in stop time)."""
        was_speaking = self._speaking()
        held = self._barge.release()
        if self._reply is not None and not self._reply.done():
            self._reply.cancel()
        if was_speaking or held:  # a pause is always undone: by resume, or here by clear
            await self.link.send_clear()
            self._audio_since_clear = False
        if was_speaking and barge and onset_at is not None:
            self.metrics.barge_in_stop((stopped_at or time.monotonic()) - onset_at)
            self.result.barge_ins += 1
        for u in self.history.utterances()[-2:]:
            if u.unfinished:  # also a clause cut off while its audio was still being synthesized
                u.interrupted = True

    # ------------------------------------------------------------------ inputs
    async def _uplink(self, link: AudioLink) -> None:
        preroll: deque[bytes] = deque(maxlen=max(1, self.cfg.preroll_ms // 20))
        self._streaming = False
        async for item in link.uplink():
            if isinstance(item, AudioFrame):
                speech = self.vad.is_speech(item.pcm)
                self._heard.frame(speech, item.received)
                if self.cfg.pause_on_onset and not self._last_words:
                    await self._barge.frame(speech, item)
                if self._endturn is not None:
                    self._endturn.audio.add(item.received, item.pcm)
                ev = self._turn.feed(speech, item.received)
                if isinstance(ev, SpeechStart):
                    self._last_activity = ev.detected_at
                    self._waiting_since = None
                    self._turn_seq += 1
                    if not self.cfg.pause_on_onset and self._talking():
                        await self._stop_speaking(barge=True, onset_at=ev.onset_at)
                    self._streaming = True
                    for pcm in preroll:
                        self._stt_feed.send(pcm)
                    preroll.clear()
                # A provider with its own endpointing hears the gaps too (its UtteranceEnd needs them).
                if self._streaming or getattr(self.stt, "continuous", False):
                    self._stt_feed.send(item.pcm)
                else:
                    preroll.append(item.pcm)
                if isinstance(ev, TurnPause):
                    self._spawn(self._judge_pause(self._turn, ev))
                elif isinstance(ev, TurnEnd):
                    self._turn_ended(ev)
            elif isinstance(item, MarkReport):
                self.history.on_mark(item.name, item.event)
                if item.event == "played":  # the reprompt timer runs from what the caller finished hearing
                    self._last_activity = time.monotonic()
            elif isinstance(item, LinkStats):
                if item.underruns > self._underruns_seen:
                    self.metrics.underruns(item.underruns - self._underruns_seen)
                    self._underruns_seen = item.underruns
        if not self._audio_suspended and link is self.link:
            self._events.put_nowait(Hangup("audio link closed"))

    def _talking(self) -> bool:
        """The agent speaks or is about to (a reply is being made): a caller's sound may be an interruption."""
        return self._speaking() or (self._reply is not None and not self._reply.done())

    def _on_verdict(self, verdict: str) -> None:
        if verdict == "false":
            self.result.false_interruptions += 1
        rec = getattr(self.metrics, "interruption", None)
        if callable(rec):
            rec(verdict)

    # ------------------------------------------------------------------ end of turn
    def _turn_detector(self) -> TurnDetector:
        """With a turn model a pause is judged (TurnPause) before the long timer ends it; else the plain timer."""
        e = self.cfg.endturn
        probe = e.probe_ms if self._endturn is not None else None
        return TurnDetector(self.cfg.speech_start_ms, self._timer_ms(), probe_ms=probe, unfinished_ms=e.unfinished_ms)

    def _timer_ms(self) -> int:
        """A caller reading out a phone number pauses between digit groups: the timer is longer then, and the
        model (which hears a finished-sounding digit group as the end: docs/turn-taking.md) is not asked."""
        return self.cfg.digits_end_of_turn_ms if self._expect_digits else self.cfg.end_of_turn_ms

    async def _judge_pause(self, det: TurnDetector, pause: TurnPause) -> None:
        assert self._endturn is not None
        complete = None if self._expect_digits else await self._endturn.complete(pause)
        if det is not self._turn:  # the detector was replaced meanwhile (a provider decided the turn)
            return
        end = det.decide(pause.pause, complete, time.monotonic())
        if end is not None:
            self._turn_ended(end)

    def _turn_ended(self, end: TurnEnd) -> None:
        self._streaming = False
        self._last_activity = end.detected_at
        self._spawn(self._finish_turn(end, self._turn_seq))

    async def _finish_turn(self, end: TurnEnd, seq: int) -> None:
        if self._heard.already_decided(end):
            return  # the provider's endpointing answered this speech already
        judging = self._barge.judging(seq)
        if end.speech_ms >= self.cfg.min_turn_ms and not judging:
            # From here the caller waits for us: the ack watchdog bounds the dead air whatever the providers do.
            self._waiting_since = end.detected_at
            self._spawn(self._ack_watchdog(end.detected_at))
        if not self._heard.covered(end):
            await self._stt_feed.finalize()
        if end.speech_ms < self.cfg.min_turn_ms:
            await self._barge.forget(seq)
            return
        await self._answer(await self._heard.collect(end, self.cfg.stt_final_timeout_s), end, seq)

    async def _answer(self, heard: HeardTurn | None, end: TurnEnd, seq: int) -> None:
        """A turn whose sound paused the agent and was judged no interruption (or is still being judged) gets a
        second look at its words: backchannels and voiceless words are dropped; real words ("wait, what about
        Sunday") stop the resumed playout and are answered."""
        look = self._barge.second_look(seq, heard.text) if heard is not None else None
        if heard is None:
            await self._barge.forget(seq)
        if look is not None and look.drop:
            self._waiting_since = None
            return
        if look is not None:
            await self._stop_speaking(barge=True, onset_at=look.stop_onset_at, stopped_at=look.stopped_at)
        self._user_turn(heard, end)

    def _user_turn(self, heard: HeardTurn | None, end: TurnEnd) -> None:
        if heard is None:
            self._waiting_since = None
            log.info("no final transcript within %.1fs", self.cfg.stt_final_timeout_s)
            return
        self._events.put_nowait(UserTurn(heard.text, end, heard.final_at, heard.alternatives))

    def _provider_endpoint(self) -> None:
        end = self._heard.provider_endpoint(time.monotonic())
        if end is None:
            return
        # The speech so far is answered: the caller's next words are a new turn (and a barge-in).
        self._turn = self._turn_detector()
        self._last_activity = self._waiting_since = end.detected_at
        self._spawn(self._ack_watchdog(end.detected_at))
        self._spawn(self._answer(self._heard.take(end), end, self._turn_seq))

    async def _stt_events(self) -> None:
        try:
            async for ev in self.stt.events():
                if isinstance(ev, Transcript):  # words may decide a pending interruption
                    await self._barge.transcript(ev)
                if isinstance(ev, Transcript) and ev.is_final:
                    self._heard.final(ev.text, ev.audio_end_at, alternatives=ev.alternatives)
                elif isinstance(ev, UtteranceEnd) and getattr(self.stt, "decides_turns", False):
                    self._provider_endpoint()
        except ProviderError as e:
            # Every recognizer in the chain failed: without ears the call belongs to a person.
            self.metrics.provider_error(e.provider, e.kind)
            log.warning("speech recognition unavailable: %s", e)
            self._events.put_nowait(Handoff("speech recognition unavailable", spoken=True))

    async def _time_limit(self) -> None:
        await asyncio.sleep(self.cfg.max_call_s)
        self._events.put_nowait(TimeUp())

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def wrap() -> None:
            await coro

        t = asyncio.create_task(wrap())
        self._bg.add(t)
        t.add_done_callback(self._bg.discard)


class _NoLLM:
    """Speak-only replies (greeting, reprompt, goodbye): no model round."""

    name = "none"

    def stream(self, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> AsyncIterator[LLMChunk]:
        return _nothing()


async def _nothing() -> AsyncIterator[LLMChunk]:
    empty: tuple[LLMChunk, ...] = ()
    for chunk in empty:
        yield chunk
