"""Builds a shop's STT / LLM / TTS from `ShopConfig.providers` and the process's secrets.

Each stage becomes a Fallback* chain: the configured provider, its `fallbacks` in order, then the offline set
(always last, it needs no network nor key). A cloud provider whose key is not configured is left out with a
warning: the shop still answers, offline. Keys come only from `Secrets` (environment or `*_FILE` mounts) and
are handed to the SDK clients, never stored elsewhere.

Language matters for the offline set: pocketsphinx and piper ship English models only. A Korean shop's offline
set is Whisper base in Korean (`offline_choice.korean_stt`; vosk's Korean model wheel without the offline-whisper
extra), the Korean answerer (answerer_ko.py) and espeak-ng's Korean voice. Other languages get the vosk model
of their language when one is installed (`offline_stt_for`; without one the chain has no offline member and,
the cloud STT down, the caller hears the hand-off line before the shop's dialplan fallback) and a scripted
apology offering a message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from storeagent.agent.errors import ConfigError
from storeagent.agent.ports import LLM, STT, TTS, CallMetrics, ProviderSet
from storeagent.agent.providers.deepgram_stt import DEFAULT_BASE_URL as DEEPGRAM_URL
from storeagent.agent.providers.deepgram_stt import DeepgramSTT
from storeagent.agent.providers.elevenlabs_tts import DEFAULT_BASE_URL as ELEVENLABS_URL
from storeagent.agent.providers.elevenlabs_tts import ElevenLabsTTS
from storeagent.agent.providers.offline_choice import (
    english_stt,
    installed,
    korean_stt,
    offline_stt_for,
    primary_language,
)
from storeagent.agent.providers.openai_llm import OpenAILLM
from storeagent.agent.providers.resilience import (
    Breakers,
    Chain,
    FallbackLLM,
    FallbackSTT,
    FallbackTTS,
    RetryPolicy,
    StageTimeouts,
)
from storeagent.agent.secrets import Secret, Secrets
from storeagent.policy import PolicyError, UrlPolicy, check_url
from storeagent.shop import ProviderChoice, ShopConfig

if TYPE_CHECKING:
    from storeagent.agent.providers.answerer import Clock, ShopAnswerer

OPENAI_URL = "https://api.openai.com/v1"  # the SDK's default when baseUrl is empty
log = logging.getLogger(__name__)
P = TypeVar("P")

KEY_VARS = {"deepgram": "DEEPGRAM_API_KEY", "openai": "OPENAI_API_KEY", "elevenlabs": "ELEVENLABS_API_KEY"}
STAGE_PROVIDERS = {"stt": ("offline", "scripted", "deepgram", "speech"), "llm": ("offline", "scripted", "openai"),
                   "tts": ("offline", "scripted", "elevenlabs", "speech")}
DEFAULT_VOICE = "21m00Tcm4TlvDq8ikWAM"  # ElevenLabs' premade "Rachel"; multilingual models speak Korean with it
TAKE_A_MESSAGE = {
    "en": "I'm sorry, I can't look that up right now. I can take a message for the owner, who will call you back.",
    "ko": "죄송합니다. 지금은 확인이 어렵습니다. 사장님께 메시지를 남겨 드리면 다시 연락드리겠습니다.",
}


@dataclass(frozen=True, slots=True)
class ResilienceSettings:
    """Per-stage timeouts (seconds) and the retry/breaker policy, sized for < 1.5 s of silence after a turn.

    STT first_result: a final transcript this long after the turn ended; LLM: the first token; TTS: the first
    audio of a clause. One quick retry for retryable errors; a provider failing 3 times in a row is skipped
    for 30 s by every call of the process.
    """

    stt: StageTimeouts = field(default_factory=lambda: StageTimeouts(connect=2.0, first_result=1.0, stall=5.0))
    llm: StageTimeouts = field(default_factory=lambda: StageTimeouts(connect=2.0, first_result=1.2, stall=3.0))
    tts: StageTimeouts = field(default_factory=lambda: StageTimeouts(connect=2.0, first_result=0.8, stall=2.0))
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(attempts=2, backoff=0.1))
    breaker_failures: int = 3
    breaker_reset_seconds: float = 30.0


@dataclass(slots=True)
class OfflineProviders:
    """The last members of each chain; `default_offline` builds them from the shop, tests pass their own."""

    stt: list[STT] = field(default_factory=list)
    llm: list[LLM] = field(default_factory=list)
    tts: list[TTS] = field(default_factory=list)


def default_offline(shop: ShopConfig) -> OfflineProviders:
    # Imported here: loading the offline engines' modules pulls pocketsphinx/piper, which a cloud-only test
    # or a shop that never falls back should not pay for at import time.
    from storeagent.agent.providers.answerer import ShopAnswerer
    from storeagent.agent.providers.offline_tts import EspeakTTS, PiperTTS
    from storeagent.agent.providers.scripted import ScriptedLLM

    lang = primary_language(shop.language)
    if lang == "en":
        stt = english_offline_stt(shop)
        piper: list[TTS] = [PiperTTS()] if installed("piper") else []  # the slim agent image has no piper
        return OfflineProviders(stt=[stt] if stt else [], llm=[ShopAnswerer(shop.profile)],
                                tts=[*piper, EspeakTTS()])
    if lang == "ko":
        ko = korean_stt()
        return OfflineProviders(stt=[ko] if ko else [], llm=[offline_answerer(shop)], tts=[EspeakTTS()])
    line = TAKE_A_MESSAGE.get(lang, TAKE_A_MESSAGE["en"])
    return OfflineProviders(stt=offline_stt_for(shop.language), llm=[ScriptedLLM(line, name="offline")],
                            tts=[EspeakTTS()])


def english_offline_stt(shop: ShopConfig) -> STT | None:
    """The English offline recognizer (offline_choice.english_stt) with this shop's names and phrases."""
    from storeagent.agent.store.knowledge import caller_phrases, shop_vocabulary

    return english_stt(shop_vocabulary(shop.profile), caller_phrases(shop.profile))


