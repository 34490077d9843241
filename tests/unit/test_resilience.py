"""Fallback chains, retries, timeouts and circuit breakers over in-test providers (no network)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest

from storeagent.agent.errors import ProviderError
from storeagent.agent.ports import (
    AudioFormat,
    LLMChunk,
    Message,
    STTEvent,
    TextDelta,
    ToolSpec,
    Transcript,
)
from storeagent.agent.providers.resilience import (
    Breakers,
    Chain,
    CircuitBreaker,
    FallbackLLM,
    FallbackSTT,
    FallbackTTS,
    RetryPolicy,
    StageTimeouts,
)

FAST = StageTimeouts(connect=0.5, first_result=0.2, stall=0.5)
FMT = AudioFormat(8000)


@dataclass
class Recorder:
    errors: list[tuple[str, str]] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)

    def turn_latency(self, stage: str, seconds: float) -> None: ...

    def barge_in_stop(self, seconds: float) -> None: ...

    def provider_error(self, provider: str, kind: str) -> None:
        self.errors.append((provider, kind))

    def provider_fallback(self, stage: str) -> None:
        self.fallbacks.append(stage)

    def underruns(self, count: int) -> None: ...


def chain(stage: str, rec: Recorder, attempts: int = 1, breakers: Breakers | None = None) -> Chain:
    return Chain(stage, rec, FAST, RetryPolicy(attempts=attempts, backoff=0.01), breakers or Breakers())


# ------------------------------------------------------------------------------------------------- LLM
class FakeLLM:
    def __init__(self, name: str, script: Sequence[str | ProviderError | float]) -> None:
        """script: text deltas, errors to raise, or seconds to stall, in order."""
        self.name, self.script, self.calls = name, list(script), 0

    async def stream(self, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> AsyncIterator[LLMChunk]:
        self.calls += 1
        for step in self.script:
            if isinstance(step, ProviderError):
                raise step
            if isinstance(step, float):
                await asyncio.sleep(step)
                continue
            yield TextDelta(step)


async def collect(llm: FallbackLLM) -> str:
    return "".join(c.text for c in [c async for c in llm.stream([Message("user", "hi")], [])]
                   if isinstance(c, TextDelta))


async def test_llm_auth_failure_falls_back_at_once_and_opens_the_breaker() -> None:
    rec = Recorder()
    primary = FakeLLM("openai", [ProviderError("openai", "auth", "bad key", retryable=False)])
    backup = FakeLLM("scripted", ["I can take a message."])
    llm = FallbackLLM([primary, backup], chain("llm", rec, attempts=3))
    assert await collect(llm) == "I can take a message."
    assert primary.calls == 1  # non-retryable: no retry
    assert await collect(llm) == "I can take a message."
    assert primary.calls == 1  # breaker open: the next call skips it
    assert rec.errors == [("openai", "auth"), ("openai", "circuit_open")]
    assert rec.fallbacks == ["llm", "llm"]


async def test_llm_rate_limit_is_retried_then_falls_back() -> None:
    rec = Recorder()
    primary = FakeLLM("openai", [ProviderError("openai", "rate_limit", "429", retryable=True)])
    llm = FallbackLLM([primary, FakeLLM("scripted", ["ok"])], chain("llm", rec, attempts=2))
    assert await collect(llm) == "ok"
    assert primary.calls == 2
    assert rec.errors == [("openai", "rate_limit"), ("openai", "rate_limit")]


async def test_llm_slow_first_token_times_out_to_fallback() -> None:
    rec = Recorder()
    llm = FallbackLLM([FakeLLM("openai", [5.0, "late"]), FakeLLM("scripted", ["now"])], chain("llm", rec))
    assert await collect(llm) == "now"
    assert rec.errors == [("openai", "timeout")]


async def test_llm_mid_stream_failure_continues_on_fallback_without_retry() -> None:
    rec = Recorder()
    primary = FakeLLM("openai", ["We open at ", ProviderError("openai", "server", "reset", retryable=True)])
    llm = FallbackLLM([primary, FakeLLM("scripted", ["sorry."])], chain("llm", rec, attempts=3))
    assert await collect(llm) == "We open at sorry."
    assert primary.calls == 1


async def test_the_last_provider_is_waited_for_not_timed_out() -> None:
    rec = Recorder()
    llm = FallbackLLM([FakeLLM("openai", [5.0, "never"]), FakeLLM("offline", [0.6, "slow but said"])],
                      chain("llm", rec))
    assert await collect(llm) == "slow but said"  # 0.6 s > first_result, yet nothing is left to fall back to
    tts = FallbackTTS([FakeTTS("elevenlabs", stall=5.0), FakeTTS("espeak", stall=0.6)], chain("tts", rec))
    assert await speak(tts, "hi") == b"espeak" * 3


async def test_llm_all_failing_raises_last_error() -> None:
    rec = Recorder()
    bad = ProviderError("x", "server", "500", retryable=True)
    llm = FallbackLLM([FakeLLM("a", [bad]), FakeLLM("b", [bad])], chain("llm", rec))
    with pytest.raises(ProviderError):
        await collect(llm)


def test_breaker_opens_after_threshold_and_half_opens_after_reset() -> None:
    now = [0.0]
    b = CircuitBreaker(failure_threshold=2, reset_after=10.0, clock=lambda: now[0])
    err = ProviderError("p", "server", "x", retryable=True)
    b.failure(err)
    assert b.allow()
    b.failure(err)
    assert b.state == "open" and not b.allow()
    now[0] = 11.0
    assert b.allow()  # one trial
    assert not b.allow()  # only one
    b.success()
    assert b.state == "closed"
    b.failure(ProviderError("p", "auth", "x", retryable=False))
    assert b.state == "open"


def test_invalid_settings_are_rejected_with_the_field_name() -> None:
    with pytest.raises(ValueError, match="first_result"):
        StageTimeouts(first_result=0)
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)


# ------------------------------------------------------------------------------------------------- TTS
class FakeTTS:
    def __init__(self, name: str, *, open_error: ProviderError | None = None, stall: float = 0.0,
                 fail_after: int | None = None) -> None:
        self.name, self.open_error, self.stall, self.fail_after = name, open_error, stall, fail_after
        self.said: list[str] = []

    async def open(self, fmt: AudioFormat, language: str) -> FakeTTS:
        if self.open_error:
            raise self.open_error
        return self

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        self.said.append(text)
        await asyncio.sleep(self.stall)
        for i in range(3):
            if self.fail_after is not None and i >= self.fail_after:
                raise ProviderError(self.name, "server", "dropped", retryable=True)
            yield self.name.encode()

    async def aclose(self) -> None: ...


async def speak(tts: FallbackTTS, *clauses: str) -> bytes:
    session = await tts.open(FMT, "en-US")
    out = b""
    for clause in clauses:
        out += b"".join([c async for c in session.synthesize(clause)])
    await session.aclose()
    return out


async def test_tts_open_failure_and_slow_first_audio_fall_back() -> None:
    rec = Recorder()
    auth = FakeTTS("elevenlabs", open_error=ProviderError("elevenlabs", "auth", "401", retryable=False))
    assert await speak(FallbackTTS([auth, FakeTTS("espeak")], chain("tts", rec)), "hi") == b"espeak" * 3
    slow = FakeTTS("elevenlabs", stall=5.0)
    rec2 = Recorder()
    backup = FakeTTS("espeak")
    out = await speak(FallbackTTS([slow, backup], chain("tts", rec2)), "one.", "two.")
    assert out == b"espeak" * 6
    assert backup.said == ["one.", "two."]  # sticky after the switch
    assert rec2.errors == [("elevenlabs", "timeout")] and rec2.fallbacks == ["tts"]


async def test_tts_returns_to_the_first_provider_at_the_next_answer() -> None:
    rec = Recorder()
    flaky, backup = FakeTTS("speech", stall=5.0), FakeTTS("piper")
    tts = FallbackTTS([flaky, backup], chain("tts", rec))
    session = await tts.open(FMT, "en-US")
    assert b"".join([c async for c in session.synthesize("one.")]) == b"piper" * 3  # first audio timed out
    assert b"".join([c async for c in session.synthesize("two.")]) == b"piper" * 3  # same voice in one answer
    await session.end_answer()
    flaky.stall = 0.0  # the burst is over
    assert b"".join([c async for c in session.synthesize("three.")]) == b"speech" * 3
    assert flaky.said == ["one.", "three."] and backup.said == ["one.", "two."]
    await session.aclose()


async def test_tts_goes_back_to_a_failing_first_provider_once_a_call() -> None:
    rec = Recorder()
    down, backup = FakeTTS("speech", stall=5.0), FakeTTS("piper")
    tts = FallbackTTS([down, backup], chain("tts", rec))
    session = await tts.open(FMT, "en-US")
    for n in range(6):
        assert b"".join([c async for c in session.synthesize(f"answer {n}.")]) == b"piper" * 3
        await session.end_answer()
    assert down.said == ["answer 0.", "answer 1."]  # one more try after the first timeout, then no more waits
    await session.aclose()


async def test_tts_mid_clause_failure_repeats_the_clause_on_the_fallback() -> None:
    rec = Recorder()
    backup = FakeTTS("espeak")
    out = await speak(FallbackTTS([FakeTTS("elevenlabs", fail_after=1), backup], chain("tts", rec)), "hello.")
    assert out == b"elevenlabs" + b"espeak" * 3
    assert backup.said == ["hello."]


# ------------------------------------------------------------------------------------------------- STT
class FakeSTT:
    """Emits a final transcript naming itself and the bytes heard, on finalize (unless deaf)."""

    def __init__(self, name: str, *, deaf: bool = False, drop_after: int | None = None) -> None:
        self.name, self.deaf, self.drop_after = name, deaf, drop_after

    async def open(self, fmt: AudioFormat, language: str) -> FakeSTTStream:
        return FakeSTTStream(self)


class FakeSTTStream:
    def __init__(self, owner: FakeSTT) -> None:
        self.owner, self.heard = owner, 0
        self.queue: asyncio.Queue[STTEvent | ProviderError] = asyncio.Queue()

    async def send(self, pcm: bytes) -> None:
        self.heard += len(pcm)
        if self.owner.drop_after is not None and self.heard > self.owner.drop_after:
            self.queue.put_nowait(ProviderError(self.owner.name, "server", "1011", retryable=True))

    async def finalize(self) -> None:
        if not self.owner.deaf:
            self.queue.put_nowait(Transcript(f"{self.owner.name}:{self.heard}", is_final=True))

    async def events(self) -> AsyncIterator[STTEvent]:
        while True:
            item = await self.queue.get()
            if isinstance(item, ProviderError):
                raise item
            yield item

    async def aclose(self) -> None: ...


async def first_final(stream: object) -> Transcript:
    async for ev in stream.events():  # type: ignore[attr-defined]
        if isinstance(ev, Transcript) and ev.is_final:
            return ev
    raise AssertionError("no final transcript")


@pytest.mark.parametrize("primary", [FakeSTT("deepgram", deaf=True), FakeSTT("deepgram", drop_after=640)])
async def test_stt_fallback_replays_the_unfinished_turn(primary: FakeSTT) -> None:
    rec = Recorder()
    stt = FallbackSTT([primary, FakeSTT("offline")], chain("stt", rec))
    stream = await stt.open(FMT, "en-US")
    for _ in range(5):
        await stream.send(b"\x00" * FMT.frame_bytes)
    await stream.finalize()
    final = await asyncio.wait_for(first_final(stream), 5)
    assert final.text == f"offline:{5 * FMT.frame_bytes}"  # every byte of the turn reached the fallback
    assert rec.fallbacks == ["stt"]
    await stream.aclose()


async def test_stt_open_failure_skips_to_fallback() -> None:
    rec = Recorder()

    class Refused(FakeSTT):
        async def open(self, fmt: AudioFormat, language: str) -> FakeSTTStream:
            raise ProviderError("deepgram", "rate_limit", "429", retryable=True)

    stream = await FallbackSTT([Refused("deepgram"), FakeSTT("offline")], chain("stt", rec, attempts=2)).open(FMT, "ko")
    await stream.send(b"\x01\x00" * 10)
    await stream.finalize()
    assert (await asyncio.wait_for(first_final(stream), 5)).text == "offline:20"
    assert rec.errors == [("deepgram", "rate_limit")] * 2
    await stream.aclose()


def test_retry_after_replaces_the_backoff_only_within_the_budget() -> None:
    from storeagent.agent.providers.guard import RetryPolicy as Policy
    from storeagent.agent.providers.openai_llm import retry_after_seconds

    policy = Policy(attempts=2, backoff=0.1, max_wait=1.0)
    assert policy.delay(ProviderError("p", "rate_limit", "x", retryable=True), 0.1) == 0.1
    assert policy.delay(ProviderError("p", "rate_limit", "x", retryable=True, retry_after=0.7), 0.1) == 0.7
    assert policy.delay(ProviderError("p", "rate_limit", "x", retryable=True, retry_after=20), 0.1) is None
    assert retry_after_seconds({"Retry-After": "2"}) == 2.0
    assert retry_after_seconds({"retry-after": "1", "retry-after-ms": "450"}) == 0.45
    assert retry_after_seconds({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # a date in the past
    assert retry_after_seconds({"Retry-After": "soon"}) is None and retry_after_seconds(None) is None
