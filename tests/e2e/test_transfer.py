"""transfer_to_staff over ESL against the loopback's FreeSWITCH-faithful `bridge`: the agent stops its audio,
bridges to the staff number through the conf's gateway, and reads the result from FreeSWITCH's reports. An
unanswered staff phone (NO_ANSWER after the shop's ring time) comes back to the agent, which offers to take a
message; an answered one is `transferred`. Both outcomes are in the call record."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from storeagent.agent.loopback.caller import LoopbackCall
from storeagent.agent.loopback.esl_client import StaffPhone
from storeagent.agent.pipeline.conversation import ConversationOutcome
from storeagent.agent.ports import CallControl, LLMChunk, Message, ProviderSet, ToolCall
from storeagent.agent.providers.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS
from storeagent.agent.settings import AgentSettings
from storeagent.agent.store.tools import ShopTools
from storeagent.agent.wiring import build_outbox
from storeagent.shop import TransferConfig
from support.agent_harness import Finished, bakery, running_agent
from support.audio import silence, voiced

MONDAY_10AM_NEW_YORK = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


def llm_reply(messages: Sequence[Message]) -> str | list[LLMChunk]:
    last = messages[-1]
    if last.role == "tool":
        return last.content  # "Transferring you to a member of staff now, please hold."
    if "not answered" in last.content:
        return "Sorry, nobody picked up. I can take a message for the owner."
    return [ToolCall("c1", "transfer_to_staff", "{}")]


async def transfer_call(tmp: Path, staff: StaffPhone) -> tuple[LoopbackCall, ConversationOutcome, dict[str, Any]]:
    shop = bakery(transfer=TransferConfig(staff_numbers=["+15551239999"], ring_seconds=5))
    svc = await build_outbox(AgentSettings(data_dir=tmp), shop)
    providers = ProviderSet(
        stt=ScriptedSTT(("can i talk to a person",), final_delay=0.01),
        llm=ScriptedLLM(llm_reply, first_token_delay=0.01),
        tts=ScriptedTTS(first_audio_delay=0.01, seconds_per_char=0.02),
    )
    tools = lambda call: ShopTools(shop, now=lambda: MONDAY_10AM_NEW_YORK)  # noqa: E731
    try:
        async with running_agent(providers, shop, tools=tools, tmp=tmp) as (app, done):
            async def finished(uuid: str, call: CallControl, out: ConversationOutcome, duration: float) -> None:
                await svc.on_call_finished(uuid, call, out, duration)
                await done(uuid, call, out, duration)

            app._deps.on_finished = finished
            call = LoopbackCall("127.0.0.1", app.esl_port, staff=staff)
            await call.start()
            await call.wait_agent_done(quiet=0.5)
            await call.say(voiced(600) + silence(40))
            out = await _until_done_or_quiet(call, done, staff)
            await call.close()
        items = await svc.outbox.due(now=float("inf"))
        record = next(json.loads(i.body)["data"] for i in items if i.kind == "call_record")
    finally:
        await svc.aclose()
    return call, out, record


async def _until_done_or_quiet(call: LoopbackCall, done: Finished, staff: StaffPhone) -> ConversationOutcome:
    if staff.talk_s < 0:  # the caller gives up while the staff phone rings
        async with asyncio.timeout(20):
            while not call.esl.dialed:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        await call.hangup()
        return await done.wait_for(call.uuid)
    if staff.answer_after_s is not None:  # answered: the staff hang up, hangup_after_bridge ends the call
        return await done.wait_for(call.uuid, timeout=20)
    first_audio = call.audio
    async with asyncio.timeout(20):  # not answered: the agent's audio comes back on a new stream
        while call.audio is first_audio:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert await call.wait_agent_done(quiet=0.6, timeout=20)
    await call.hangup()
    return await done.wait_for(call.uuid)


def bridges(call: LoopbackCall) -> list[str]:
    return [m.get("execute-app-arg") for m in call.esl.received if m.get("execute-app-name") == "bridge"]


def module_commands(call: LoopbackCall) -> list[str]:
    starts = [m.command or "" for m in call.esl.received if (m.command or "").startswith("api uuid_storeagent")]
    return [c.split()[3] for c in starts]


async def test_unanswered_transfer_comes_back_to_the_agent_which_offers_a_message(tmp_path: Path) -> None:
    call, out, record = await transfer_call(tmp_path, StaffPhone())  # rings, nobody answers
    assert bridges(call) == ["sofia/gateway/carrier/+15551239999"]  # the gateway the FreeSWITCH conf defines
    sets = [m.get("execute-app-arg") for m in call.esl.received if m.get("execute-app-name") == "set"]
    assert "continue_on_fail=true" in sets and "call_timeout=5" in sets  # else FreeSWITCH drops the caller
    assert module_commands(call) == ["start", "stop", "start"]
    said = [line.text for line in out.transcript if line.role == "agent"]
    assert "Transferring you to a member of staff now, please hold." in said
    assert said[-1] == "Sorry, nobody picked up. I can take a message for the owner."
    assert out.outcome == "answered" and out.transferred_to is None
    assert record["outcome"] == "answered" and record["transferred_to"] is None
    assert record["transfers"] == [{"to": "+15551239999", "answered": False, "result": "NO_ANSWER"}]
    assert "Staff did not answer the transfer (NO_ANSWER)." in record["summary"]


async def test_answered_transfer_is_transferred_and_the_agent_lets_go(tmp_path: Path) -> None:
    call, out, record = await transfer_call(tmp_path, StaffPhone(answer_after_s=0.5, talk_s=1.0))
    assert bridges(call) == ["sofia/gateway/carrier/+15551239999"]
    assert module_commands(call) == ["start", "stop"]  # no audio of ours after the staff answered
    assert "CHANNEL_BRIDGE" in call.esl.sent_events
    assert out.outcome == "transferred" and out.transferred_to == "+15551239999"
    assert record["outcome"] == "transferred" and record["transferred_to"] == "+15551239999"
    assert record["transfers"] == [{"to": "+15551239999", "answered": True, "result": "SUCCESS"}]


async def test_caller_hanging_up_while_staff_phone_rings_ends_the_call_without_our_audio(tmp_path: Path) -> None:
    call, out, record = await transfer_call(tmp_path, StaffPhone(talk_s=-1))  # talk_s < 0: the caller hangs up
    assert module_commands(call) == ["start", "stop"]  # no new audio stream for a caller who left
    assert out.reason == "caller hung up during the transfer" and out.transferred_to is None
    assert record["transfers"] == [{"to": "+15551239999", "answered": False, "result": "ORIGINATOR_CANCEL"}]
