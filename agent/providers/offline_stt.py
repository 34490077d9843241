"""PocketsphinxSTT: offline streaming speech recognition with the English model in the pocketsphinx wheel.

Audio is resampled to the model's 16 kHz and fed to the decoder in ~200 ms batches on a worker thread
(decoding is CPU-bound; the event loop must keep serving other calls). `finalize()` ends the utterance and
emits the final Transcript; the next `send()` starts a new one, so one stream serves a whole call.

Shop vocabulary: given `phrases` (what callers of this shop say: `knowledge.caller_phrases`), a small trigram
model is built from them and a second decoder runs on it. Its hypothesis wins when it scores clearly better
than the general model's (in-domain questions: "sourdough", "croissants", "saturday" come out right); otherwise
the general model's words are kept, so out-of-domain speech is not forced into menu words.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import threading
import time
import weakref
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from io import StringIO

from pocketsphinx import Decoder
from pocketsphinx.lm import ArpaBoLM

from storeagent.agent.errors import ProviderError
from storeagent.agent.ports import AudioFormat, STTEvent, Transcript
from storeagent.agent.providers._resample import StreamResampler

log = logging.getLogger(__name__)

MODEL_RATE = 16000
_BATCH_BYTES = MODEL_RATE * 2 // 5  # 200 ms at 16 kHz: few thread hops, still incremental


@dataclass(slots=True)
class _Decoders:
    general: Decoder
    domain: Decoder | None


class PocketsphinxSTT:
    """The offline STT port. Decoders are pooled: building one reads the acoustic model (~0.5 s)."""

    def __init__(self, phrases: Sequence[str] = (), *, domain_margin: float = 0.03, interim: bool = False,
                 max_idle: int = 4) -> None:
        self.name = "pocketsphinx"
        self.phrases = [p.lower() for p in phrases if p.strip()]
        self.domain_margin = domain_margin  # how much better the shop model must score to be believed
        self.interim = interim
        self.max_idle = max_idle
        self._pool: list[_Decoders] = []
        self._lock = threading.Lock()
        self._lm_path: str | None = None
        self._dict_path: str | None = None

    async def open(self, fmt: AudioFormat, language: str) -> PocketsphinxStream:
        if not language.lower().startswith("en"):
            raise ProviderError(self.name, "bad_request", f"only English is available offline, not {language!r}",
                                retryable=False)
        try:
            decoders = await asyncio.to_thread(self._acquire)
        except RuntimeError as e:  # the model failed to load: a retry will not fix it
            raise ProviderError(self.name, "server", f"decoder init failed: {e}", retryable=False) from e
        return PocketsphinxStream(self, decoders, fmt)

    def warm_up(self) -> None:
        """Build one decoder set ahead of the first call (blocking; run it off the loop)."""
        self.release(self._acquire())

    # ---------------------------------------------------------------- pool (worker threads)
    def _acquire(self) -> _Decoders:
        with self._lock:
            if self._pool:
                return self._pool.pop()
            general = Decoder(loglevel="FATAL")
            domain = None
            if self.phrases:
                if self._lm_path is None:
                    self._lm_path, self._dict_path = self._build_lm(general)
                # a dictionary of just the shop's words: loading the full one would cost ~1 s per decoder
                domain = Decoder(lm=self._lm_path, dict=self._dict_path, loglevel="FATAL")
        return _Decoders(general, domain)

    def release(self, decoders: _Decoders) -> None:
        with self._lock:
            if len(self._pool) < self.max_idle:
                self._pool.append(decoders)

    def _build_lm(self, general: Decoder) -> tuple[str, str]:
        """Writes the shop's trigram model and its dictionary; unknown words get a compound pronunciation
        ("sourdough" = "sour" + "dough": no grapheme-to-phoneme here) or are dropped."""
        prons: dict[str, str | None] = {}

        def pron(word: str) -> str | None:
            if word not in prons:
                prons[word] = general.lookup_word(word) or _compound(general, word)
            return prons[word]

        sentences = [" ".join(w for w in p.replace("-", " ").split() if pron(w)) for p in self.phrases]
        lm = ArpaBoLM(text="\n".join(s for s in sentences if s), add_start=True, case="lower")
        lm.compute()
        out = StringIO()
        lm.write(out)
        lines = sorted(f"{w} {ph}" for w, ph in prons.items() if ph)
        return self._temp(".arpa", out.getvalue()), self._temp(".dict", "\n".join(lines) + "\n")

    def _temp(self, suffix: str, text: str) -> str:
        fd, path = tempfile.mkstemp(prefix="storeagent-shop-", suffix=suffix)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        weakref.finalize(self, _unlink, path)
        return path


def _compound(general: Decoder, word: str) -> str | None:
    for i in range(3, len(word) - 2):
        a, b = general.lookup_word(word[:i]), general.lookup_word(word[i:])
        if a and b:
            return f"{a} {b}"
    return None


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class PocketsphinxStream:
    """One call's recognizer: `send` batches audio to the decoder thread, `finalize` ends the utterance."""

    def __init__(self, owner: PocketsphinxSTT, decoders: _Decoders, fmt: AudioFormat) -> None:
        self._owner = owner
        self._dec: _Decoders | None = decoders
        self._resampler = StreamResampler(fmt.sample_rate, MODEL_RATE)
        self._pending = bytearray()
        self._lock = asyncio.Lock()  # one decoder operation at a time, in call order
        # a cancelled await leaves its worker thread running: the decoder itself needs a thread lock too
        self._tlock = threading.Lock()
        self._in_utt = False
        self._last_interim = ""
        self._events: asyncio.Queue[STTEvent | None] = asyncio.Queue()
        self.decode_seconds = 0.0  # CPU time spent in the decoder thread (benchmarks and the report)

    async def send(self, pcm: bytes) -> None:
        if self._dec is None:
            return
        self._pending += self._resampler.push(pcm)
        if len(self._pending) >= _BATCH_BYTES:
            async with self._lock:
                chunk, self._pending = bytes(self._pending), bytearray()
                interim = await asyncio.to_thread(self._feed, chunk)
            if interim is not None:
                self._events.put_nowait(Transcript(interim, is_final=False))

    async def finalize(self) -> None:
        if self._dec is None:
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
            dec, self._dec = self._dec, None
            if dec is not None:
                await asyncio.to_thread(self._retire, dec)
        self._events.put_nowait(None)

    # ---------------------------------------------------------------- worker-thread side
    def _retire(self, dec: _Decoders) -> None:
        with self._tlock:
            if self._in_utt:
                self._end_utt(dec)
        self._owner.release(dec)

    def _feed(self, pcm: bytes) -> str | None:
        with self._tlock:
            return self._feed_locked(pcm)

    def _feed_locked(self, pcm: bytes) -> str | None:
        dec = self._dec
        if dec is None:
            return None
        t0 = time.thread_time()
        for d in (dec.general, dec.domain):
            if d is None:
                continue
            if not self._in_utt:
                d.start_utt()
            d.process_raw(pcm, False, False)
        self._in_utt = True
        interim = None
        if self._owner.interim:
            hyp = dec.general.hyp()
            text = hyp.hypstr if hyp is not None else ""
            if text and text != self._last_interim:
                self._last_interim = interim = text
        self.decode_seconds += time.thread_time() - t0
        return interim

    def _end(self, tail: bytes) -> str:
        with self._tlock:
            return self._end_locked(tail)

    def _end_locked(self, tail: bytes) -> str:
        dec = self._dec
        if dec is None:
            return ""
        if tail:
            self._feed_locked(tail)
        if not self._in_utt:
            return ""
        t0 = time.thread_time()
        text = self._end_utt(dec)
        self.decode_seconds += time.thread_time() - t0
        return text

    def _end_utt(self, dec: _Decoders) -> str:
        self._in_utt = False
        dec.general.end_utt()
        hyp = dec.general.hyp()
        text, score = (hyp.hypstr, hyp.score) if hyp is not None else ("", 0.0)
        if dec.domain is not None:
            dec.domain.end_utt()
            dhyp = dec.domain.hyp()
            if dhyp is not None and dhyp.hypstr and (not text or dhyp.score > score + self._owner.domain_margin):
                log.debug("shop model wins: %r (%.3f) over %r (%.3f)", dhyp.hypstr, dhyp.score, text, score)
                return str(dhyp.hypstr)
        return str(text)
