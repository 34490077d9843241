"""The dead-air filler ("One moment."): said when the answer is slow, not when its first clause is already being
synthesized and about to play, and at most `max_acks` times in one call."""

from __future__ import annotations

import asyncio

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


async def call(llm: ScriptedLLM, tts: ScriptedTTS, turns: int,
               **cfg: float) -> tuple[Conversation, ConversationOutcome]:
    fmt = AudioFormat(8000)
    link = MemoryLink()

    async def hangup() -> None:
        await link.close()

    async def transfer(number: str) -> TransferResult:
        return TransferResult(answered=False, cause="NO_ANSWER")

    conv = Conversation(
        cfg=ConversationConfig(greeting="Hello.", phrases=PHRASES, silence_reprompt_s=30, **cfg),  # type: ignore[arg-type]
        link=link, vad=WebRtcVad(8000), stt=await ScriptedSTT(("when do you open",)).open(fmt, "en-US"), llm=llm,
        tts=await tts.open(fmt, "en-US"), tools=ShopTools(bakery()), metrics=AgentMetrics("t"), system_prompt="",
        transfer=transfer, hangup=hangup, filler_pcm=silence(300),
    )
    task = asyncio.create_task(conv.run())
    async with asyncio.timeout(60):
        for _ in range(turns):
            while link.first_audio_at is None or link.speaking:  # the agent finished speaking
                await link.caller_speaks(silence(100))
            n = len(conv.history.utterances())
            await link.caller_speaks(voiced(700) + silence(600))
            while len(conv.history.utterances()) == n or link.speaking or not conv._reply or not conv._reply.done():
                await link.caller_speaks(silence(100))  # the answer to this turn has played
    conv.post_hangup("NORMAL_CLEARING")
    return conv, await asyncio.wait_for(task, 15)


def fillers(out: ConversationOutcome) -> int:
    return sum(1 for x in out.transcript if x.role == "agent" and x.text == PHRASES.filler)


async def test_no_filler_when_the_answer_is_being_synthesized_and_about_to_start() -> None:
    # The answer's text is there after 0.8 s and its first audio 0.3 s later: past ack_after_s (1 s) from the
    # end of the turn, but the clause was with the TTS before that: "One moment." would only hold it back.
    llm = ScriptedLLM("We open at eight.", first_token_delay=0.8)
    conv, out = await call(llm, ScriptedTTS(first_audio_delay=0.3, seconds_per_char=0.01), 1, ack_grace_s=0.8)
    assert fillers(out) == 0 and conv.acks == 0
    assert [x.text for x in out.transcript if x.role == "agent"][-1] == "We open at eight."


async def test_a_tts_that_stays_silent_past_the_grace_still_gets_the_filler() -> None:
    llm = ScriptedLLM("We open at eight.", first_token_delay=0.8)
    conv, out = await call(llm, ScriptedTTS(first_audio_delay=2.0, seconds_per_char=0.01), 1, ack_grace_s=0.8)
    assert fillers(out) == 1 and conv.acks == 1


async def test_the_filler_is_said_at_most_max_acks_times_in_a_call() -> None:
    llm = ScriptedLLM("We open at eight.", first_token_delay=1.6)  # every answer is slow
    conv, out = await call(llm, ScriptedTTS(seconds_per_char=0.01), 3, max_acks=2)
    assert fillers(out) == 2 and conv.acks == 2
    assert sum(1 for x in out.transcript if x.role == "agent" and x.text == "We open at eight.") == 3
