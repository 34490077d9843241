"""Start-up warm-up (agent/__main__.py): every installed TTS of the chain has its voice loaded and the end-of-turn
model is loaded before the first call (the first call after a start once lost its greeting to
`tts provider piper failed: timeout` while the voice loaded)."""

from __future__ import annotations

import pytest

from storeagent.agent.__main__ import warm_up
from storeagent.agent.metrics import AgentMetrics
from storeagent.agent.providers import smart_turn
from storeagent.agent.providers.factory import build_providers
from storeagent.agent.providers.offline_choice import installed
from storeagent.agent.providers.offline_tts import PiperTTS
from storeagent.agent.secrets import Secrets
from support.agent_harness import bakery


async def test_warm_up_loads_the_voices_and_the_turn_model() -> None:
    if not installed("piper"):
        pytest.skip("no piper in this environment (the slim agent): nothing to warm")
    shop = bakery()
    shop = shop.model_copy(update={"providers": shop.providers.model_copy(update={
        "stt": shop.providers.stt.model_copy(update={"name": "offline", "fallbacks": []})})})
    providers = build_providers(shop, AgentMetrics("t"), secrets=Secrets.from_env({}))
    pipers = [p for p in providers.tts.providers if isinstance(p, PiperTTS)]  # type: ignore[attr-defined]
    assert pipers and all(p._voice is None for p in pipers)  # nothing loaded by building the chain
    smart_turn.load_turn_model.cache_clear()
    await warm_up(providers, shop.language)
    assert all(p._voice is not None for p in pipers)  # the first call's greeting does not load it
    assert smart_turn.load_turn_model.cache_info().currsize == 1  # loaded once, shared by every call
    if smart_turn.model_path() is not None:
        assert smart_turn.load_turn_model() is not None
