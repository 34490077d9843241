"""Which offline recognizer serves a language: one place, for the agent's in-process chain (factory.py) and for
the speech service's workers (storeagent/speech/engines.py), so both run the same engine for the same shop.

English: Whisper base with the shop's names as its prompt when the `offline-whisper` extra is installed
(docs/benchmarks.md "Quality"), else pocketsphinx with the shop's phrase model. Korean: Whisper base in Korean
without a prompt when installed, else vosk-ko (`korean_stt`). Other languages: vosk with its
packaged model when installed, else nothing (the chain ends with the hand-off line). Nothing here reads the
shop: callers pass its vocabulary (names) and phrases (sentences) in, which keeps this module importable by the
speech service without the shop store.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence

from storeagent.agent.ports import STT

log = logging.getLogger(__name__)


def primary_language(language: str) -> str:
    return language.split("-")[0].lower()


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def english_stt(vocabulary: Sequence[str], phrases: Sequence[str], *, workers: int = 2) -> STT | None:
    """Whisper when installed, else pocketsphinx, else none (the slim agent image: its shops use the speech
    service, and with the service down the STT chain ends with the hand-off line). One recognizer, not a chain of
    both: a member that is not last must give its final within the STT stage's 1 s, and a loaded box would push a
    Whisper decode past that onto pocketsphinx for the rest of the call — worse than waiting for the better words."""
    from storeagent.agent.providers import whisper_stt

    if whisper_stt.available():
        return whisper_stt.WhisperSTT(vocabulary, workers=workers)
    if not installed("pocketsphinx"):
        log.info("no offline English recognizer installed (neither Whisper nor pocketsphinx): the STT chain "
                 "ends with the hand-off line")
        return None
    from storeagent.agent.providers.offline_stt import PocketsphinxSTT

    log.info("faster-whisper or its model wheels are not installed (extra offline-whisper): offline STT is "
             "pocketsphinx")
    return PocketsphinxSTT(list(phrases))


def korean_stt(*, workers: int = 2) -> STT | None:
    """Whisper base in Korean, without the shop's names as a prompt, when installed; else vosk-ko; else none.
    On the Korean set Whisper's character error rate is 0.87 against vosk-ko's 1.13, and with the prompt it writes
    the prompt back as the transcript on unclear audio ("콜라, 서울특별시 강남구 ..." for a goodbye), which the
    answerer would then answer: docs/benchmarks.md "Korean offline"."""
    from storeagent.agent.providers import whisper_stt

    if whisper_stt.available():
        return whisper_stt.WhisperSTT(workers=workers)
    vosk = offline_stt_for("ko")
    return vosk[0] if vosk else None


def offline_stt(language: str, vocabulary: Sequence[str] = (), phrases: Sequence[str] = (), *,
                workers: int = 2) -> STT | None:
    """The one offline recognizer for a language, as the agent's chain and the speech service both pick it."""
    lang = primary_language(language)
    if lang == "en":
        return english_stt(vocabulary, phrases, workers=workers)
    if lang == "ko":
        return korean_stt(workers=workers)
    other = offline_stt_for(lang)
    return other[0] if other else None


def offline_stt_for(language: str) -> list[STT]:
    """The offline recognizer for a non-English shop when one is installed (vosk + its model wheel), else none."""
    try:
        from storeagent.agent.providers import vosk_stt  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return []
    if not vosk_stt.available(language):
        log.info("no offline STT model installed for %s: the STT chain ends with the hand-off line", language)
        return []
    stt: STT = vosk_stt.VoskSTT(language=primary_language(language))
    return [stt]
