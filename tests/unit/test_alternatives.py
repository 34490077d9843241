"""A recognizer's other readings of a turn (Whisper's n-best): carried from the final transcript into the
conversation's history, and tried by the offline answerers only when the best reading makes no sense."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import yaml

from storeagent.agent.metrics import AgentMetrics
from storeagent.agent.pipeline.conversation import Conversation, ConversationConfig
from storeagent.agent.pipeline.prompts import phrases_for
from storeagent.agent.pipeline.stt_turns import SttTurns
from storeagent.agent.pipeline.turn import TurnEnd
from storeagent.agent.pipeline.vad import WebRtcVad
from storeagent.agent.ports import AudioFormat, Message, TransferResult
from storeagent.agent.providers import answerer, answerer_ko
from storeagent.agent.providers.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS
from storeagent.agent.providers.speech import _alternatives
from storeagent.agent.store.tools import ShopTools
from storeagent.shop import shop_config_from_manifest
from support.agent_harness import bakery
from support.audio import silence, voiced
from support.memlink import MemoryLink

ROOT = Path(__file__).resolve().parents[2]
TOOLS = {"transfer_to_staff", "end_call", "take_message"}
NOON = datetime(2026, 6, 3, 16, 0, tzinfo=UTC)


def _en(text: str, alternatives: Sequence[str] = (), history: Sequence[Message] = ()) -> str:
    a = answerer.ShopAnswerer(bakery().profile, now=lambda: NOON)
    return a.answer([*history, Message("user", text, alternatives=tuple(alternatives))], TOOLS).text


def test_the_first_reading_that_makes_sense_is_answered_and_the_best_one_wins_when_it_does() -> None:
    understood = _en("what time do you open on saturday")
    assert understood not in (answerer.UNKNOWN, answerer.NOT_HEARD)
    assert _en("what time do you big get") == answerer.UNKNOWN  # the misheard reading alone
    assert _en("what time do you big get", ["what time do you bigger", "what time do you open on saturday"]) \
        == understood
    # an understood best reading is never second-guessed by the others
    assert _en("what time do you open on saturday", ["where are you"]) == understood
    # none makes sense: the honest answer, not a guess
    assert _en("mug get", ["muggy", "mud gets"]) == answerer.UNKNOWN


def test_a_question_back_yields_to_a_reading_that_gets_the_fact_and_stays_when_none_does() -> None:
    assert _en("how much is the big get") == answerer.WHICH_ITEM
    assert "$4.00" in _en("how much is the big get", ["how much is the bag it", "how much is the baguette"])
    assert _en("how much is the big get", ["how much is the bag it", "mug get"]) == answerer.WHICH_ITEM
    # an unsure best reading takes a question back from another reading over the honest "not sure"
    assert _en("mug get", ["how much is the big get"]) == answerer.WHICH_ITEM


def test_alternatives_do_not_touch_a_message_being_taken() -> None:
    history = [Message("assistant", answerer.MESSAGE_PROMPT)]
    out = _en("this is dana five five five one two three four", ["what time do you open on saturday"], history)
    assert out not in (answerer.UNKNOWN, answerer.MESSAGE_PROMPT) and "saturday" not in out.lower()


def test_korean_answerer_tries_the_other_readings_too() -> None:
    shop = shop_config_from_manifest(yaml.safe_load((ROOT / "examples/gangnam-chicken.yaml").read_text()))
    a = answerer_ko.KoreanAnswerer(shop.profile, now=lambda: NOON)
    best = a.answer([Message("user", "또 요리는 멸치에")], TOOLS).text
    assert best == answerer_ko.UNKNOWN
    got = a.answer([Message("user", "또 요리는 멸치에", alternatives=("토요일 몇시 문 여세요",))], TOOLS).text
    assert got.startswith("토요일은")


def test_a_turn_of_several_finals_keeps_the_earlier_ones_in_front_of_each_reading_of_the_last() -> None:
    turns = SttTurns()
    turns.final("hi there", 1.0, received=1.0, alternatives=("hi their",))
    turns.final("what time do you big get", 2.0, received=2.0, alternatives=("what time do you open",))
    heard = turns.take(TurnEnd(600, 2.0, 2.2))
    assert heard is not None and heard.text == "hi there what time do you big get"
    assert heard.alternatives == ("hi there what time do you open",)


def test_the_speech_client_keeps_only_bounded_strings_from_the_service() -> None:
    assert _alternatives(None) == () and _alternatives("what") == () and _alternatives({"a": 1}) == ()
    assert _alternatives(["a", 3, None, " ", "b"]) == ("a", "b")
    assert len(_alternatives(["x"] * 50)) == 8
    assert _alternatives(["y" * 10_000]) == ("y" * 2000,)


async def test_the_conversation_hands_the_readings_to_the_model_with_the_caller_turn() -> None:
    seen: list[Message] = []

    def reply(messages: Sequence[Message]) -> str:
        seen.append(messages[-1])
        return "Okay."

    link = MemoryLink()
    fmt = AudioFormat(8000)

    async def transfer(number: str) -> TransferResult:
        return TransferResult(answered=False, cause="unused")

    conv = Conversation(
        cfg=ConversationConfig(greeting="Hello.", phrases=phrases_for("en-US", "Sunrise Bakery"),
                               silence_reprompt_s=30),
        link=link, vad=WebRtcVad(8000),
        stt=await ScriptedSTT(["what time do you big get"], alternatives=["what time do you open"]).open(fmt, "en"),
        llm=ScriptedLLM(reply), tts=await ScriptedTTS(seconds_per_char=0.01).open(fmt, "en-US"),
        tools=ShopTools(bakery(), now=lambda: NOON), metrics=AgentMetrics("t"), system_prompt="",
        transfer=transfer, hangup=link.close,
    )
    task = asyncio.create_task(conv.run())
    async with asyncio.timeout(10):
        while link.speaking or link.first_audio_at is None:  # noqa: ASYNC110  # the greeting plays out
            await asyncio.sleep(0.01)
        await link.caller_speaks(voiced(900) + silence(900))
        while not seen:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    conv.post_hangup("NORMAL_CLEARING")
    await asyncio.wait_for(task, 10)
    assert seen[0].role == "user" and seen[0].content == "what time do you big get"
    assert seen[0].alternatives == ("what time do you open",)
