"""Conversation timers and keypad on an in-memory link: reprompt after silence, hang up on a silent caller,
the call's time limit, and keypad 0 (staff when staffed, a message otherwise)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from storeagent.agent.metrics import AgentMetrics
from storeagent.agent.pipeline.conversation import Conversation, ConversationConfig, ConversationOutcome
from storeagent.agent.pipeline.prompts import phrases_for
from storeagent.agent.pipeline.vad import WebRtcVad
from storeagent.agent.ports import AudioFormat, TransferResult
from storeagent.agent.providers.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS
from storeagent.agent.store.tools import ShopTools
from support.agent_harness import bakery
from support.memlink import MemoryLink

PHRASES = phrases_for("en-US", "Sunrise Bakery")
MONDAY_10AM_NEW_YORK = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
SUNDAY_10AM_NEW_YORK = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)


async def run_conversation(link: MemoryLink, *, now: datetime = MONDAY_10AM_NEW_YORK, **cfg: float
                           ) -> tuple[Conversation, asyncio.Task[ConversationOutcome], list[str]]:
    fmt = AudioFormat(8000)
    transfers: list[str] = []  # live: the tests read it after the conversation acted

    async def hangup() -> None:
        await link.close()

    async def transfer(number: str) -> TransferResult:
        transfers.append(number)
        return TransferResult(answered=True, cause="call accepted")

    conv = Conversation(
        cfg=ConversationConfig(greeting="Hello.", phrases=PHRASES, **cfg),  # type: ignore[arg-type]
        link=link, vad=WebRtcVad(8000), stt=await ScriptedSTT().open(fmt, "en-US"), llm=ScriptedLLM(),
        tts=await ScriptedTTS(seconds_per_char=0.01).open(fmt, "en-US"),
        tools=ShopTools(bakery(), now=lambda: now), metrics=AgentMetrics("t"), system_prompt="",
        transfer=transfer, hangup=hangup,
    )
    task = asyncio.create_task(conv.run())
    return conv, task, transfers


async def test_silent_caller_is_reprompted_then_hung_up_politely() -> None:
    link = MemoryLink()
    _, task, _ = await run_conversation(link, silence_reprompt_s=0.6, max_reprompts=2)
    out = await asyncio.wait_for(task, 15)
    said = [line.text for line in out.transcript if line.role == "agent"]
    assert said == ["Hello.", PHRASES.reprompt, PHRASES.reprompt, PHRASES.goodbye_silence]
    assert out.outcome == "abandoned" and link.closed


async def test_time_limit_ends_the_call_with_a_goodbye() -> None:
    link = MemoryLink()
    _, task, _ = await run_conversation(link, max_call_s=1.0, silence_reprompt_s=30)
    out = await asyncio.wait_for(task, 15)
    assert [line.text for line in out.transcript if line.role == "agent"][-1] == PHRASES.time_limit
    assert out.reason == "max call duration" and link.closed


async def test_keypad_zero_transfers_during_staffed_hours() -> None:
    link = MemoryLink()
    conv, task, events = await run_conversation(link, silence_reprompt_s=30)
    await asyncio.sleep(0.3)
    conv.post_dtmf("0")
    out = await asyncio.wait_for(task, 15)
    assert events == ["+15551239999"]  # the shop's staff number, via the transfer hook
    assert out.outcome == "transferred"


async def test_keypad_zero_out_of_hours_offers_a_message() -> None:
    link = MemoryLink()
    conv, task, events = await run_conversation(link, now=SUNDAY_10AM_NEW_YORK, silence_reprompt_s=30)
    await asyncio.sleep(0.3)
    conv.post_dtmf("0")
    await asyncio.sleep(1.5)
    conv.post_hangup("NORMAL_CLEARING")
    out = await asyncio.wait_for(task, 15)
    assert events == []
    assert [line.text for line in out.transcript if line.role == "agent"][-1] == PHRASES.no_staff
    await link.close()
