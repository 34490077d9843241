"""Which engine serves a stream inside a worker: the agent's own offline providers, through their ports.

The service runs the same `STT`/`TTS` implementations an agent runs in-process, chosen the same way
(agent/providers/offline_choice.offline_stt): English is Whisper base with the shop's names as its prompt when the
`offline-whisper` extra is installed, else pocketsphinx with the shop's phrase model; Korean is Whisper in Korean
(no prompt), else vosk's Korean model; no engine installed for the language: a non-retryable `unsupported`.
Engines are built once per worker and shared by every stream it serves (models load once per worker process, and
Whisper's weights once for all its shops).
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Sequence

from storeagent.agent.errors import ProviderError
from storeagent.agent.ports import STT, TTS
from storeagent.agent.providers.offline_choice import offline_stt

log = logging.getLogger(__name__)
MAX_SHOP_MODELS = 32  # per-shop recognizers kept per worker (pocketsphinx: a small trigram model + decoder pool)
WHISPER_THREADS = 1  # decodes in flight per worker process: the pool runs one worker per CPU, so one each


def primary(language: str) -> str:
    return language.split("-")[0].lower()


class Engines:
    """Per-worker engine cache: one STT per (language, phrase set), one TTS list per language."""

    def __init__(self) -> None:
        self._stt: OrderedDict[str, STT] = OrderedDict()
        self._tts: dict[str, list[TTS]] = {}

    def stt(self, language: str, phrases: Sequence[str], vocabulary: Sequence[str] = ()) -> STT:
        lang = primary(language)
        key = hashlib.sha256("\x00".join([lang, *sorted(set(phrases)), "\x01", *sorted(set(vocabulary))])
                             .encode()).hexdigest()
        stt = self._stt.get(key)
        if stt is None:
            stt = self._build(lang, phrases, vocabulary)
            self._stt[key] = stt
            while len(self._stt) > MAX_SHOP_MODELS:
                self._stt.popitem(last=False)
        self._stt.move_to_end(key)
        return stt

    @staticmethod
    def _build(lang: str, phrases: Sequence[str], vocabulary: Sequence[str]) -> STT:
        stt = offline_stt(lang, vocabulary, phrases, workers=WHISPER_THREADS)
        if stt is None:
            raise ProviderError("speech", "bad_request", f"no offline recognizer installed for {lang!r}",
                                retryable=False)
        return stt

    def tts(self, language: str) -> list[TTS]:
        """Voices in order of preference: the next is used when one cannot open (a missing model)."""
        lang = primary(language)
        if lang not in self._tts:
            from storeagent.agent.providers.offline_tts import EspeakTTS, PiperTTS

            self._tts[lang] = [PiperTTS(), EspeakTTS()] if lang == "en" else [EspeakTTS()]
        return self._tts[lang]

    def warm_up(self) -> None:
        """Load the English models before the worker takes streams (blocking; the worker runs it first)."""
        from storeagent.agent.providers.offline_stt import PocketsphinxSTT
        from storeagent.agent.providers.offline_tts import PiperTTS
        from storeagent.agent.providers.whisper_stt import WhisperSTT

        stt = self.stt("en-US", ())
        if isinstance(stt, PocketsphinxSTT | WhisperSTT):
            stt.warm_up()
        for tts in self.tts("en-US"):
            if isinstance(tts, PiperTTS):
                # One sentence through the voice: onnxruntime sizes its buffers on the first run (~1 s here),
                # which would otherwise land on the first caller's greeting and miss the agent's first-audio deadline.
                for _ in tts.load().synthesize("Hello."):
                    pass
