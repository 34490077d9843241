"""Offline providers for real: piper and espeak-ng speak, pocketsphinx hears, the resampler keeps the band.

The round trip (piper text -> audio -> pocketsphinx text) is what `make demo` does with the caller's questions.
"""

from __future__ import annotations

import asyncio
import math
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from storeagent.agent.errors import ProviderError
from storeagent.agent.ports import AudioFormat, STTStream, Transcript
from storeagent.agent.providers._resample import StreamResampler, resample
from storeagent.agent.providers.offline_stt import PocketsphinxSTT
from storeagent.agent.providers.offline_tts import EspeakTTS, PiperTTS, espeak_voice
from storeagent.agent.store.knowledge import caller_phrases
from storeagent.shop import shop_config_from_manifest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sunrise-bakery.yaml"
WB = AudioFormat(16000)


def tone(freq: float, rate: int, seconds: float = 1.0) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (8000 * np.sin(2 * math.pi * freq * t)).astype("<i2").tobytes()


def rms(pcm: bytes) -> float:
    x = np.frombuffer(pcm, "<i2").astype(np.float64)
    return float(np.sqrt(np.mean(x * x))) if len(x) else 0.0


# ----------------------------------------------------------------------------------------------- resampler
@pytest.mark.parametrize(("src", "dst"), [(22050, 8000), (22050, 16000), (8000, 16000), (16000, 8000)])
def test_resample_keeps_length_and_passband(src: int, dst: int) -> None:
    out = resample(tone(440, src), src, dst)
    assert len(out) == dst * 2
    y = np.frombuffer(out, "<i2")
    assert np.abs(np.fft.rfft(y)).argmax() == 440  # 1 s: bin index = Hz
    assert 0.95 < rms(out) / rms(tone(440, src)) < 1.05


def test_resample_rejects_above_new_nyquist() -> None:
    out = np.frombuffer(resample(tone(5000, 22050), 22050, 8000), "<i2")[200:-200]
    assert np.abs(out).max() < 100  # 5 kHz would alias to 3 kHz at 8 kHz


def test_streaming_resample_equals_one_shot() -> None:
    pcm = tone(300, 8000, 0.5) + tone(1200, 8000, 0.5)
    r = StreamResampler(8000, 16000)
    streamed = b"".join(r.push(pcm[i : i + 320]) for i in range(0, len(pcm), 320)) + r.flush()
    assert streamed == resample(pcm, 8000, 16000)


# -------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def piper() -> PiperTTS:
    tts = PiperTTS(noise_scale=0.0, noise_w_scale=0.0)  # no sampling noise: the same audio on every run
    tts.load()
    return tts


@pytest.fixture(scope="module")
def stt() -> PocketsphinxSTT:
    cfg = shop_config_from_manifest(yaml.safe_load(EXAMPLE.read_text()))
    s = PocketsphinxSTT(caller_phrases(cfg.profile))
    s.warm_up()
    return s


async def speak(tts: PiperTTS | EspeakTTS, text: str, fmt: AudioFormat = WB) -> list[bytes]:
    session = await tts.open(fmt, "en-US")
    return [pcm async for pcm in session.synthesize(text)]


async def hear(stt: PocketsphinxSTT, pcm: bytes, fmt: AudioFormat = WB) -> str:
    stream = await stt.open(fmt, "en-US")
    events = stream.events()
    for i in range(0, len(pcm), fmt.frame_bytes):  # 20 ms frames, like the uplink
        await stream.send(pcm[i : i + fmt.frame_bytes])
    await stream.finalize()
    final = await anext(e async for e in events if isinstance(e, Transcript) and e.is_final)
    await stream.aclose()
    return final.text


# ------------------------------------------------------------------------------------------------------ TTS
async def test_piper_speaks_at_the_call_rate(piper: PiperTTS) -> None:
    for fmt in (AudioFormat(8000), WB):
        chunks = await speak(piper, "We open at eight.", fmt)
        audio = b"".join(chunks)
        seconds = len(audio) / 2 / fmt.sample_rate
        assert 0.5 < seconds < 3.0 and rms(audio) > 500
        assert all(len(c) % 2 == 0 for c in chunks)
    assert await speak(piper, "   ") == []


async def test_offline_tts_is_english_only(piper: PiperTTS) -> None:
    with pytest.raises(ProviderError) as e:
        await piper.open(WB, "ko-KR")
    assert e.value.retryable is False


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (.ci/apt-packages.txt)")
async def test_espeak_streams_wav_from_stdin_text() -> None:
    audio = b"".join(await speak(EspeakTTS(), "-v is not an option here", AudioFormat(8000)))
    assert len(audio) / 2 / 8000 > 0.8 and rms(audio) > 300
    assert espeak_voice("en-US") == "en-us" and espeak_voice("ko-KR") == "ko"


