"""Whole calls through the real agent server over real sockets: the loopback plays FreeSWITCH on both wires."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from storeagent.agent.loopback.caller import LoopbackCall
from storeagent.agent.ports import ProviderSet, ToolCall
from storeagent.agent.providers.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS
from support.agent_harness import running_agent, until
from support.audio import silence, voiced

LONG = " ".join(f"Sentence number {i} of a long answer about our many fine breads." for i in range(12))


def providers(reply: object = "We open at 8 AM on Saturday.", transcripts: object = ("when do you open",),
              tts_delay: float = 0.0) -> ProviderSet:
    return ProviderSet(
        stt=ScriptedSTT(transcripts, final_delay=0.01),  # type: ignore[arg-type]
        llm=ScriptedLLM(reply, first_token_delay=0.01),  # type: ignore[arg-type]
        tts=ScriptedTTS(first_audio_delay=0.01, seconds_per_char=0.02),
    )


def utterance(ms: int = 600) -> bytes:
    return voiced(ms) + silence(40)


async def test_call_answers_a_question_and_cleans_up_after_hangup() -> None:
    before = {t for t in asyncio.all_tasks()}
    async with running_agent(providers()) as (app, finished):
        call = LoopbackCall("127.0.0.1", app.esl_port, store="sunrise-bakery")
        await call.start()
        assert await call.wait_agent_done(quiet=0.5), "no greeting"
        await call.say(utterance())
        assert await call.wait_agent_done(quiet=0.5), "no answer"
        await call.hangup()
        out = await finished.wait_for(call.uuid)
        await call.wait_ended()
        await call.close()

        lines = [(line.role, line.text) for line in out.transcript]
        assert ("caller", "when do you open") in lines
        assert ("agent", "We open at 8 AM on Saturday.") in lines
        assert len(out.latencies) == 1 and out.latencies[0].voice_to_voice is not None
        assert out.latencies[0].voice_to_voice > 0.4  # includes the 500 ms end-of-turn silence
        # nothing of the call is left behind in the agent
        await asyncio.sleep(0.1)
        assert app.sessions == {} and len(app.links) == 0 and app.esl.active_connections == 0
        assert app.stats.active == 0 and app.stats.total == 1
        assert b'storeagent_calls_active{store="sunrise-bakery"} 0.0' in app.metrics.exposition()
    await asyncio.sleep(0.1)
    leaked = {t for t in asyncio.all_tasks() if not t.done()} - before - {asyncio.current_task()}
    assert not leaked, f"tasks left behind: {leaked}"


async def test_barge_in_clears_playout_and_history_keeps_only_what_was_heard() -> None:
    p = providers(reply=LONG, transcripts=("tell me about bread", "where are you"))
    async with running_agent(p) as (app, finished):
        call = LoopbackCall("127.0.0.1", app.esl_port)
        await call.start()
        await call.wait_agent_done(quiet=0.5)
        await call.say(utterance())
        assert await call.wait_agent_speaking()
        await asyncio.sleep(2.0)  # the caller hears the first clause (1.3 s) of the long answer, then interrupts
        assert call.audio is not None
        rec = call.audio.record
        clears_before = len(rec.clears)
        # a real interruption: the caller goes on talking (a short sound would be judged a backchannel)
        onset_index = call.say_nowait(utterance(1000))
        # wait for the clear itself, not a fixed time
        assert await until(lambda: len(rec.clears) > clears_before, 3.0), "the agent never sent clear"
        assert rec.pauses and not any(p.resume for p in rec.pauses), "paused at the onset, never resumed"
        stop = rec.barge_in_stop(onset_index)  # the playout stopped at the pause, before the clear
        # Target 100 ms (p95, make bench). One sample on a shared CI machine gets 50 ms of scheduling slack on top
        # of the target, not ten times it.
        assert stop is not None and 0 < stop < 0.15, f"barge-in stop {stop}s"
        # after the clear the far end plays silence until the next answer
        await call.wait_agent_done(quiet=0.6)
        await call.hangup()
        out = await finished.wait_for(call.uuid)
        await call.close()
    assert out.barge_ins >= 1
    assert isinstance(p.llm, ScriptedLLM)
    second_request = p.llm.requests[-1]
    heard = [m.content for m in second_request if m.role == "assistant"]
    long_heard = [h for h in heard if "Sentence number 0" in h]
    assert long_heard, "the heard part of the long answer must reach the model"
    assert "Sentence number 11" not in long_heard[0], "unheard clauses must not reach the model"
    assert "interrupted" in long_heard[0]


async def test_end_call_tool_hangs_up_after_the_goodbye_is_played() -> None:
    reply = [ToolCall("c1", "end_call", "{}")]

    def llm_reply(messages: object) -> object:
        return reply if len(p.llm.requests) == 1 else "Goodbye, thanks for calling."  # type: ignore[attr-defined]

    p = providers(reply=llm_reply, transcripts=("that's all thanks",))
    async with running_agent(p) as (app, finished):
        call = LoopbackCall("127.0.0.1", app.esl_port)
        await call.start()
        await call.wait_agent_done(quiet=0.5)
        await call.say(utterance())
        out = await finished.wait_for(call.uuid)
        assert call.esl.hung_up
        assert out.transcript[-1].text == "Goodbye, thanks for calling."
        await call.close()


async def test_drain_refuses_new_calls_and_lets_live_ones_finish() -> None:
    async with running_agent(providers()) as (app, _finished):
        live = LoopbackCall("127.0.0.1", app.esl_port)
        await live.start()
        esl_port = app.esl_port
        drain = asyncio.create_task(app.drain(grace=20))
        await asyncio.sleep(0.2)
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{app.http_port}/readyz") as r:
            assert r.status == 503
        with pytest.raises(OSError):  # the listener is closed: FreeSWITCH's `socket` fails -> fallback
            await asyncio.open_connection("127.0.0.1", esl_port)
        assert not drain.done()
        await live.say(utterance())
        await live.hangup()
        await asyncio.wait_for(drain, 10)
        await live.close()
        assert app.stats.total == 1


async def test_garbage_on_the_esl_port_does_not_disturb_a_live_call() -> None:
    async with running_agent(providers()) as (app, finished):
        call = LoopbackCall("127.0.0.1", app.esl_port)
        await call.start()
        r, w = await asyncio.open_connection("127.0.0.1", app.esl_port)
        await r.readuntil(b"\n\n")  # our `connect`
        w.write(b"Content-Length: banana\n\n")
        await w.drain()
        assert await r.read() == b""  # that connection is closed
        w.close()
        await call.wait_agent_done(quiet=0.5)
        await call.say(utterance())
        assert await call.wait_agent_done(quiet=0.5)
        await call.hangup()
        out = await finished.wait_for(call.uuid)
        await call.close()
        assert any(line.role == "caller" for line in out.transcript)
        assert b'storeagent_protocol_errors_total{reason=' in app.metrics.exposition() or \
            b"storeagent_protocol_errors_total{" in app.metrics.exposition()


async def test_over_capacity_call_is_refused_without_answer() -> None:
    async with running_agent(providers(), max_calls=1) as (app, finished):
        first = LoopbackCall("127.0.0.1", app.esl_port)
        await first.start()
        second = LoopbackCall("127.0.0.1", app.esl_port)
        await second.esl.start()
        await second.wait_ended(5)
        assert not second.esl.answered  # FreeSWITCH runs the fallback for it
        await first.hangup()
        await finished.wait_for(first.uuid)
        await first.close()
        await second.close()
        assert app.refused == 1