def offline_answerer(shop: ShopConfig, now: Clock | None = None) -> ShopAnswerer:
    """The deterministic answerer in the shop's language: Korean (answerer_ko.py) or English."""
    from storeagent.agent.providers.answerer import ShopAnswerer
    from storeagent.agent.providers.answerer_ko import KoreanAnswerer

    cls = KoreanAnswerer if primary_language(shop.language) == "ko" else ShopAnswerer
    return cls(shop.profile) if now is None else cls(shop.profile, now=now)


def _key(secrets: Secrets, provider: str) -> Secret | None:
    secret = secrets.get(KEY_VARS[provider])
    if secret is None:
        log.warning("%s is configured but %s (or %s_FILE) is not set: left out of the chain",
                    provider, KEY_VARS[provider], KEY_VARS[provider])
    return secret


def _choices(stage: str, choice: ProviderChoice) -> list[tuple[str, ProviderChoice]]:
    """The configured provider then its fallbacks (depth-first), each tagged with its config path."""
    out: list[tuple[str, ProviderChoice]] = []

    def walk(path: str, c: ProviderChoice) -> None:
        if c.name not in STAGE_PROVIDERS[stage]:
            raise ConfigError(f"{path}.name: {c.name!r} is not a {stage} provider "
                              f"(one of {', '.join(STAGE_PROVIDERS[stage])})")
        out.append((path, c))
        for i, f in enumerate(c.fallbacks):
            walk(f"{path}.fallbacks[{i}]", f)

    walk(f"providers.{stage}", choice)
    return out


def _unique(name: str, taken: set[str]) -> str:
    """Distinct names per chain, so a secondary model has its own breaker and metric label."""
    n, i = name, 2
    while n in taken:
        n, i = f"{name}-{i}", i + 1
    taken.add(n)
    return n


def _chain_members(stage: str, choice: ProviderChoice, offline: Sequence[P],
                   make: Callable[[ProviderChoice, str], P | None]) -> list[P]:
    members: list[P] = []
    taken: set[str] = set()
    offline_added = False
    for _path, c in _choices(stage, choice):
        if c.name == "offline":
            if not offline_added:
                members.extend(offline)
                offline_added = True
            continue
        built = make(c, _unique(c.name, taken))
        if built is not None:
            members.append(built)
    if not offline_added:
        members.extend(offline)
    return members


