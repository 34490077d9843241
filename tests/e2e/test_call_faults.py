"""Provider faults during real calls: the caller never hears more than 1.5 s of dead air after their turn, the
call goes on (or to message-taking), the metrics count it, and the process and other calls are unaffected."""

from __future__ import annotations

import asyncio

import pytest

from storeagent.agent.loopback.caller import LoopbackCall
from storeagent.agent.metrics import AgentMetrics
from storeagent.agent.ports import LLM, STT, TTS, ProviderSet
from storeagent.agent.providers.guard import Chain, StageTimeouts
from storeagent.agent.providers.resilience import FallbackLLM, FallbackSTT, FallbackTTS
from storeagent.agent.providers.scripted import Fault, ScriptedLLM, ScriptedSTT, ScriptedTTS
from storeagent.agent.settings import TurnSettings
from support.agent_harness import running_agent
from support.audio import silence, voiced

END_OF_TURN = 0.5
DEAD_AIR_LIMIT = 1.5  # from the end of the caller's turn (the turn detector's decision)


def chains(metrics: AgentMetrics, *, stt: list[STT], llm: list[LLM], tts: list[TTS]) -> ProviderSet:
    t = StageTimeouts(connect=1.0, first_result=0.8, stall=2.0)
    return ProviderSet(
        stt=FallbackSTT(stt, Chain("stt", metrics, t)),
        llm=FallbackLLM(llm, Chain("llm", metrics, t)),
        tts=FallbackTTS(tts, Chain("tts", metrics, t)),
    )


async def ask_and_time_first_audio(call: LoopbackCall) -> float:
    """Speak one question; seconds from the caller's last voiced frame to the first agent audio played."""
    assert call.audio is not None
    a = call.audio
    start_tick = len(a.record.agent)
    sent_at = await call.say(voiced(700) + silence(20))
    last_voice = sent_at + 0.7
    deadline = asyncio.get_running_loop().time() + 10
    while asyncio.get_running_loop().time() < deadline:
        ticks = a.record.agent_active[start_tick:]
        if any(ticks):
            k = start_tick + ticks.index(True)
            return a.record.playout_times[k] - last_voice
        await asyncio.sleep(0.02)
    raise AssertionError("the agent never answered")


@pytest.mark.parametrize(
    "stage,fault",
    [
        ("llm", Fault("first", retryable=True)),  # rate limit / 5xx at the first token
        ("llm", Fault("mid", retryable=False)),  # dies mid-answer
        ("llm", "hang"),  # never answers: only the timeout saves the caller
        ("tts", Fault("open", retryable=False)),  # bad key
        ("tts", Fault("mid", retryable=True)),  # socket drops mid-clause
        ("stt", Fault("first", retryable=True)),  # no final transcript
    ],
    ids=["llm-first", "llm-mid", "llm-hang", "tts-open", "tts-mid", "stt-first"],
)
async def test_fault_in_one_stage_keeps_the_call_going(stage: str, fault: Fault | str) -> None:
    metrics = AgentMetrics("sunrise-bakery")
    good_llm = ScriptedLLM("We open at 8 AM on Saturday.", first_token_delay=0.05, name="backup-llm")
    good_tts = ScriptedTTS(first_audio_delay=0.05, seconds_per_char=0.02, name="backup-tts")
    good_stt = ScriptedSTT(("when do you open",), final_delay=0.05, name="backup-stt")
    if fault == "hang":
        bad: object = ScriptedLLM("never", first_token_delay=30, name="primary")
    elif stage == "llm":
        bad = ScriptedLLM("We open at 8 AM on Saturday, and close at 4.", fault=fault, name="primary")  # type: ignore[arg-type]
    elif stage == "tts":
        bad = ScriptedTTS(seconds_per_char=0.02, fault=fault, name="primary")  # type: ignore[arg-type]
    else:
        bad = ScriptedSTT(("when do you open",), fault=fault, name="primary")  # type: ignore[arg-type]
    providers = chains(
        metrics,
        stt=[bad, good_stt] if stage == "stt" else [good_stt],  # type: ignore[list-item]
        llm=[bad, good_llm] if stage == "llm" else [good_llm],  # type: ignore[list-item]
        tts=[bad, good_tts] if stage == "tts" else [good_tts],  # type: ignore[list-item]
    )
    turn = TurnSettings(end_of_turn_ms=int(END_OF_TURN * 1000))
    async with running_agent(providers, turn=turn, metrics=metrics) as (app, done):
        call = LoopbackCall("127.0.0.1", app.esl_port)
        bystander = LoopbackCall("127.0.0.1", app.esl_port)
        await call.start()
        await bystander.start()
        await call.wait_agent_done(quiet=0.5)
        gap = await ask_and_time_first_audio(call)
        assert gap <= END_OF_TURN + DEAD_AIR_LIMIT, f"{gap:.2f}s of dead air after the caller's turn"
        assert await call.wait_agent_done(quiet=0.6, timeout=20)
        # the call goes on: a second question is answered too (the breaker may now skip the primary)
        gap2 = await ask_and_time_first_audio(call)
        assert gap2 <= END_OF_TURN + DEAD_AIR_LIMIT
        await call.wait_agent_done(quiet=0.6, timeout=20)
        # the other call on the same process was never disturbed
        await bystander.wait_agent_done(quiet=0.5)
        await bystander.say(voiced(600) + silence(40))
        assert await bystander.wait_agent_done(quiet=0.5, timeout=20)
        for c in (call, bystander):
            await c.hangup()
            out = await done.wait_for(c.uuid)
            assert out.outcome == "answered"
            await c.close()
    fallbacks = metrics.registry.get_sample_value(
        "storeagent_provider_fallbacks_total", {"store": "sunrise-bakery", "stage": stage})
    assert fallbacks and fallbacks >= 1, "the fallback must be counted"
    errors = [s for m in metrics.registry.collect() if m.name == "storeagent_provider_errors"
              for s in m.samples if s.labels.get("provider") == "primary" and s.value > 0]
    assert errors, "the primary's failure must be counted"


async def test_slow_last_provider_gets_an_acknowledgement_before_the_answer() -> None:
    """The last LLM of the chain has no deadline (failing it would only mean silence), so the agent fills the
    wait with a short acknowledgement within the dead-air limit, then gives the real answer."""
    metrics = AgentMetrics("sunrise-bakery")
    providers = chains(
        metrics,
        stt=[ScriptedSTT(("when do you open",), final_delay=0.05)],
        llm=[ScriptedLLM("We open at 8 AM on Saturday.", first_token_delay=3.0)],
        tts=[ScriptedTTS(first_audio_delay=0.05, seconds_per_char=0.02)],
    )
    turn = TurnSettings(end_of_turn_ms=int(END_OF_TURN * 1000))
    async with running_agent(providers, turn=turn, metrics=metrics) as (app, done):
        call = LoopbackCall("127.0.0.1", app.esl_port)
        await call.start()
        await call.wait_agent_done(quiet=0.5)
        gap = await ask_and_time_first_audio(call)
        assert gap <= END_OF_TURN + DEAD_AIR_LIMIT, f"{gap:.2f}s of dead air after the caller's turn"
        assert await call.wait_agent_done(quiet=0.3, timeout=5)  # the acknowledgement
        assert await call.wait_agent_speaking(timeout=10)  # then the slow model's answer
        assert await call.wait_agent_done(quiet=0.6, timeout=20)
        await call.hangup()
        out = await done.wait_for(call.uuid)
        await call.close()
    agent_lines = [line.text for line in out.transcript if line.role == "agent"]
    assert agent_lines[1:] == ["One moment.", "We open at 8 AM on Saturday."]
