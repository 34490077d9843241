"""Caller audio for the evaluation: synthesized at bench time (cached), through the phone's 8 kHz µ-law path.

Voices: piper's joe voice at two speaking rates and espeak-ng's English variants (male, female, British), and
espeak-ng's Korean voice for the Korean shop. Each utterance is rendered at 16 kHz, band-limited to 8 kHz,
G.711 µ-law encoded and decoded (what a PSTN call does to speech), optionally with background noise mixed in
before the codec at a fixed SNR. Cache: ~/.cache/storeagent/bench-quality/ (keyed by voice, text, version).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from storeagent.agent.ports import AudioFormat
from storeagent.agent.providers.offline_tts import EspeakTTS, PiperTTS
from storeagent.agent.transport.codec import resample, ulaw_decode, ulaw_encode

CACHE = Path(os.environ.get("STOREAGENT_BENCH_CACHE", Path.home() / ".cache/storeagent/bench-quality"))
RATE = 8000
_VERSION = "1"


@dataclass(frozen=True, slots=True)
class Voice:
    name: str
    engine: str  # "piper" or "espeak"
    espeak_voice: str = ""
    wpm: int = 160
    length_scale: float = 1.0


EN_VOICES = [Voice("piper-joe", "piper"), Voice("piper-joe-fast", "piper", length_scale=0.85),
             Voice("espeak-us-m", "espeak", "en-us", 165), Voice("espeak-us-f", "espeak", "en-us+f3", 150),
             Voice("espeak-gb-m", "espeak", "en-gb+m3", 175)]
KO_VOICES = [Voice("espeak-ko", "espeak", "ko", 150), Voice("espeak-ko-f", "espeak", "ko+f2", 140)]


def voice_for(index: int, language: str) -> Voice:
    voices = KO_VOICES if language.startswith("ko") else EN_VOICES
    return voices[index % len(voices)]


async def _render(voice: Voice, text: str, rate: int) -> bytes:
    fmt = AudioFormat(rate)
    if voice.engine == "piper":
        session = await PiperTTS(length_scale=voice.length_scale, noise_scale=0.5, noise_w_scale=0.6,
                                 volume=0.7).open(fmt, "en-US")
    else:
        session = await EspeakTTS(words_per_minute=voice.wpm, voice=voice.espeak_voice).open(fmt, "en-US")
    pcm = bytearray()
    async for chunk in session.synthesize(text):
        pcm += chunk
    return bytes(pcm)


def clean(voice: Voice, text: str) -> bytes:
    """The utterance at 16 kHz L16 as the voice speaks it (cached)."""
    key = hashlib.sha1(f"{_VERSION}|{voice}|{text}".encode()).hexdigest()[:20]
    path = CACHE / f"{key}.raw"
    if path.exists():
        return path.read_bytes()
    pcm = asyncio.run(_render(voice, text, 16000))
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pcm)
    tmp.replace(path)
    return pcm


def _samples(pcm: bytes) -> npt.NDArray[np.float64]:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


def noise(kind: str, n: int, seed: int, babble: list[bytes]) -> npt.NDArray[np.float64]:
    """Street (brown-ish rumble + hiss) or babble (other callers' speech, reversed so no words are
    recognizable), unit RMS."""
    rng = np.random.default_rng(seed)
    if kind == "babble" and babble:
        out = np.zeros(n)
        for k in range(3):
            other = _samples(babble[(seed + k) % len(babble)])[::-1]
            if len(other) == 0:
                continue
            reps = np.tile(other, n // len(other) + 1)[:n]
            out += np.roll(reps, int(rng.integers(0, max(1, n))))
    else:
        white = rng.standard_normal(n)
        brown = np.cumsum(white)
        brown -= np.convolve(brown, np.ones(400) / 400, mode="same")  # drop the DC drift
        out = brown / (np.std(brown) + 1e-9) + 0.3 * white
    return out / (np.sqrt(np.mean(out**2)) + 1e-9)


def phone(pcm16k: bytes, *, noise_kind: str | None = None, snr_db: float = 12.0, seed: int = 0,
          babble: list[bytes] | None = None, lead_ms: int = 300, tail_ms: int = 700) -> bytes:
    """16 kHz speech -> 8 kHz L16 after the µ-law round trip, padded with silence (noise) either side."""
    x = _samples(resample(pcm16k, 16000, RATE))
    pad = np.zeros(RATE * lead_ms // 1000), np.zeros(RATE * tail_ms // 1000)
    x = np.concatenate([pad[0], x, pad[1]])
    if noise_kind:
        voiced = x[np.abs(x) > 0.02 * (np.max(np.abs(x)) + 1e-9)]
        speech_rms = np.sqrt(np.mean(voiced**2)) if len(voiced) else 1000.0
        x = x + noise(noise_kind, len(x), seed, babble or []) * speech_rms / (10 ** (snr_db / 20))
    pcm = np.clip(x, -32768, 32767).astype("<i2").tobytes()
    return ulaw_decode(ulaw_encode(pcm))