def build_providers(shop: ShopConfig, metrics: CallMetrics, *, secrets: Secrets | None = None,
                    offline: OfflineProviders | None = None,
                    resilience: ResilienceSettings | None = None,
                    url_policy: UrlPolicy | None = None, speech_url: str = "") -> ProviderSet:
    """The shop's three provider chains; raises ConfigError naming the field for an impossible config.

    With `url_policy` (the agent process always passes the platform's), every baseUrl is checked now and
    every connection's resolved address when it is made (agent/netguard.py). `speech_url` is the platform's
    speech service (STOREAGENT_SPEECH_URL); a shop choosing `speech` without one runs on its fallbacks."""
    from storeagent.agent.providers.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS

    secrets = Secrets.from_env() if secrets is None else secrets
    res = resilience or ResilienceSettings()
    off = default_offline(shop) if offline is None else offline
    lang = primary_language(shop.language)
    p = shop.providers

    def checked(c: ProviderChoice, stage: str, default: str) -> str:
        if url_policy is not None:
            try:
                check_url(c.base_url or default, url_policy, f"providers.{stage}.baseUrl")
            except PolicyError as e:
                raise ConfigError(str(e)) from None
        return c.base_url

    def no_speech() -> bool:
        log.warning("speech is configured but the platform set no speech service (STOREAGENT_SPEECH_URL): "
                    "left out of the chain")
        return False

    def make_stt(c: ProviderChoice, name: str) -> STT | None:
        if c.name == "scripted":
            return ScriptedSTT(name=name)
        if c.name == "speech":
            if not speech_url and not no_speech():
                return None
            from storeagent.agent.providers.speech import SpeechSTT
            from storeagent.agent.store.knowledge import caller_phrases, shop_vocabulary

            # Both: the service picks its recognizer (pocketsphinx takes the phrases, Whisper the names).
            return SpeechSTT(speech_url, caller_phrases(shop.profile), vocabulary=shop_vocabulary(shop.profile),
                             name=name)
        key = _key(secrets, "deepgram")
        if key is None:
            return None
        return DeepgramSTT(key.reveal(), model=c.model, base_url=checked(c, "stt", DEEPGRAM_URL),
                           url_policy=url_policy)

    def make_llm(c: ProviderChoice, name: str) -> LLM | None:
        if c.name == "scripted":
            return ScriptedLLM(TAKE_A_MESSAGE.get(lang, TAKE_A_MESSAGE["en"]), name=name)
        key = _key(secrets, "openai")
        if key is None:
            return None
        return OpenAILLM(key.reveal(), model=c.model, base_url=checked(c, "llm", OPENAI_URL), name=name,
                         url_policy=url_policy)

    def make_tts(c: ProviderChoice, name: str) -> TTS | None:
        if c.name == "scripted":
            return ScriptedTTS(name=name)
        if c.name == "speech":
            if not speech_url and not no_speech():
                return None
            from storeagent.agent.providers.speech import SpeechTTS

            return SpeechTTS(speech_url, name=name)
        key = _key(secrets, "elevenlabs")
        if key is None:
            return None
        return ElevenLabsTTS(key.reveal(), voice_id=c.voice or DEFAULT_VOICE, model_id=c.model,
                             base_url=checked(c, "tts", ELEVENLABS_URL), url_policy=url_policy)

    def chain(stage: str, timeouts: StageTimeouts) -> Chain:
        return Chain(stage, metrics, timeouts, res.retry, Breakers(res.breaker_failures, res.breaker_reset_seconds))

    stt = _chain_members("stt", p.stt, off.stt, make_stt)
    llm = _chain_members("llm", p.llm, off.llm, make_llm)
    tts = _chain_members("tts", p.tts, off.tts, make_tts)
    for stage, count in (("stt", len(stt)), ("llm", len(llm)), ("tts", len(tts))):
        if not count:
            raise ConfigError(f"providers.{stage}: no usable provider for language {shop.language!r} "
                              f"(set {KEY_VARS[STAGE_PROVIDERS[stage][2]]} or choose another provider)")
    return ProviderSet(stt=FallbackSTT(stt, chain("stt", res.stt)), llm=FallbackLLM(llm, chain("llm", res.llm)),
                       tts=FallbackTTS(tts, chain("tts", res.tts)))
