"""Fault isolation with the speech service: real calls (real caller speech, real engines) on an agent whose STT
and TTS chains are the production ones (speech service -> in-process offline engines). The service killed
mid-call, or refusing streams because it is saturated: the call's next turn is served by the fallback with no
more than 1.5 s of dead air and the call goes on."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from storeagent.agent.__main__ import warm_up
from storeagent.agent.loopback.caller import LoopbackCall
from storeagent.agent.metrics import AgentMetrics
from storeagent.agent.ports import AudioFormat, ProviderSet
from storeagent.agent.providers.factory import build_providers
from storeagent.agent.providers.speech import SpeechSTT
from storeagent.agent.secrets import Secrets
from storeagent.agent.settings import TurnSettings
from storeagent.shop import ShopConfig
from support.agent_harness import bakery, running_agent
from support.audio import silence
from support.speech_service import SpeechProcess, caller_speech, speech_service

pytestmark = pytest.mark.slow
END_OF_TURN = 0.5
DEAD_AIR_LIMIT = 1.5
FMT = AudioFormat(8000)
QUESTIONS = ("What time do you open on Saturday?", "Do you have sourdough bread?", "Where are you located?")


@pytest.fixture(scope="module")
def speech() -> dict[str, bytes]:
    return {q: caller_speech(q) for q in QUESTIONS}


def speech_shop() -> ShopConfig:
    shop = bakery()
    return shop.model_copy(update={"providers": shop.providers.model_copy(update={
        "stt": shop.providers.stt.model_copy(update={"name": "speech", "fallbacks": []}),
        "tts": shop.providers.tts.model_copy(update={"name": "speech", "fallbacks": []}),
        "llm": shop.providers.llm.model_copy(update={"name": "offline", "fallbacks": []})})})


async def production_chains(shop: ShopConfig, url: str, metrics: AgentMetrics) -> ProviderSet:
    providers = build_providers(shop, metrics, secrets=Secrets.from_env({}), speech_url=url)
    assert [p.name for p in providers.stt.providers] == ["speech", "whisper"]  # type: ignore[attr-defined]
    assert [p.name for p in providers.tts.providers] == ["speech", "piper", "espeak"]  # type: ignore[attr-defined]
    await warm_up(providers, shop.language)  # as `storeagent agent serve` does: fallbacks loaded before calls
    return providers


async def ask(call: LoopbackCall, pcm: bytes) -> float:
    """Speak; seconds from the caller's last voiced frame to the first agent audio played (what they hear)."""
    assert call.audio is not None
    a = call.audio
    start_tick = len(a.record.agent)
    sent_at = await call.say(pcm + silence(20))
    last_voice = sent_at + FMT.seconds(len(pcm))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while loop.time() < deadline:
        ticks = a.record.agent_active[start_tick:]
        if any(ticks):
            return a.record.playout_times[start_tick + ticks.index(True)] - last_voice
        await asyncio.sleep(0.02)
    raise AssertionError("the agent never answered")


def counted(metrics: AgentMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, {"store": "sunrise-bakery", **labels}) or 0.0


async def run_call(svc: SpeechProcess, speech: dict[str, bytes], fault: str) -> None:
    workers: list[int] = []
    shop = speech_shop()
    metrics = AgentMetrics(shop.store)
    providers = await production_chains(shop, svc.url, metrics)
    held: list[object] = []
    async with running_agent(providers, shop, turn=TurnSettings(end_of_turn_ms=int(END_OF_TURN * 1000)),
                             metrics=metrics) as (app, done):
        if fault == "saturated":  # every slot of the service taken before the call starts
            held = [await SpeechSTT(svc.url).open(FMT, "en-US") for _ in range(2)]
        call = LoopbackCall("127.0.0.1", app.esl_port)
        await call.start()
        assert await call.wait_agent_done(quiet=0.6, timeout=30)  # the greeting
        if fault == "killed":
            gap = await ask(call, speech[QUESTIONS[0]])  # served by the service
            assert gap <= END_OF_TURN + DEAD_AIR_LIMIT, f"{gap:.2f}s of dead air"
            assert await call.wait_agent_done(quiet=0.6, timeout=30)
            assert counted(metrics, "storeagent_provider_fallbacks_total", stage="stt") == 0
            workers = svc.kill()
        gaps = []
        for q in QUESTIONS[1:]:
            gaps.append(await ask(call, speech[q]))
            assert await call.wait_agent_done(quiet=0.6, timeout=30)
        await call.hangup()
        out = await done.wait_for(call.uuid)
        await call.close()
    for s in held:
        await s.aclose()  # type: ignore[attr-defined]
    assert all(g <= END_OF_TURN + DEAD_AIR_LIMIT for g in gaps), f"dead air after a turn: {gaps}"
    assert out.outcome == "answered"
    lines = [(line.role, line.text) for line in out.transcript]
    caller = [t for r, t in lines if r == "caller"]
    assert len(caller) == (3 if fault == "killed" else 2), lines  # every question was heard
    agent = [t for r, t in lines if r == "agent" and t and t != "One moment."]
    assert len(agent) >= len(caller) + 1, lines  # greeting + an answer to each question
    assert not any("take a message" in t.lower() for t in agent[-2:]), lines  # answered, not the apology
    # the answers of the turns after the fault came from the fallback, fast enough to be a conversation
    answered = [lat.decision_to_audio for lat in out.latencies[-2:]]
    assert all(a is not None and a <= DEAD_AIR_LIMIT + 1.0 for a in answered), answered
    assert counted(metrics, "storeagent_provider_fallbacks_total", stage="stt") >= 1
    assert counted(metrics, "storeagent_provider_fallbacks_total", stage="tts") >= 1
    if fault == "killed":  # the I/O process died: its workers (and their models' memory) go with it
        assert workers and not SpeechProcess.alive(workers), f"speech workers outlived the service: {workers}"
    kind = "saturated" if fault == "saturated" else "closed"
    assert counted(metrics, "storeagent_provider_errors_total", provider="speech", kind=kind) >= 1


async def test_speech_service_killed_mid_call(tmp_path: Path, speech: dict[str, bytes]) -> None:
    # no load-based refusal before the kill (a starved CI box): the first turn must be the service's
    with speech_service(tmp_path, "--workers", "1", "--saturation-s", "60") as svc:
        await run_call(svc, speech, "killed")
        assert svc.proc.poll() is not None


async def test_saturated_speech_service_refuses_and_the_call_runs_in_process(
        tmp_path: Path, speech: dict[str, bytes]) -> None:
    with speech_service(tmp_path, "--workers", "1", "--max-streams-per-worker", "2", "--saturation-s", "60") as svc:
        await run_call(svc, speech, "saturated")

