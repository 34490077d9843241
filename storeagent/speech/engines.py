"""Which engine serves a stream inside a worker: the agent's own offline providers, through their ports.

The service runs the same `STT`/`TTS` implementations an agent runs in-process (agent/providers/offline_*.py):
whatever engine the offline providers use, the service runs it unchanged. This module is the one place that
picks them; engines are built once per worker and shared by every stream it serves (models load once).
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Sequence

from storeagent.agent.errors import ProviderError
from storeagent.agent.ports import STT, TTS

log = logging.getLogger(__name__)
MAX_SHOP_MODELS = 32  # per-shop vocabularies kept per worker (each is a small trigram model + a decoder pool)


def primary(language: str) -> str:
    return language.split("-")[0].lower()


class Engines:
    """Per-worker engine cache: one STT per (language, phrase set), one TTS list per language."""

    def __init__(self) -> None:
        self._stt: OrderedDict[str, STT] = OrderedDict()
        self._tts: dict[str, list[TTS]] = {}

    def stt(self, language: str, phrases: Sequence[str]) -> STT:
        if primary(language) != "en":
            raise ProviderError("speech", "bad_request", f"no offline recognizer for {language!r}", retryable=False)
        key = hashlib.sha256("\n".join(sorted(set(phrases))).encode()).hexdigest()
        stt = self._stt.get(key)
        if stt is None:
            from storeagent.agent.providers.offline_stt import PocketsphinxSTT

            stt = PocketsphinxSTT(list(phrases))
            self._stt[key] = stt
            while len(self._stt) > MAX_SHOP_MODELS:
                self._stt.popitem(last=False)
        self._stt.move_to_end(key)
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

        stt = self.stt("en-US", ())
        if isinstance(stt, PocketsphinxSTT):
            stt.warm_up()
        for tts in self.tts("en-US"):
            if isinstance(tts, PiperTTS):
                tts.load()
