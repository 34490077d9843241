"""Scripted providers: deterministic output, delays honoured, injected faults raised where configured."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import numpy as np
import pytest

from storeagent.agent.errors import ProviderError
from storeagent.agent.ports import AudioFormat, Message, SpeechStarted, TextDelta, ToolCall, Transcript
from storeagent.agent.providers import scripted
from storeagent.agent.providers.scripted import Fault, ScriptedLLM, ScriptedSTT, ScriptedTTS

FMT = AudioFormat(8000)


async def test_stt_returns_transcripts_in_order_after_delay() -> None:
    stt = ScriptedSTT(["first", "second"], final_delay=0.05)
    stream = await stt.open(FMT, "en-US")
    events = stream.events()
    await stream.send(b"\x01\x00" * 160)
    t0 = time.monotonic()
    await stream.finalize()
    assert time.monotonic() - t0 >= 0.05
    assert await anext(events) == SpeechStarted()
    assert await anext(events) == Transcript("first", is_final=True, confidence=1.0)
    await stream.finalize()
    assert await anext(events) == Transcript("second", is_final=True, confidence=1.0)
    await stream.finalize()
    assert (await anext(events)).text == "first"  # type: ignore[union-attr]  # cycles
    await stream.aclose()
    assert [e async for e in events] == []
    assert stream.bytes_received == 320


async def test_stt_faults() -> None:
    with pytest.raises(ProviderError) as e:
        await ScriptedSTT(fault=Fault("open", retryable=False)).open(FMT, "en")
    assert e.value.retryable is False
    stream = await ScriptedSTT(["a", "b"], fault=Fault("mid")).open(FMT, "en")
    events = stream.events()
    await stream.finalize()
    assert (await anext(events)).text == "a"  # type: ignore[union-attr]
    await stream.finalize()
    with pytest.raises(ProviderError) as e:
        await anext(events)
    assert e.value.retryable is True and e.value.provider == "scripted"


async def test_llm_streams_words_and_tool_calls() -> None:
    llm = ScriptedLLM("We open at 8 AM.", first_token_delay=0.03, token_delay=0.01)
    t0 = time.monotonic()
    chunks = [c async for c in llm.stream([Message("user", "hi")], [])]
    assert time.monotonic() - t0 >= 0.03 + 3 * 0.01
    assert chunks == [TextDelta("We "), TextDelta("open "), TextDelta("at "), TextDelta("8 "), TextDelta("AM.")]
    call = ToolCall("c1", "end_call", "{}")
    echo = ScriptedLLM(lambda msgs: [TextDelta(f"you said {msgs[-1].content}"), call])
    assert [c async for c in echo.stream([Message("user", "bye")], [])] == [TextDelta("you said bye"), call]
    assert echo.requests == [[Message("user", "bye")]]


@pytest.mark.parametrize("at", ["open", "first", "mid"])
async def test_llm_faults(at: str) -> None:
    llm = ScriptedLLM("one two three four", fault=Fault(at))  # type: ignore[arg-type]
    got: list[object] = []
    with pytest.raises(ProviderError):
        async for c in llm.stream([], []):
            got.append(c)
    assert len(got) == (2 if at == "mid" else 0)


async def test_tts_audio_length_energy_and_delay() -> None:
    tts = ScriptedTTS(first_audio_delay=0.04, seconds_per_char=0.05)
    session = await tts.open(AudioFormat(16000), "en-US")
    t0 = time.monotonic()
    chunks = []
    async for pcm in session.synthesize("Hello there"):  # 11 chars -> 0.55 s
        if not chunks:
            assert time.monotonic() - t0 >= 0.04
        chunks.append(pcm)
    audio = b"".join(chunks)
    assert len(audio) == int(0.55 * 16000) * 2
    samples = np.frombuffer(audio, "<i2")
    assert np.abs(samples).max() > 1000  # real energy, not silence
    assert len(chunks) > 1 and all(len(c) % 2 == 0 for c in chunks)


async def test_tts_mid_fault_after_some_audio() -> None:
    session = await ScriptedTTS(fault=Fault("mid"), seconds_per_char=0.1).open(FMT, "en")
    got = []
    with pytest.raises(ProviderError):
        async for pcm in session.synthesize("a fairly long clause"):
            got.append(pcm)
    assert got


class _VirtualClock:
    """Loop time that moves only when the stream sleeps, so the pacing is checked exactly under any load."""

    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.now += max(0.0, delay)
        await asyncio.sleep(0)


async def test_tts_realtime_streams_one_chunk_ahead_of_the_playhead(monkeypatch: pytest.MonkeyPatch) -> None:
    # 0.6 s of audio in 100 ms chunks: two chunks at once, then one per 100 ms (a cloud TTS keeping pace).
    clock = _VirtualClock()
    monkeypatch.setattr(scripted, "asyncio", SimpleNamespace(get_running_loop=lambda: clock, sleep=clock.sleep))
    tts = ScriptedTTS(first_audio_delay=0.02, seconds_per_char=0.1, chunk_ms=100, realtime=True)
    session = await tts.open(AudioFormat(8000), "en-US")
    arrivals: list[float] = []
    sizes: list[int] = []
    async for pcm in session.synthesize("sixsix"):
        arrivals.append(clock.now)
        sizes.append(len(pcm))
    assert sizes == [1600] * 6
    assert arrivals[0] == pytest.approx(0.02)
    assert arrivals[1] == arrivals[0]  # the lead chunk follows the first at once
    for i in range(2, 6):  # chunk i is due (i - 1) * 100 ms after the first: one chunk ahead of the playhead
        assert arrivals[i] - arrivals[0] == pytest.approx((i - 1) * 0.1)
    monkeypatch.undo()
    # same bytes as the instant stream: pacing changes when, not what
    instant = ScriptedTTS(seconds_per_char=0.1, chunk_ms=100)
    a = b"".join([c async for c in (await instant.open(AudioFormat(8000), "en")).synthesize("sixsix")])
    b = b"".join([c async for c in (await tts.open(AudioFormat(8000), "en")).synthesize("sixsix")])
    assert a == b
