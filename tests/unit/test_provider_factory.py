"""build_providers: chain order from ShopConfig.providers, keys from env or *_FILE, offline always last."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from storeagent.agent.errors import ConfigError
from storeagent.agent.metrics import AgentMetrics
from storeagent.agent.providers.answerer_ko import KoreanAnswerer
from storeagent.agent.providers.deepgram_stt import DeepgramSTT
from storeagent.agent.providers.elevenlabs_tts import ElevenLabsTTS
from storeagent.agent.providers.factory import OfflineProviders, build_providers, default_offline
from storeagent.agent.providers.openai_llm import OpenAILLM
from storeagent.agent.providers.resilience import FallbackLLM, FallbackSTT, FallbackTTS
from storeagent.agent.providers.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS
from storeagent.agent.providers.whisper_stt import WhisperSTT
from storeagent.agent.secrets import Secrets
from storeagent.shop import ShopConfig, shop_config_from_manifest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
KEY = "sk-unit-test-key-987654321"


def offline() -> OfflineProviders:
    return OfflineProviders(stt=[ScriptedSTT(name="offline")], llm=[ScriptedLLM(name="offline")],
                            tts=[ScriptedTTS(name="offline")])


def korean_shop() -> ShopConfig:
    return shop_config_from_manifest(yaml.safe_load((EXAMPLES / "gangnam-chicken.yaml").read_text()))


def test_korean_example_builds_cloud_chains_with_offline_last(tmp_path: Path) -> None:
    key_file = tmp_path / "openai"
    key_file.write_text(KEY + "\n")  # mounted Secret files end with a newline
    env = {"DEEPGRAM_API_KEY": "dg-unit-test-key-1", "OPENAI_API_KEY_FILE": str(key_file),
           "ELEVENLABS_API_KEY": "xi-unit-test-key-1"}
    p = build_providers(korean_shop(), AgentMetrics("gangnam-chicken"), secrets=Secrets.from_env(env),
                        offline=offline())
    assert isinstance(p.stt, FallbackSTT) and isinstance(p.llm, FallbackLLM) and isinstance(p.tts, FallbackTTS)
    assert [type(x) for x in p.stt.providers] == [DeepgramSTT, ScriptedSTT]
    assert [x.name for x in p.llm.providers] == ["openai", "openai-2", "offline"]  # own breaker per model
    assert [x.model for x in p.llm.providers[:2]] == ["gpt-4o-mini", "gpt-4.1-nano"]  # type: ignore[attr-defined]
    tts = p.tts.providers[0]
    assert isinstance(tts, ElevenLabsTTS) and tts.model_id == "eleven_flash_v2_5"
    assert KEY not in repr(p.llm.providers[0])


def test_missing_key_leaves_the_provider_out_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        p = build_providers(korean_shop(), AgentMetrics("s"), secrets=Secrets.from_env({}), offline=offline())
    assert [x.name for x in p.llm.providers] == ["offline"]
    assert [x.name for x in p.stt.providers] == ["offline"]
    assert "OPENAI_API_KEY" in caplog.text


def test_offline_config_needs_no_keys_and_offline_is_not_repeated() -> None:
    cfg = ShopConfig.model_validate({"store": "s", "profile": {"name": "S"},
                                     "providers": {"llm": {"name": "scripted", "fallbacks": [{"name": "offline"}]}}})
    p = build_providers(cfg, AgentMetrics("s"), secrets=Secrets(), offline=offline())
    assert [x.name for x in p.llm.providers] == ["scripted", "offline"]
    assert [x.name for x in p.tts.providers] == ["offline"]


def test_a_provider_in_the_wrong_stage_is_a_config_error_naming_the_field() -> None:
    cfg = ShopConfig.model_validate({"store": "s", "profile": {"name": "S"}, "providers": {
        "tts": {"name": "elevenlabs", "fallbacks": [{"name": "deepgram"}]}}})
    with pytest.raises(ConfigError, match=r"providers\.tts\.fallbacks\[0\]\.name: 'deepgram'"):
        build_providers(cfg, AgentMetrics("s"), secrets=Secrets(), offline=offline())


def test_no_usable_stt_for_korean_without_a_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"providers\.stt"):
        build_providers(korean_shop(), AgentMetrics("s"), secrets=Secrets(),
                        offline=OfflineProviders(stt=[], llm=[ScriptedLLM()], tts=[ScriptedTTS()]))


def test_default_offline_matches_the_shop_language() -> None:
    en = shop_config_from_manifest(yaml.safe_load((EXAMPLES / "sunrise-bakery.yaml").read_text()))
    # Whisper base (extra offline-whisper, which `make test` installs); pocketsphinx only without it
    assert [x.name for x in default_offline(en).stt] == ["whisper"]
    assert [x.name for x in default_offline(en).tts] == ["piper", "espeak"]
    ko = default_offline(korean_shop())
    # Whisper base in Korean (extra offline-whisper, which `make test` installs; vosk-ko without it), no prompt;
    # no Korean piper voice; the Korean answerer, not the scripted apology
    assert [x.name for x in ko.stt] == ["whisper"] and [x.name for x in ko.tts] == ["espeak"]
    assert isinstance(ko.stt[0], WhisperSTT) and ko.stt[0].prompt == ""
    (llm,) = ko.llm
    assert isinstance(llm, KoreanAnswerer) and llm.profile.name == "강남치킨"


def test_default_offline_without_speech_models_is_espeak_and_no_recognizer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The agent-slim image (no Whisper, pocketsphinx or piper): the shop still builds, its offline members are
    what is installed, and the STT chain ends with the hand-off line rather than an import error mid-call."""
    from storeagent.agent.providers import factory, offline_choice, whisper_stt

    monkeypatch.setattr(whisper_stt, "available", lambda: False)
    for mod in (offline_choice, factory):
        monkeypatch.setattr(mod, "installed", lambda module: False)
    en = shop_config_from_manifest(yaml.safe_load((EXAMPLES / "sunrise-bakery.yaml").read_text()))
    off = default_offline(en)
    assert off.stt == [] and [x.name for x in off.tts] == ["espeak"] and [x.name for x in off.llm] == ["offline"]


def test_openai_llm_refuses_an_empty_key() -> None:
    from storeagent.agent.errors import ProviderError

    with pytest.raises(ProviderError, match="no API key"):
        OpenAILLM("")
