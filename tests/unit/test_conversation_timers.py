"""Conversation timers and keypad on an in-memory link: reprompt after silence, hang up on a silent caller,
the call's time limit, and keypad 0 (staff when staffed, a message otherwise)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from storeagent.agent.metrics import AgentMetrics
from storeagent.agent.pipeline.conversation import Conversation, ConversationConfig, ConversationOutcome
from storeagent.agent.pipeline.prompts import phrases_for
from storeagent.agent.pipeline.vad import WebRtcVad
from storeagent.agent.ports import AudioFormat, TransferResult
from storeagent.agent.providers.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS
from storeagent.agent.store.tools import ShopTools
from support.agent_harness import bakery
from support.audio import silence, voiced
from support.memlink import MemoryLink

PHRASES = phrases_for("en-US", "Sunrise Bakery")
MONDAY_10AM_NEW_YORK = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
SUNDAY_10AM_NEW_YORK = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)


async def run_conversation(link: MemoryLink, *, now: datetime = MONDAY_10AM_NEW_YORK, greeting: str = "Hello.",
                           **cfg: float) -> tuple[Conversation, asyncio.Task[ConversationOutcome], list[str]]:
    fmt = AudioFormat(8000)
    transfers: list[str] = []  # live: the tests read it after the conversation acted

    async def hangup() -> None:
        await link.close()

    async def transfer(number: str) -> TransferResult:
        transfers.append(number)
        return TransferResult(answered=True, cause="call accepted")

    conv = Conversation(
        cfg=ConversationConfig(greeting=greeting, phrases=PHRASES, **cfg),  # type: ignore[arg-type]
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


async def test_reprompt_counts_from_the_end_of_playout_not_the_first_audio() -> None:
    link = MemoryLink()
    # ~3 s of speech (ScriptedTTS: 10 ms a character) against a 2 s silence timer: the caller is still hearing the
    # greeting when 2 s have passed since its first audio, and must not be asked "Are you still there?" then.
    greeting = "Thank you for calling the bakery. " * 9
    conv, task, _ = await run_conversation(link, greeting=greeting, silence_reprompt_s=2.0, max_reprompts=1)
    async with asyncio.timeout(10):
        while link.first_audio_at is None:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        greeting_bytes = link.sent_bytes
        while link.speaking:  # noqa: ASYNC110  # until the last greeting frame played (its mark comes back)
            await asyncio.sleep(0.01)
        played_at = time.monotonic()
        while link.sent_bytes == greeting_bytes:  # noqa: ASYNC110  # the reprompt's first audio
            await asyncio.sleep(0.01)
        reprompt_at = time.monotonic()
    assert played_at - link.first_audio_at > 2.5  # the greeting really outlasted the timer
    assert 1.9 < reprompt_at - played_at < 2.6, reprompt_at - played_at
    conv.post_hangup("NORMAL_CLEARING")
    out = await asyncio.wait_for(task, 10)
    assert [line.text for line in out.transcript if line.role == "agent"][1] == PHRASES.reprompt


async def test_a_greeting_cut_off_mid_clause_keeps_what_the_caller_heard() -> None:
    link = MemoryLink()
    greeting = "Thank you for calling Sunrise Bakery, we bake sourdough and croissants every morning from seven."
    conv, task, _ = await run_conversation(link, greeting=greeting, silence_reprompt_s=30)
    async with asyncio.timeout(10):
        while link.first_audio_at is None:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.65)  # ~0.65 s of the ~0.96 s (10 ms a character) one-clause greeting plays
    # barge-in: the agent pauses at the onset; the caller clearly went on talking, and clears once the turn's
    # words have come (voice alone waits for them: bargein.py)
    await link.caller_speaks(voiced(900) + silence(300))
    async with asyncio.timeout(5):
        while not link.clears:
            await link.caller_speaks(silence(100))
    assert link.pauses and link.clears and not link.resumes
    conv.post_hangup("NORMAL_CLEARING")
    out = await asyncio.wait_for(task, 10)
    line = next(x for x in out.transcript if x.role == "agent")
    assert line.text == greeting and line.heard is not None
    heard = line.heard.split()
    # What played before the clear (progress marks every 300 ms, plus the barge-in's detection time), never
    # nothing and never the whole clause.
    assert greeting.startswith(line.heard) and 3 <= len(heard) < len(greeting.split()), line.heard
    assert out.barge_ins == 1
    said = [m.content for m in conv.history.messages() if m.role == "assistant"]
    assert said[0] == f"{line.heard} [the caller interrupted here]"  # what the model is told the caller heard


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
