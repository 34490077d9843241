"""One caller turn on real timing: a Conversation on an in-memory link with a real 20 ms playout clock, the real
deepgram-sdk against `FakeDeepgram` (which times endpointing and UtteranceEnd on the audio, like the service),
scripted LLM and TTS. The caller's audio flows every 20 ms for the whole call, speech or silence, as
FreeSWITCH's media bug delivers it.

`run_variant()` says whether the turn was answered (the conversation got the caller's words and spoke a reply)
and, for a provider drop, how long from the drop until the caller heard audio again. Used by
tests/integration/test_stt_turns.py and bench/stt_turns.py (docs/providers.md's before/after table).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from storeagent.agent.metrics import AgentMetrics
from storeagent.agent.pipeline.conversation import Conversation, ConversationConfig, ConversationOutcome
from storeagent.agent.pipeline.prompts import phrases_for
from storeagent.agent.pipeline.vad import WebRtcVad
from storeagent.agent.ports import STT, AudioFormat, TransferResult
from storeagent.agent.providers.deepgram_stt import DeepgramSTT
from storeagent.agent.providers.factory import OfflineProviders, ResilienceSettings, build_providers
from storeagent.agent.providers.guard import RetryPolicy, StageTimeouts
from storeagent.agent.providers.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS
from storeagent.agent.secrets import Secret, Secrets
from storeagent.agent.store.tools import ShopTools
from storeagent.shop import ShopConfig
from support.agent_harness import bakery
from support.audio import silence, voiced
from support.fake_deepgram import FakeDeepgram
from support.memlink import MemoryLink

KEY = "dg-test-key-0123456789"


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    speech: tuple[tuple[int, int], ...] = ((900, 0),)  # (speech ms, pause ms after it) of one caller turn
    endpointing_ms: int = 300
    result_delay: float = 0.05  # the service's processing latency
    fault: str = ""  # close_1011 | close_1000 | abort, during the turn's speech
    fault_after_s: float = 0.5  # of audio on the first stream (the turn starts ~0.3 s in)
    end_of_turn_ms: int = 500
    segments: tuple[str, ...] = ()
    expect: str = "오늘 몇 시에 문 닫아요"
    offline_stt: tuple[STT, ...] = ()
    refuse_after_fault: bool = False


@dataclass(slots=True)
class VariantResult:
    variant: str
    answered: bool
    caller_text: str
    outcome: ConversationOutcome
    speech_end_to_audio: float | None = None  # caller's last speech -> first reply audio played
    drop_to_audio: float | None = None  # provider drop -> the caller hears audio again
    first_heard: str = ""  # what the caller heard first after the turn (reply or hand-off line)
    sessions: int = 0
    notes: list[str] = field(default_factory=list)


VARIANTS: tuple[Variant, ...] = (
    Variant("final before decision (endpointing 300 ms, result +50 ms)"),
    Variant("final after decision (endpointing 300 ms, result +400 ms)", result_delay=0.4),
    Variant("fast endpointing (10 ms, Deepgram's default)", endpointing_ms=10),
    Variant("slow endpointing (800 ms: only Finalize ends the turn)", endpointing_ms=800),
    Variant("400 ms pause inside the turn", speech=((700, 400), (700, 0)), segments=("오늘 몇 시에", "문 닫아요")),
    Variant("close 1011 mid-utterance", fault="close_1011"),
    Variant("close 1000 mid-utterance", fault="close_1000"),
    Variant("connection abort mid-utterance", fault="abort"),
    Variant("close 1011, reconnect refused (503): offline Korean STT next", fault="close_1011",
            refuse_after_fault=True, offline_stt=(ScriptedSTT(["오늘 몇 시에 문 닫아요"], name="offline"),)),
    Variant("close 1011, reconnect refused (503), no offline STT: hand-off", fault="close_1011",
            refuse_after_fault=True),
)


def korean_shop(dg: FakeDeepgram) -> ShopConfig:
    doc = bakery().model_dump(by_alias=True, mode="json")
    doc.update(language="ko-KR", providers={"stt": {"name": "deepgram", "model": "nova-3", "baseUrl": dg.url},
                                            "llm": {"name": "scripted"}, "tts": {"name": "scripted"}})
    return ShopConfig.model_validate(doc)


async def run_variant(v: Variant) -> VariantResult:
    dg = await FakeDeepgram(api_key=KEY, result_delay=v.result_delay, fault=v.fault, fault_after_s=v.fault_after_s,
                            refuse_after_fault=v.refuse_after_fault,
                            segments={"ko": list(v.segments)} if v.segments else {}).start()
    try:
        return await _run(v, dg)
    finally:
        await dg.stop()


async def _run(v: Variant, dg: FakeDeepgram) -> VariantResult:
    fmt = AudioFormat(8000)
    shop = korean_shop(dg)
    metrics = AgentMetrics("timing")
    offline = OfflineProviders(stt=list(v.offline_stt), llm=[ScriptedLLM("네, 알려 드릴게요.", name="offline")],
                               tts=[ScriptedTTS(seconds_per_char=0.02)])
    timeouts = StageTimeouts(connect=3.0, first_result=1.0, stall=3.0)
    res = ResilienceSettings(stt=timeouts, llm=timeouts, tts=timeouts, retry=RetryPolicy(attempts=2, backoff=0.05))
    providers = build_providers(shop, metrics, secrets=Secrets([Secret(KEY, "DEEPGRAM_API_KEY")]), offline=offline,
                                resilience=res)
    for p in getattr(providers.stt, "providers", []):
        if isinstance(p, DeepgramSTT):  # the variant's endpointing (the factory builds the production default)
            p._endpointing_ms = v.endpointing_ms
    link = MemoryLink(8000)

    async def hangup() -> None:
        await link.close()

    async def transfer(number: str) -> TransferResult:
        return TransferResult(answered=False, cause="NO_ANSWER")

    phrases = phrases_for("ko-KR", "강남치킨")
    conv = Conversation(
        cfg=ConversationConfig(greeting="안녕하세요.", phrases=phrases, end_of_turn_ms=v.end_of_turn_ms,
                               silence_reprompt_s=30.0),
        link=link, vad=WebRtcVad(8000), stt=await providers.stt.open(fmt, "ko-KR"), llm=providers.llm,
        tts=await providers.tts.open(fmt, "ko-KR"), tools=ShopTools(shop), metrics=metrics, system_prompt="",
        transfer=transfer, hangup=hangup)
    task = asyncio.create_task(conv.run())
    spoken: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    caller = asyncio.create_task(_caller(link, v, spoken))
    growth: list[float] = []  # times the caller's playout grew (audio heard)
    monitor = asyncio.create_task(_monitor(link, growth))
    speech_end = await spoken
    await asyncio.sleep(4.0)  # a reply, a hand-off line, or nothing
    if not task.done():
        conv.post_hangup("NORMAL_CLEARING")
    out = await asyncio.wait_for(task, 10)
    await link.close()
    caller.cancel()
    monitor.cancel()
    caller_text = " ".join(x.text for x in out.transcript if x.role == "caller")
    msgs = conv.history.messages()
    users = [i for i, m in enumerate(msgs) if m.role == "user"]
    replied = bool(users) and any(m.role == "assistant" and m.content for m in msgs[users[0]:])
    result = VariantResult(v.name, answered=bool(caller_text) and v.expect in caller_text and replied,
                           caller_text=caller_text, outcome=out, sessions=len(dg.sessions))
    heard_at = next((t for t in growth if t > speech_end - 1.0), None)  # the greeting ended long before
    if heard_at is not None:
        result.speech_end_to_audio = heard_at - speech_end
        after = [x.text for x in out.transcript if x.role == "agent" and x.at >= heard_at - 0.1]
        result.first_heard = after[0] if after else ""
    if dg.faulted_at is not None:
        drop_heard = next((t for t in growth if t > dg.faulted_at), None)
        result.drop_to_audio = None if drop_heard is None else drop_heard - dg.faulted_at
    return result


async def _monitor(link: MemoryLink, growth: list[float]) -> None:
    seen = len(link.played)
    while True:
        await asyncio.sleep(0.005)
        if len(link.played) > seen:
            seen = len(link.played)
            growth.append(time.monotonic())


async def _caller(link: MemoryLink, v: Variant, spoken: asyncio.Future[float]) -> None:
    """Continuous 20 ms frames: 0.3 s of silence after the greeting, the turn, then silence until the link
    closes; `spoken` gets the time the caller's last speech frame left."""
    while link.first_audio_at is None or link.speaking:  # noqa: ASYNC110  # the greeting plays out first
        await asyncio.sleep(0.01)
    n = link.fmt.frame_bytes
    pcm = bytearray(silence(300))
    speech_end_offset = 0
    for speech_ms, pause_ms in v.speech:
        pcm += voiced(speech_ms)
        speech_end_offset = len(pcm)
        pcm += silence(pause_ms)
    start = time.monotonic()
    i = 0
    while not link.closed:
        await asyncio.sleep(max(0.0, start + i * 0.02 - time.monotonic()))
        frame = bytes(pcm[i * n:(i + 1) * n]) if (i + 1) * n <= len(pcm) else bytes(n)
        link.caller_frame(frame)
        i += 1
        if i * n == speech_end_offset and not spoken.done():
            spoken.set_result(time.monotonic())