async def test_espeak_missing_binary_is_permanent() -> None:
    with pytest.raises(ProviderError) as e:
        await EspeakTTS(binary="no-such-espeak").open(WB, "en-US")
    assert e.value.retryable is False


async def test_espeak_cancel_kills_the_process() -> None:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    session = await EspeakTTS().open(WB, "en-US")
    gen = session.synthesize("a long sentence " * 40)
    assert await anext(gen)
    await gen.aclose()  # what a barge-in does to the clause being spoken
    # no child left behind: asyncio has reaped it (the finally waited)
    await asyncio.sleep(0)


# ------------------------------------------------------------------------------------------------------ STT
async def test_stt_rejects_other_languages(stt: PocketsphinxSTT) -> None:
    with pytest.raises(ProviderError) as e:
        await stt.open(WB, "ko")
    assert e.value.retryable is False and e.value.kind == "bad_request"


async def test_stt_silence_gives_empty_final(stt: PocketsphinxSTT) -> None:
    assert await hear(stt, bytes(WB.frame_bytes * 25)) == ""


@pytest.mark.parametrize(
    "question",
    ["where are you located", "how much is the sourdough loaf", "what time do you open on saturday",
     "can i talk to a person"],
)
async def test_piper_to_pocketsphinx_round_trip(piper: PiperTTS, stt: PocketsphinxSTT, question: str) -> None:
    audio = b"".join(await speak(piper, question))
    assert await hear(stt, audio) == question


async def test_one_stream_serves_several_utterances(piper: PiperTTS, stt: PocketsphinxSTT) -> None:
    stream = await stt.open(WB, "en-US")
    events = stream.events()
    finals = []
    for q in ("are you open now", "thank you goodbye"):
        audio = b"".join(await speak(piper, q))
        for i in range(0, len(audio), WB.frame_bytes):
            await stream.send(audio[i : i + WB.frame_bytes])
        await stream.finalize()
        finals.append(await anext(e async for e in events if isinstance(e, Transcript) and e.is_final))
    await stream.aclose()
    assert [f.text for f in finals] == ["are you open now", "thank you goodbye"]
    assert [e async for e in events] == []  # closed: the iterator ends
    assert stream.decode_seconds > 0


async def test_general_model_keeps_out_of_domain_words(piper: PiperTTS, stt: PocketsphinxSTT) -> None:
    audio = b"".join(await speak(piper, "is there a bathroom"))
    assert await hear(stt, audio) == "is there a bathroom"


async def test_cancelled_send_then_close_returns_a_usable_decoder(piper: PiperTTS, stt: PocketsphinxSTT) -> None:
    audio = b"".join(await speak(piper, "are you open now"))
    stream = await stt.open(WB, "en-US")
    task = asyncio.create_task(stream.send(audio * 3))  # one big batch: the decode runs on a worker thread
    await asyncio.sleep(0.01)
    task.cancel()  # a hang-up: the worker thread finishes on its own, the decoder must not be reused under it
    await asyncio.gather(task, return_exceptions=True)
    await stream.aclose()
    assert await hear(stt, audio) == "are you open now"


async def test_interim_hypotheses_when_enabled(piper: PiperTTS) -> None:
    stt = PocketsphinxSTT(interim=True)
    audio = b"".join(await speak(piper, "can i talk to a person"))
    stream = await stt.open(WB, "en-US")
    events = stream.events()
    for i in range(0, len(audio), WB.frame_bytes):
        await stream.send(audio[i : i + WB.frame_bytes])
    await stream.finalize()
    await stream.aclose()
    got = [e async for e in events if isinstance(e, Transcript)]
    assert any(not e.is_final for e in got) and got[-1].is_final


async def test_vosk_korean_model_hears_korean_speech_at_8khz() -> None:
    """The packaged Korean model loads from the wheel (no download) and decodes Korean speech at 8 kHz into Hangul.
    Only that: espeak-ng's Korean voice is too unnatural for the model to get the words right (docs/benchmarks.md)."""
    from storeagent.agent.providers.vosk_stt import VoskSTT

    fmt = AudioFormat(8000)
    tts = await EspeakTTS(words_per_minute=140).open(fmt, "ko-KR")
    pcm = b"".join([chunk async for chunk in tts.synthesize("토요일 몇 시")]) + b"\0" * 8000
    stt = VoskSTT(language="ko")
    stream = await stt.open(fmt, "ko-KR")
    for i in range(0, len(pcm), 320):
        await stream.send(pcm[i : i + 320])
    await stream.finalize()
    finals = [ev async for ev in _first_final(stream)]
    await stream.aclose()
    assert finals and any("\uac00" <= ch <= "\ud7a3" for ch in finals[0]), finals
    with pytest.raises(ProviderError):
        await stt.open(fmt, "en-US")


async def _first_final(stream: STTStream) -> AsyncIterator[str]:
    async for ev in stream.events():
        if isinstance(ev, Transcript) and ev.is_final:
            yield ev.text
            return
