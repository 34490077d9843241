"""The three cloud providers through their real SDKs (deepgram-sdk, openai, elevenlabs) against local servers
that speak each vendor's wire protocol, wrapped in the fallback chains the factory builds.

Every fault (slow first result, mid-stream disconnect, auth failure, rate limit) must end on the offline
(here: scripted) provider, be counted in the metrics, and leave no API key in logs or metrics.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from storeagent.agent.metrics import AgentMetrics
from storeagent.agent.ports import (
    AudioFormat,
    Message,
    ProviderSet,
    SpeechStarted,
    STTEvent,
    TextDelta,
    ToolCall,
    ToolSpec,
    Transcript,
)
from storeagent.agent.providers.deepgram_stt import DeepgramSTT
from storeagent.agent.providers.factory import OfflineProviders, ResilienceSettings, build_providers
from storeagent.agent.providers.guard import RetryPolicy, StageTimeouts
from storeagent.agent.providers.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS
from storeagent.agent.secrets import Secret, Secrets
from storeagent.shop import ShopConfig
from support.fake_deepgram import FakeDeepgram
from support.fake_elevenlabs import FakeElevenLabs
from support.fake_openai import FakeOpenAI, ToolReply

pytestmark = pytest.mark.integration

KEYS = {"DEEPGRAM_API_KEY": "dg-test-key-0123456789", "OPENAI_API_KEY": "sk-test-key-0123456789",
        "ELEVENLABS_API_KEY": "xi-test-key-0123456789"}
OFFLINE_HEARD = "offline heard you"
OFFLINE_SAYS = "I can take a message."
# Generous for a loaded 2-core machine; the "slow" fakes stall far longer than this.
TIMEOUTS = StageTimeouts(connect=5.0, first_result=2.0, stall=5.0)
SLOW = 30.0


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeDeepgram, FakeOpenAI, FakeElevenLabs]]:
    dg = await FakeDeepgram(api_key=KEYS["DEEPGRAM_API_KEY"], slow_seconds=SLOW).start()
    oa = await FakeOpenAI(api_key=KEYS["OPENAI_API_KEY"], slow_seconds=SLOW).start()
    el = await FakeElevenLabs(api_key=KEYS["ELEVENLABS_API_KEY"], slow_seconds=SLOW).start()
    yield dg, oa, el
    for f in (dg, oa, el):
        await f.stop()


def shop(language: str, dg: FakeDeepgram, oa: FakeOpenAI, el: FakeElevenLabs) -> ShopConfig:
    return ShopConfig.model_validate({
        "store": "gangnam-chicken" if language.startswith("ko") else "sunrise-bakery",
        "language": language,
        "profile": {"name": "Test Shop", "timezone": "Asia/Seoul"},
        "providers": {
            "stt": {"name": "deepgram", "model": "nova-3", "baseUrl": dg.url},
            "llm": {"name": "openai", "model": "gpt-4o-mini", "baseUrl": oa.url},
            "tts": {"name": "elevenlabs", "model": "eleven_flash_v2_5", "voice": "voice-1", "baseUrl": el.url},
        },
    })


def build(cfg: ShopConfig, metrics: AgentMetrics) -> ProviderSet:
    offline = OfflineProviders(stt=[ScriptedSTT([OFFLINE_HEARD], name="offline")],
                               llm=[ScriptedLLM(OFFLINE_SAYS, name="offline")], tts=[ScriptedTTS(name="offline")])
    secrets = Secrets(Secret(v, k) for k, v in KEYS.items())
    res = ResilienceSettings(stt=TIMEOUTS, llm=TIMEOUTS, tts=TIMEOUTS, retry=RetryPolicy(attempts=2, backoff=0.05))
    return build_providers(cfg, metrics, secrets=secrets, offline=offline, resilience=res)


def counter(metrics: AgentMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, {"store": metrics.store, **labels})
    return value or 0.0


def assert_no_key_leaked(metrics: AgentMetrics, caplog: pytest.LogCaptureFixture) -> None:
    exposition = metrics.exposition().decode()
    logs = caplog.text + "".join(repr(r.args) for r in caplog.records)
    for key in KEYS.values():
        assert key not in exposition
        assert key not in logs


# ------------------------------------------------------------------------------------------------- STT
async def stt_turn(providers: ProviderSet, fmt: AudioFormat, language: str) -> list[STTEvent]:
    stream = await providers.stt.open(fmt, language)
    events: list[STTEvent] = []

    async def until_final() -> None:
        async for ev in stream.events():
            events.append(ev)
            if isinstance(ev, Transcript) and ev.is_final:
                return

    reader = asyncio.create_task(until_final())
    for _ in range(15):
        await stream.send(b"\x10\x00" * (fmt.frame_bytes // 2))
    await stream.finalize()
    await asyncio.wait_for(reader, 30)
    await stream.aclose()
    return events


@pytest.mark.parametrize(("language", "rate", "text"), [("en-US", 8000, "what time do you close today"),
                                                        ("ko-KR", 16000, "오늘 몇 시에 문 닫아요")])
async def test_deepgram_happy_path(fakes, caplog, language: str, rate: int, text: str) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    dg, oa, el = fakes
    metrics = AgentMetrics("shop")
    events = await stt_turn(build(shop(language, dg, oa, el), metrics), AudioFormat(rate), language)
    finals = [e for e in events if isinstance(e, Transcript) and e.is_final]
    assert [f.text for f in finals] == [text]
    assert any(isinstance(e, SpeechStarted) for e in events)
    assert any(isinstance(e, Transcript) and not e.is_final for e in events)  # interim results
    (session,) = dg.sessions
    assert session.query["encoding"] == "linear16" and session.query["sample_rate"] == str(rate)
    assert session.query["language"] == language[:2] and session.query["vad_events"] == "true"
    assert session.headers["Authorization"] == f"Token {KEYS['DEEPGRAM_API_KEY']}"
    assert session.audio_bytes == 15 * AudioFormat(rate).frame_bytes and session.finalizes == 1
    await asyncio.sleep(0.2)
    assert session.closed_by_client  # CloseStream, then a normal close
    assert counter(metrics, "storeagent_provider_fallbacks_total", stage="stt") == 0
    assert_no_key_leaked(metrics, caplog)


@pytest.mark.parametrize(("behaviour", "kind", "attempts"), [
    # drop: the dropped stream is reconnected once (audio replayed), then the chain moves on
    ("slow", "timeout", 1), ("drop", "connect", 2), ("auth", "auth", 1), ("rate_limit", "rate_limit", 2)])
async def test_deepgram_faults_fall_back_to_offline(fakes, caplog, behaviour: str, kind: str,  # type: ignore[no-untyped-def]
                                                    attempts: int) -> None:
    caplog.set_level(logging.DEBUG)
    dg, oa, el = fakes
    dg.behaviour = behaviour
    metrics = AgentMetrics("shop")
    providers = build(shop("en-US", dg, oa, el), metrics)
    events = await stt_turn(providers, AudioFormat(8000), "en-US")
    assert [e.text for e in events if isinstance(e, Transcript) and e.is_final] == [OFFLINE_HEARD]
    assert dg.attempts == attempts  # retried only when retrying can help
    assert counter(metrics, "storeagent_provider_errors_total", provider="deepgram", kind=kind) == attempts
    assert counter(metrics, "storeagent_provider_fallbacks_total", stage="stt") == 1
    if behaviour == "auth":  # breaker open: the next call does not even try the refused key
        await stt_turn(providers, AudioFormat(8000), "en-US")
        assert dg.attempts == 1
        assert counter(metrics, "storeagent_provider_errors_total", provider="deepgram", kind="circuit_open") == 1
    assert_no_key_leaked(metrics, caplog)


async def test_deepgram_keepalive_holds_an_idle_stream_open(fakes) -> None:  # type: ignore[no-untyped-def]
    dg, _, _ = fakes
    dg.idle_timeout = 1.5  # the real service closes with 1011 / NET-0001 after ~10 s without audio
    stt = DeepgramSTT(KEYS["DEEPGRAM_API_KEY"], base_url=dg.url, keepalive_seconds=0.4)
    stream = await stt.open(AudioFormat(8000), "en-US")
    await asyncio.sleep(3.5)  # the agent is talking, no caller audio flows
    for _ in range(10):
        await stream.send(b"\x00\x01" * 160)
    await stream.finalize()
    finals = []
    async for ev in stream.events():
        if isinstance(ev, Transcript) and ev.is_final:
            finals.append(ev.text)
            break
    await stream.aclose()
    assert finals == ["what time do you close today"]
    assert dg.sessions[0].keepalives >= 3 and dg.sessions[0].close_code != 1011


# ------------------------------------------------------------------------------------------------- LLM
async def llm_reply(providers: ProviderSet, text: str, tools: list[ToolSpec] | None = None) -> list[object]:
    return [c async for c in providers.llm.stream([Message("system", "Be brief."), Message("user", text)],
                                                  tools or [])]


def joined(chunks: list[object]) -> str:
    return "".join(c.text for c in chunks if isinstance(c, TextDelta))


async def test_openai_happy_path_with_tool_call_in_korean(fakes, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    dg, oa, el = fakes
    args = '{"day": "토요일", "note": "포장 주문 가능?"}'
    oa.replies = [ToolReply("opening_hours", args), "토요일은 밤 열한 시까지 영업합니다."]
    metrics = AgentMetrics("shop")
    providers = build(shop("ko-KR", dg, oa, el), metrics)
    hours = ToolSpec("opening_hours", "Opening hours", {"type": "object", "properties": {"day": {"type": "string"}}})
    first = await llm_reply(providers, "토요일 몇 시까지 해요?", [hours])
    (call,) = [c for c in first if isinstance(c, ToolCall)]
    assert call.name == "opening_hours" and call.arguments == args and call.id.startswith("call_")
    second = await llm_reply(providers, "그럼 일요일은요?")
    assert joined(second) == "토요일은 밤 열한 시까지 영업합니다."
    req = oa.requests[0]
    assert req["stream"] is True and req["model"] == "gpt-4o-mini"
    assert req["tools"][0]["function"]["name"] == "opening_hours"
    assert req["messages"][1] == {"role": "user", "content": "토요일 몇 시까지 해요?"}
    assert "tools" not in oa.requests[1]
    assert_no_key_leaked(metrics, caplog)


@pytest.mark.parametrize(("behaviour", "kind", "attempts"), [
    # drop: cut before any text was produced, so one retry is worth it
    ("slow", "timeout", 1), ("drop", "connect", 2), ("auth", "auth", 1), ("rate_limit", "rate_limit", 2),
    ("server_error", "server", 2)])
async def test_openai_faults_fall_back_to_offline(fakes, caplog, behaviour: str, kind: str,  # type: ignore[no-untyped-def]
                                                  attempts: int) -> None:
    caplog.set_level(logging.DEBUG)
    dg, oa, el = fakes
    oa.behaviour = behaviour
    metrics = AgentMetrics("shop")
    providers = build(shop("en-US", dg, oa, el), metrics)
    assert joined(await llm_reply(providers, "are you open?")) == OFFLINE_SAYS
    assert oa.attempts == attempts
    assert counter(metrics, "storeagent_provider_errors_total", provider="openai", kind=kind) == attempts
    assert counter(metrics, "storeagent_provider_fallbacks_total", stage="llm") == 1
    if behaviour == "auth":
        assert joined(await llm_reply(providers, "hello?")) == OFFLINE_SAYS
        assert oa.attempts == 1  # breaker open
    assert_no_key_leaked(metrics, caplog)


# ------------------------------------------------------------------------------------------------- TTS
async def speak(providers: ProviderSet, fmt: AudioFormat, language: str, *clauses: str) -> list[bytes]:
    session = await providers.tts.open(fmt, language)
    out = []
    for clause in clauses:
        out.append(b"".join([c async for c in session.synthesize(clause)]))
    await session.end_answer()  # type: ignore[attr-defined]  # FallbackTTSSession: the reply is complete
    await session.aclose()
    return out


@pytest.mark.parametrize(("language", "rate", "clauses"), [
    ("en-US", 8000, ("Hello, thanks for calling.", "We close at six.")),
    ("ko-KR", 16000, ("안녕하세요, 강남치킨입니다.", "무엇을 도와드릴까요?"))])
async def test_elevenlabs_happy_path(fakes, caplog, language: str, rate: int,  # type: ignore[no-untyped-def]
                                     clauses: tuple[str, str]) -> None:
    caplog.set_level(logging.DEBUG)
    dg, oa, el = fakes
    metrics = AgentMetrics("shop")
    audio = await speak(build(shop(language, dg, oa, el), metrics), AudioFormat(rate), language, *clauses)
    for clause, pcm in zip(clauses, audio, strict=True):
        # 60 ms of tone per character, as L16 at the call's rate (µ-law decoded on 8 kHz calls)
        assert len(pcm) == rate * 60 * len(clause) // 1000 * 2
    (stream,) = el.sessions  # one stream for the answer, no standby socket
    assert stream.query["output_format"] == ("ulaw_8000" if rate == 8000 else "pcm_16000")
    assert stream.query["language_code"] == language[:2] and stream.voice_id == "voice-1"
    assert stream.messages[0] == {"text": " ", "generation_config": {"chunk_length_schedule": [50, 90, 120, 150]}}
    assert stream.messages[1:] == [{"text": clauses[0] + " ", "flush": True}, {"text": clauses[1] + " ", "flush": True},
                                   {"text": ""}]  # clause by clause with flush, then end of input
    assert stream.flushes == 2 and stream.close_code == 1000
    assert counter(metrics, "storeagent_provider_fallbacks_total", stage="tts") == 0
    assert_no_key_leaked(metrics, caplog)


@pytest.mark.parametrize(("behaviour", "kind", "attempts"), [
    # the stream opens with the answer's first clause: a refusal there goes to the next voice at once
    ("slow", "timeout", 1), ("drop", "connect", 1), ("auth", "auth", 1), ("rate_limit", "rate_limit", 1),
    ("quota", "rate_limit", 1)])
async def test_elevenlabs_faults_fall_back_to_offline(fakes, caplog, behaviour: str, kind: str,  # type: ignore[no-untyped-def]
                                                      attempts: int) -> None:
    caplog.set_level(logging.DEBUG)
    dg, oa, el = fakes
    el.behaviour = behaviour
    metrics = AgentMetrics("shop")
    providers = build(shop("en-US", dg, oa, el), metrics)
    (pcm,) = await speak(providers, AudioFormat(8000), "en-US", "We close at six.")
    assert pcm and len(pcm) % 2 == 0  # the offline voice said the clause
    assert counter(metrics, "storeagent_provider_errors_total", provider="elevenlabs", kind=kind) == attempts
    assert counter(metrics, "storeagent_provider_fallbacks_total", stage="tts") == 1
    assert_no_key_leaked(metrics, caplog)


async def test_elevenlabs_stream_per_answer_barge_in_limit_and_http_transport(fakes) -> None:  # type: ignore[no-untyped-def]
    from storeagent.agent.errors import ProviderError
    from storeagent.agent.providers.elevenlabs_tts import ElevenLabsTTS

    _, _, el = fakes
    tts = ElevenLabsTTS(KEYS["ELEVENLABS_API_KEY"], voice_id="v", base_url=el.url, idle_close_s=0.5, max_streams=1)
    session = await tts.open(AudioFormat(16000), "en-US")
    assert el.sessions == []  # nothing open (nor kept alive) before the first answer
    (pcm,) = [b"".join([c async for c in session.synthesize("Hi there.")])]
    assert len(pcm) == 16000 * 60 * len("Hi there.") // 1000 * 2
    await asyncio.sleep(1.0)  # no next clause: the answer's stream is ended, not held open
    assert el.sessions[0].close_code == 1000 and el.sessions[0].messages[-1] == {"text": ""}
    assert tts.open_streams == 0

    # barge-in: the reply stops reading mid-clause; closing the socket stops the generation
    it = aiter(session.synthesize("This is a long answer the caller will interrupt."))
    await anext(it)
    other = await tts.open(AudioFormat(16000), "en-US")
    with pytest.raises(ProviderError) as refused:  # the one allowed stream is in use
        await anext(aiter(other.synthesize("Hello.")))
    assert refused.value.kind == "rate_limit" and refused.value.retryable
    await it.aclose()  # type: ignore[attr-defined]
    await asyncio.sleep(0.2)
    assert el.sessions[1].ended_by_client and {"text": ""} not in el.sessions[1].messages
    assert tts.open_streams == 0
    await session.aclose()
    await other.aclose()

    http = ElevenLabsTTS(KEYS["ELEVENLABS_API_KEY"], voice_id="v", base_url=el.url, transport="http")
    hs = await http.open(AudioFormat(8000), "ko-KR")
    pcm = b"".join([c async for c in hs.synthesize("네, 알겠습니다.")])
    assert len(pcm) == 8000 * 60 * len("네, 알겠습니다.") // 1000 * 2
    assert el.http_requests[0]["query"]["output_format"] == "ulaw_8000"
    assert el.http_requests[0]["model_id"] == "eleven_flash_v2_5"


@pytest.mark.parametrize(("retry_after", "answered_by", "attempts"), [
    (0.6, "openai", 2),  # within the turn's budget (RetryPolicy.max_wait): waited as asked, then answered
    (30.0, "offline", 1)])  # far beyond it: no retry that would be refused anyway, straight to the fallback
async def test_openai_429_honours_retry_after_within_the_budget(fakes, retry_after: float, answered_by: str,  # type: ignore[no-untyped-def]
                                                                attempts: int) -> None:
    dg, oa, el = fakes
    oa.behaviour, oa.retry_after = "rate_limit_once", retry_after
    metrics = AgentMetrics("shop")
    cfg = shop("en-US", dg, oa, el)
    offline = OfflineProviders(stt=[], llm=[ScriptedLLM(OFFLINE_SAYS, name="offline")], tts=[ScriptedTTS()])
    res = ResilienceSettings(stt=TIMEOUTS, llm=TIMEOUTS, tts=TIMEOUTS,
                             retry=RetryPolicy(attempts=2, backoff=0.05, max_wait=1.0))
    providers = build_providers(cfg, metrics, secrets=Secrets(Secret(v, k) for k, v in KEYS.items()),
                                offline=offline, resilience=res)
    text = joined(await llm_reply(providers, "are you open?"))
    assert text == (OFFLINE_SAYS if answered_by == "offline" else "We close at six tonight.")
    assert oa.attempts == attempts
    if attempts == 2:
        gap = oa.request_times[1] - oa.request_times[0]
        assert retry_after <= gap < retry_after + 0.5, gap  # not the 50 ms backoff: the wait the server asked for
    assert counter(metrics, "storeagent_provider_errors_total", provider="openai", kind="rate_limit") == 1
