"""The offline default recognizer, Whisper base from its two wheels: it loads with nothing downloaded or written,
hears an everyday 8 kHz question, keeps the STT port's contract (one final per turn, partials when asked, no
decode of a turn with no audio) and never runs its decode on the event loop. Few decodes: each costs ~0.3 s."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from storeagent.agent.errors import ProviderError
from storeagent.agent.ports import AudioFormat, STTStream, Transcript
from storeagent.agent.providers import whisper_stt
from storeagent.agent.providers.offline_tts import EspeakTTS

pytestmark = pytest.mark.skipif(not whisper_stt.available(), reason="extra offline-whisper is not installed")

NB = AudioFormat(8000)


async def _speech(text: str) -> bytes:
    tts = await EspeakTTS(words_per_minute=160).open(NB, "en-US")
    return b"".join([chunk async for chunk in tts.synthesize(text)]) + b"\0" * 4000


async def _feed(stream: STTStream, pcm: bytes) -> None:
    """In real time, as a call sends it (an interim decode needs the time a caller takes to speak)."""
    t0 = time.monotonic()
    for n, i in enumerate(range(0, len(pcm), NB.frame_bytes)):
        await stream.send(pcm[i : i + NB.frame_bytes])
        await asyncio.sleep(max(0.0, t0 + (n + 1) * 0.02 - time.monotonic()))


async def _transcripts(stream: STTStream, finals: int) -> AsyncIterator[Transcript]:
    async for ev in stream.events():
        if isinstance(ev, Transcript):
            yield ev
            if ev.is_final:
                finals -= 1
                if not finals:
                    return


@pytest.fixture(scope="module")
def stt() -> whisper_stt.WhisperSTT:
    s = whisper_stt.WhisperSTT(["Sunrise Bakery", "sourdough loaf"], interim_s=0.8)
    s.warm_up()
    return s


async def test_hears_an_everyday_question_at_8khz_and_keeps_the_port_contract(stt: whisper_stt.WhisperSTT) -> None:
    pcm = await _speech("Hi, how early can I come in on Saturday?")
    threads: list[str] = []
    decoder = stt.decoder()
    real = decoder.decode_nbest

    def spy(*args: Any) -> list[str]:
        threads.append(threading.current_thread().name)
        return real(*args)

    decoder.decode_nbest = spy  # type: ignore[method-assign]
    stream = await stt.open(NB, "en-US")
    got: list[Transcript] = []
    reader = asyncio.create_task(_collect(stream, got, finals=2))
    ticks = 0

    async def ticker() -> None:  # the loop keeps turning while Whisper decodes
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    tick = asyncio.create_task(ticker())
    await _feed(stream, pcm)
    t0 = time.monotonic()
    await stream.finalize()
    await stream.finalize()  # a turn with no audio: an empty final, no decode
    await asyncio.wait_for(reader, 60)
    took = time.monotonic() - t0
    tick.cancel()
    await stream.aclose()
    del decoder.decode_nbest
    finals = [t.text for t in got if t.is_final]
    assert len(finals) == 2 and finals[1] == ""
    assert "saturday" in finals[0].lower(), finals
    # the beam's other readings ride on the final, distinct from it and from each other; the empty turn has none
    alts = [t.alternatives for t in got if t.is_final]
    assert alts[0] and alts[1] == () and all(isinstance(a, str) and a for a in alts[0]), alts
    folded = [" ".join(a.lower().split()) for a in (finals[0], *alts[0])]
    assert len(set(folded)) == len(folded), folded
    assert any(not t.is_final for t in got), "interim_s asks for partials as the turn grows"
    assert ticks >= took / 0.01 * 0.3, "the decode ran on the event loop"
    assert threads and all(t.startswith("whisper") for t in threads), threads  # the provider's own pool


async def _collect(stream: STTStream, out: list[Transcript], finals: int) -> None:
    async for t in _transcripts(stream, finals):
        out.append(t)


async def test_refuses_a_language_it_does_not_serve(stt: whisper_stt.WhisperSTT) -> None:
    with pytest.raises(ProviderError) as e:
        await stt.open(NB, "xx-YY")
    assert not e.value.retryable


def test_the_prompt_is_the_shops_names_only() -> None:
    assert whisper_stt._prompt(["Sunrise Bakery", "sunrise bakery", " croissant ", ""]) == "Sunrise Bakery, croissant."
    assert whisper_stt._prompt([]) == ""
    long = whisper_stt._prompt([f"item number {i}" for i in range(100)])
    assert len(long.split()) <= 60


def test_a_sentence_said_again_is_dropped() -> None:
    assert whisper_stt._no_repeats("Where is your shop? Where is your shop? Where is") == "Where is your shop?"
    assert whisper_stt._no_repeats("Hi. Hi, how are you?") == "Hi. Hi, how are you?"
    assert whisper_stt._no_repeats("no punctuation at all") == "no punctuation at all"


def test_a_repetition_loop_is_recognised() -> None:
    assert whisper_stt._loops("What street are you on? " * 4)
    assert not whisper_stt._loops("Could you tell me your opening times for Saturday?")
