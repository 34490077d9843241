"""The speech worker's TTS cache: a finished utterance is replayed byte for byte, a cancelled one is not kept, and the
budget holds (least recently used out first)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from storeagent.agent.ports import AudioFormat
from storeagent.speech.metrics import SpeechMetrics
from storeagent.speech.ttscache import ENTRY_SHARE, TtsCache, cache_budget
from storeagent.speech.worker import TtsSession


async def _wait_for(cond: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not cond():  # noqa: ASYNC110 - the worker under test has no event to wait on
            await asyncio.sleep(0.001)


class _Out:
    def __init__(self) -> None:
        self.audio_bytes: dict[int, bytearray] = {}
        self.controls: list[dict[str, Any]] = []
        self.observed: list[tuple[str, float]] = []
        self.gate: asyncio.Event | None = None  # set: drain waits for it (the agent's playout is slow)

    def control(self, stream: int, msg: dict[str, Any]) -> None:
        self.controls.append(msg)

    def audio(self, stream: int, pcm: bytes) -> None:
        self.audio_bytes.setdefault(len(self.controls), bytearray()).extend(pcm)

    def observe(self, name: str, kind: str, value: float) -> None:
        self.observed.append((name, value))

    async def drain(self) -> None:
        if self.gate is not None:
            await self.gate.wait()

    async def until(self, kind: str, n: int) -> None:
        await _wait_for(lambda: sum(1 for c in self.controls if c["type"] == kind) >= n)


class _Voice:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        self.calls.append(text)
        for i in range(3):
            await asyncio.sleep(0)
            yield bytes([len(self.calls) % 256, i]) * 160

    async def aclose(self) -> None:
        return None


async def _session(out: _Out, voice: _Voice, cache: TtsCache) -> TtsSession:
    async def opener() -> _Voice:
        return voice

    s = TtsSession(1, out, opener, AudioFormat(8000), cache)  # type: ignore[arg-type]
    await out.until("ready", 1)
    return s


async def test_a_finished_utterance_is_replayed_from_the_cache_not_synthesized_again() -> None:
    out, voice = _Out(), _Voice()
    s = await _session(out, voice, TtsCache(1 << 20))
    s.speak(1, "We open at eight.")
    await out.until("done", 1)
    first = bytes(out.audio_bytes[1])
    s.speak(2, "We open at eight.")
    await out.until("done", 2)
    assert voice.calls == ["We open at eight."]  # the engine ran once
    assert bytes(out.audio_bytes[2]) == first  # the replay is the engine's own bytes
    assert [v for n, v in out.observed if n == "tts_cache"] == [0.0, 1.0]
    assert sum(1 for n, _ in out.observed if n == "tts_first_audio") == 2
    s.speak(3, "We close at four.")
    await out.until("done", 3)
    assert voice.calls == ["We open at eight.", "We close at four."]
    await s.close()


async def test_a_cancelled_utterance_is_not_kept() -> None:
    out, voice = _Out(), _Voice()
    cache = TtsCache(1 << 20)
    s = await _session(out, voice, cache)
    out.gate = asyncio.Event()  # the first chunk waits in drain: cancel lands mid-utterance
    s.speak(1, "Our menu today is long.")
    await _wait_for(lambda: bool(voice.calls))
    s.cancel(1)
    await out.until("cancelled", 1)
    assert len(cache) == 0
    out.gate = None
    s.speak(2, "Our menu today is long.")
    await out.until("done", 1)
    assert voice.calls == ["Our menu today is long."] * 2  # synthesized again, whole this time
    assert len(cache) == 1
    await s.close()


async def test_a_cancel_during_a_replay_stops_it() -> None:
    out, voice = _Out(), _Voice()
    s = await _session(out, voice, TtsCache(1 << 20))
    s.speak(1, "Hello.")
    await out.until("done", 1)
    out.gate = asyncio.Event()
    s.speak(2, "Hello.")
    await _wait_for(lambda: sum(1 for n, _ in out.observed if n == "tts_cache") >= 2)
    s.cancel(2)
    await out.until("cancelled", 1)
    assert sum(1 for c in out.controls if c["type"] == "done") == 1
    await s.close()


def test_the_budget_holds_least_recently_used_out_first() -> None:
    cache = TtsCache(ENTRY_SHARE * 100)
    for i in range(ENTRY_SHARE):  # full
        assert cache.put(("v", 8000, f"t{i}"), [b"x" * 100])
    assert cache.get(("v", 8000, "t0")) is not None  # t0 used again: t1 is now the least recent
    assert cache.put(("v", 8000, "new"), [b"x" * 100])
    assert cache.used == cache.budget and len(cache) == ENTRY_SHARE
    assert cache.get(("v", 8000, "t0")) is not None
    assert cache.get(("v", 8000, "t1")) is None
    assert not cache.put(("v", 8000, "big"), [b"x" * 101])  # over one share: never cached
    assert not TtsCache(0).put(("v", 8000, "t"), [b"x"])  # off


def test_budget_from_the_environment() -> None:
    assert cache_budget({}) == 64 << 20
    assert cache_budget({"STOREAGENT_SPEECH_TTS_CACHE_MB": "0"}) == 0
    assert cache_budget({"STOREAGENT_SPEECH_TTS_CACHE_MB": "junk"}) == 64 << 20


def test_hits_and_misses_are_counted() -> None:
    m = SpeechMetrics()
    m.observe("tts_cache", "tts", 1.0)
    m.observe("tts_cache", "tts", 0.0)
    m.observe("tts_cache", "tts", 1.0)
    text = m.exposition().decode()
    assert 'storeagent_speech_tts_cache_total{result="hit"} 2.0' in text
    assert 'storeagent_speech_tts_cache_total{result="miss"} 1.0' in text
