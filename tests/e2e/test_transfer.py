"""transfer_to_staff over ESL: the agent stops its audio, bridges to the staff number through the trunk, and
when nobody answers takes the call back (a fresh audio stream) and offers to take a message."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from storeagent.agent.loopback.caller import LoopbackCall
from storeagent.agent.ports import LLMChunk, Message, ProviderSet, ToolCall
from storeagent.agent.providers.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS
from storeagent.agent.store.tools import ShopTools
from support.agent_harness import bakery, running_agent
from support.audio import silence, voiced

MONDAY_10AM_NEW_YORK = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


def llm_reply(messages: Sequence[Message]) -> str | list[LLMChunk]:
    last = messages[-1]
    if last.role == "tool":
        return last.content  # "Transferring you to a member of staff now, please hold."
    if "not answered" in last.content:
        return "Sorry, nobody picked up. I can take a message for the owner."
    return [ToolCall("c1", "transfer_to_staff", "{}")]


async def test_unanswered_transfer_comes_back_to_the_agent() -> None:
    shop = bakery()
    providers = ProviderSet(
        stt=ScriptedSTT(("can i talk to a person",), final_delay=0.01),
        llm=ScriptedLLM(llm_reply, first_token_delay=0.01),
        tts=ScriptedTTS(first_audio_delay=0.01, seconds_per_char=0.02),
    )
    tools = lambda call: ShopTools(shop, now=lambda: MONDAY_10AM_NEW_YORK)  # noqa: E731
    async with running_agent(providers, shop, tools=tools) as (app, done):
        call = LoopbackCall("127.0.0.1", app.esl_port)
        await call.start()
        await call.wait_agent_done(quiet=0.5)
        first_audio = call.audio
        await call.say(voiced(600) + silence(40))
        async with asyncio.timeout(20):
            while call.audio is first_audio or not call.esl.commands("sendmsg"):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert await call.wait_agent_done(quiet=0.6, timeout=20)
        bridges = [m for m in call.esl.received if m.get("execute-app-name") == "bridge"]
        assert len(bridges) == 1
        assert "sofia/gateway/carrier/+15551239999" in (bridges[0].get("execute-app-arg") or "")
        starts = [m for m in call.esl.received if (m.command or "").startswith("api uuid_storeagent")]
        assert [c.command.split()[3] for c in starts if c.command] == ["start", "stop", "start"]
        await call.hangup()
        out = await done.wait_for(call.uuid)
        await call.close()
    said = [line.text for line in out.transcript if line.role == "agent"]
    assert "Transferring you to a member of staff now, please hold." in said
    assert said[-1] == "Sorry, nobody picked up. I can take a message for the owner."
    assert out.outcome == "answered"
