"""CallSession: one call from FreeSWITCH's `socket` to hangup, wiring ESL control, the audio link and the pipeline.

Everything a call starts belongs to it and ends with it: the conversation's tasks, the provider streams, the
audio link and the ESL socket (asserted by tests/e2e/test_agent_call.py,
test_call_answers_a_question_and_cleans_up_after_hangup). If anything fails before the conversation starts,
the session returns without hanging up: FreeSWITCH then runs the dialplan's next action, the shop's fallback,
so a caller never hears dead air.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from storeagent.agent.metrics import AgentMetrics
from storeagent.agent.pipeline.conversation import Conversation, ConversationConfig, ConversationOutcome
from storeagent.agent.pipeline.prompts import phrases_for, system_prompt
from storeagent.agent.pipeline.vad import WebRtcVad
from storeagent.agent.ports import (
    AudioFormat,
    AudioLink,
    CallControl,
    ChannelEvent,
    ProviderSet,
    Tools,
    TransferResult,
)
from storeagent.agent.providers.smart_turn import load_turn_model
from storeagent.agent.settings import AgentSettings
from storeagent.agent.stats import CallStats
from storeagent.agent.transport.tokens import StreamTokens
from storeagent.shop import ShopConfig

log = logging.getLogger(__name__)
# What the caller hears while a staff phone rings (the call is answered, so FreeSWITCH plays
# `transfer_ringback`, not the carrier's ringing): FreeSWITCH's US ringback tone, instead of silence.
TRANSFER_RINGBACK = "%(2000,4000,440,480)"
RESULT_MARGIN_S = 30.0  # beyond the ring time, how long to wait for FreeSWITCH to report the bridge's result
HANGUP_RESULT_WAIT_S = 2.0  # after the caller's hangup, how long the bridge's completion may take to arrive


def bridge_result(event: ChannelEvent | None, bridged: bool) -> TransferResult:
    """The staff leg's fate from what FreeSWITCH 1.10.12 reports (switch_ivr_originate.c, mod_dptools bridge;
    recorded on a real 1.10.12: answered, NO_ANSWER, NORMAL_TEMPORARY_FAILURE for an unreachable phone).

    `event` is the CHANNEL_BRIDGE (bridged) or the bridge's CHANNEL_EXECUTE_COMPLETE. Answered: CHANNEL_BRIDGE
    fired on our channel, or `originate_disposition` is SUCCESS. Not answered: that variable is the originate's
    cause (NO_ANSWER, USER_BUSY, CALL_REJECTED, INVALID_GATEWAY, NORMAL_TEMPORARY_FAILURE, ORIGINATOR_CANCEL..);
    `continue_on_fail` kept the caller's channel up unless its Answer-State says "hangup" (the caller left while
    it rang).
    """
    h = event.headers if event is not None else {}
    disposition = h.get("variable_originate_disposition", "")
    if bridged:
        return TransferResult(answered=True, cause=disposition or "SUCCESS")
    if event is None:
        return TransferResult(answered=False, cause="no result from FreeSWITCH")
    if disposition == "SUCCESS":
        return TransferResult(answered=True, cause=disposition)
    cause = disposition or h.get("variable_originate_failed_cause") or "UNKNOWN"
    return TransferResult(answered=False, cause=cause, caller_gone=h.get("Answer-State") == "hangup")


class LinkRegistry:
    """Calls waiting for their audio websocket, by uuid. The audio endpoint attaches links here."""

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[AudioLink]] = {}

    def expect(self, uuid: str) -> asyncio.Future[AudioLink]:
        fut: asyncio.Future[AudioLink] = asyncio.get_running_loop().create_future()
        self._waiting[uuid] = fut
        return fut

    async def attach(self, uuid: str, link: AudioLink) -> bool:
        fut = self._waiting.pop(uuid, None)
        if fut is None or fut.done():
            return False
        fut.set_result(link)
        return True

    def forget(self, uuid: str) -> None:
        fut = self._waiting.pop(uuid, None)
        if fut is not None and not fut.done():
            fut.cancel()

    def __len__(self) -> int:
        return len(self._waiting)


@dataclass(slots=True)
class CallDeps:
    settings: AgentSettings
    shop: ShopConfig
    providers: ProviderSet
    tools_factory: Callable[[CallControl], Tools]
    metrics: AgentMetrics
    tokens: StreamTokens
    links: LinkRegistry
    stats: CallStats
    audio_url: Callable[[str], str]  # uuid -> ws URL FreeSWITCH can reach (the bound port, the advertised host)
    on_finished: Callable[[str, CallControl, ConversationOutcome, float], Awaitable[None]] | None = None


def _smart_turn_for(language: str) -> bool:
    """English only for now: on the Korean offline demo (espeak-ng caller) the model cost 2 of its 5 checks
    (1/5 with it, 3/5 without, 18:26 UTC, load 4-5; docs/turn-taking.md) - the timer (+ digits rule) stays there."""
    return language.lower().startswith("en")


def call_rate(channel: dict[str, str] | object) -> int:
    """L16 rate for the module: 16 kHz for wideband codecs (G.722, Opus at 16k+), else 8 kHz."""
    rate = "8000"
    if isinstance(channel, dict):
        rate = channel.get("Channel-Read-Codec-Rate", "8000")
    return 16000 if rate.isdigit() and int(rate) >= 16000 else 8000


class CallSession:
    def __init__(self, call: CallControl, deps: CallDeps) -> None:
        self.call, self.deps = call, deps
        self.uuid = call.uuid
        self.conversation: Conversation | None = None
        self._link: AudioLink | None = None
        self._started = time.monotonic()
        self._hung_up = asyncio.Event()
        self._bridged = asyncio.Event()  # CHANNEL_BRIDGE: a staff leg answered
        self._bridge_event: ChannelEvent | None = None
        self._bridge: asyncio.Task[ChannelEvent | None] | None = None

    async def run(self) -> None:
        d = self.deps
        uuid = self.uuid
        d.metrics.call_started()
        d.stats.call_started()
        outcome = ConversationOutcome(outcome="failed")
        try:
            await self.call.answer()
            rate = call_rate(dict(self.call.channel))
            self._link = await self._start_audio(rate)
            outcome = await self._converse(self._link)
        except asyncio.CancelledError:
            outcome.reason = "cancelled"
            raise
        except Exception as e:
            # Returning without a hangup lets FreeSWITCH run the shop's fallback (next dialplan action).
            log.warning("call %s failed before or during the conversation: %s", uuid, e)
            outcome.reason = str(e)[:200]
        finally:
            if self._bridge is not None:  # an answered bridge runs on in FreeSWITCH; our wait for it ends here
                self._bridge.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._bridge
            d.links.forget(uuid)
            if self._link is not None:
                with contextlib.suppress(Exception):
                    await self._link.close()
            duration = time.monotonic() - self._started
            d.metrics.call_ended(outcome.outcome)
            d.stats.call_ended(outcome.outcome, outcome.latencies)
            if d.on_finished is not None:
                with contextlib.suppress(Exception):
                    await d.on_finished(uuid, self.call, outcome, duration)
            log.info("call %s ended: %s (%s) after %.1fs, %d turns, %d barge-ins", uuid, outcome.outcome,
                     outcome.reason, duration, len(outcome.latencies), outcome.barge_ins)

    async def _start_audio(self, rate: int) -> AudioLink:
        d, uuid = self.deps, self.uuid
        waiter = d.links.expect(uuid)
        token = d.tokens.mint(uuid)
        url = d.audio_url(uuid)
        await self.call.api(f"uuid_storeagent {uuid} start {url} {rate} {token}")
        try:
            return await asyncio.wait_for(waiter, d.settings.audio_attach_timeout_s)
        except TimeoutError:
            raise RuntimeError(f"audio module did not connect within {d.settings.audio_attach_timeout_s:g}s") from None

    async def _converse(self, link: AudioLink) -> ConversationOutcome:
        d = self.deps
        fmt: AudioFormat = link.fmt
        lang = d.shop.language
        phrases = phrases_for(lang, d.shop.profile.name)
        t = d.settings.turn
        cfg = ConversationConfig(
            greeting=d.shop.profile.greeting or phrases.greeting,
            phrases=phrases,
            speech_start_ms=t.speech_start_ms,
            end_of_turn_ms=t.end_of_turn_ms,
            preroll_ms=t.preroll_ms,
            min_turn_ms=t.min_turn_ms,
            ack_after_s=t.ack_after_ms / 1000,
            stt_final_timeout_s=t.stt_final_timeout_ms / 1000,
            silence_reprompt_s=d.shop.silence_reprompt_seconds,
            max_call_s=d.shop.max_call_seconds,
        )
        stt = await d.providers.stt.open(fmt, lang)
        tts = await d.providers.tts.open(fmt, lang)
        try:
            filler = await _synthesize_all(tts.synthesize(phrases.filler))
            conv = Conversation(
                cfg=cfg, link=link, vad=WebRtcVad(fmt.sample_rate, t.vad_aggressiveness), stt=stt,
                llm=d.providers.llm, tts=tts, tools=d.tools_factory(self.call), metrics=d.metrics,
                system_prompt=system_prompt(d.shop), transfer=self._transfer, hangup=self._hangup,
                filler_pcm=filler, turn_model=load_turn_model() if t.smart_turn and _smart_turn_for(lang) else None,
            )
            self.conversation = conv
            events = asyncio.create_task(self._channel_events(conv), name="esl-events")
            try:
                return await conv.run()
            finally:
                events.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await events
        finally:
            for closer in (stt.aclose, tts.aclose):
                with contextlib.suppress(Exception):
                    await closer()

    async def _channel_events(self, conv: Conversation) -> None:
        async for ev in self.call.events():
            if ev.name == "DTMF":
                conv.post_dtmf(ev.headers.get("DTMF-Digit", ""))
            elif ev.name == "CHANNEL_BRIDGE":
                self._bridge_event = ev
                self._bridged.set()
            elif ev.name in ("CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE"):
                self._hung_up.set()
                conv.post_hangup(ev.headers.get("Hangup-Cause", "hangup"))
                return
        self._hung_up.set()
        conv.post_hangup("control connection closed")

    async def _hangup(self) -> None:
        with contextlib.suppress(Exception):
            await self.call.hangup("NORMAL_CLEARING")

    async def _transfer(self, number: str) -> TransferResult:
        """Stop our audio and bridge to staff. Answered: the call is theirs (it ends with their hangup, through
        hangup_after_bridge). Not answered: our audio comes back and the conversation goes on."""
        d = self.deps
        conv = self.conversation
        assert conv is not None
        conv.suspend_audio()  # the module's websocket closes now; that is not the caller hanging up
        with contextlib.suppress(Exception):
            await self.call.api(f"uuid_storeagent {self.uuid} stop")
        ring = d.shop.transfer.ring_seconds
        self._bridged.clear()
        try:
            # continue_on_fail: a failed bridge hangs the caller up otherwise (switch_channel_handle_cause).
            for assignment in ("continue_on_fail=true", "hangup_after_bridge=true", f"call_timeout={ring}",
                               f"transfer_ringback={TRANSFER_RINGBACK}"):
                await self.call.execute("set", assignment)
            self._bridge = asyncio.create_task(
                self.call.execute("bridge", f"sofia/gateway/{d.settings.transfer_gateway}/{number}"), name="bridge")
            result = await self._bridge_outcome(self._bridge, ring + RESULT_MARGIN_S)
        except Exception as e:  # the channel or the control connection went away
            log.info("call %s: transfer ended: %s", self.uuid, e)
            return TransferResult(answered=False, cause="call ended", caller_gone=True)
        log.info("call %s: transfer to staff %s: %s", self.uuid, "answered" if result.answered else "not answered",
                 result.cause)
        if not result.answered and not result.caller_gone:
            link = await self._start_audio(call_rate(dict(self.call.channel)))
            self._link = link
            conv.resume_audio(link)
        return result

    async def _bridge_outcome(self, bridge: asyncio.Task[ChannelEvent | None], limit: float) -> TransferResult:
        """Whichever FreeSWITCH reports first: the staff answered (CHANNEL_BRIDGE), the bridge completed without
        them, or the caller hung up."""
        waits = [asyncio.create_task(self._bridged.wait()), asyncio.create_task(self._hung_up.wait())]
        try:
            await asyncio.wait([bridge, *waits], timeout=limit, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        if self._bridged.is_set():
            return bridge_result(self._bridge_event, bridged=True)
        if self._hung_up.is_set() and not bridge.done():
            # The caller left while it rang: FreeSWITCH completes the bridge right after the hangup, with its
            # verdict (ORIGINATOR_CANCEL) for the record.
            await asyncio.wait([bridge], timeout=HANGUP_RESULT_WAIT_S)
        if bridge.done():
            if bridge.cancelled() or bridge.exception() is not None:  # the channel or the connection went away
                return TransferResult(answered=False, cause="call ended", caller_gone=True)
            result = bridge_result(bridge.result(), bridged=False)
            if self._hung_up.is_set() and not result.answered:
                result = dataclasses.replace(result, caller_gone=True)
            return result
        if self._hung_up.is_set():
            return TransferResult(answered=False, cause="caller hung up", caller_gone=True)
        return TransferResult(answered=False, cause="no result from FreeSWITCH")


async def _synthesize_all(chunks: object) -> bytes:
    out = bytearray()
    async for pcm in chunks:  # type: ignore[attr-defined]
        out += pcm
    return bytes(out)
