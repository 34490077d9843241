"""The offline answerer: STT-style questions get the profile's exact facts; unknowns get an honest answer."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from storeagent.agent.ports import Message, TextDelta, ToolCall, ToolSpec
from storeagent.agent.providers.answerer import MESSAGE_PROMPT, NO_NUMBER, NUMBER_RETRY, UNKNOWN, ShopAnswerer
from storeagent.agent.store.tools import ShopTools
from storeagent.shop import ShopConfig, shop_config_from_manifest

NY = ZoneInfo("America/New_York")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sunrise-bakery.yaml"
WED_NOON = datetime(2026, 6, 3, 12, 0, tzinfo=NY)


@pytest.fixture
def config() -> ShopConfig:
    return shop_config_from_manifest(yaml.safe_load(EXAMPLE.read_text()))


def specs(config: ShopConfig) -> list[ToolSpec]:
    return list(ShopTools(config).specs())


async def ask(config: ShopConfig, text: str, when: datetime = WED_NOON,
              history: list[Message] | None = None) -> tuple[str, list[ToolCall]]:
    llm = ShopAnswerer(config.profile, now=lambda: when)
    deltas: list[str] = []
    calls: list[ToolCall] = []
    async for chunk in llm.stream([*(history or []), Message("user", text)], specs(config)):
        if isinstance(chunk, TextDelta):
            deltas.append(chunk.text)
        else:
            calls.append(chunk)
    return "".join(deltas), calls


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("what time do you open on saturday", "On Saturday we're open 8 AM to 4 PM."),
        ("when do you close on fridays", "On Friday we're open 7 AM to 8 PM."),
        ("Hi, how early can I come in on Saturday?", "On Saturday we're open 8 AM to 4 PM."),  # not a greeting
        ("how late can i stop by tomorrow", "Tomorrow we're open 7 AM to 6 PM."),
        ("are you open tomorrow", "Tomorrow we're open 7 AM to 6 PM."),
        ("are you open on sunday", "On Sunday we're closed."),
        ("are you open on christmas eve", "On Christmas Eve we're open 7 AM to 12 PM for Christmas Eve."),
        ("are you open now", "Yes, we're open now until 6 PM."),
        ("what are your hours", "Our hours are Monday to Thursday 7 AM to 6 PM, Friday 7 AM to 8 PM, "
                                "Saturday 8 AM to 4 PM, Sunday closed."),
        ("how much is the sourdough loaf", "Yes, we have the sourdough loaf, a crusty naturally leavened loaf. "
                                           "It's $6.50."),
        ("do you have croissants", "Yes, we have the croissant. It's $3.25."),
        ("you have croissant", "Yes, we have the croissant. It's $3.25."),
        ("is the blueberry muffin available", "Sorry, the blueberry muffin is not available right now. "
                                              "It's normally $2.75."),
        ("how much is the baguette", "Yes, we have the baguette. It's $4.00."),
        ("where are you located", "We're at 42 Maple Street, Springfield, across the street from the public "
                                  "library, with parking behind the shop."),
        ("do you have gluten free bread", "We bake a gluten-free seeded loaf on Fridays only."),
        ("can i order a birthday cake", "Yes, custom cakes need two days notice and a deposit."),
        ("do you sell coffee", UNKNOWN),
        ("my dog likes pizza", UNKNOWN),
        ("hello", "Hello! How can I help you today?"),
        ("thanks", "You're welcome. Is there anything else I can help you with?"),
        ("", "Sorry, I didn't catch that. Could you say it again?"),
    ],
)
async def test_questions(config: ShopConfig, question: str, answer: str) -> None:
    text, calls = await ask(config, question)
    assert text == answer
    assert calls == []


async def test_closed_now_names_next_opening(config: ShopConfig) -> None:
    sunday = datetime(2026, 6, 7, 12, 0, tzinfo=NY)
    assert (await ask(config, "are you open right now", sunday))[0] == (
        "We're closed right now. We open again tomorrow at 7 AM.")
    assert (await ask(config, "what time do you open", sunday))[0] == (
        "Today we're closed. We open again tomorrow at 7 AM.")


async def test_menu_is_long_and_exact(config: ShopConfig) -> None:
    text, _ = await ask(config, "what's on the menu")
    for fact in ("sourdough loaf, $6.50", "croissant, $3.25", "chocolate cake, $28.00", "baguette, $4.00",
                 "blueberry muffin, $2.75"):
        assert fact in text.lower()
    assert len(text.split()) > 40


async def test_streams_word_by_word(config: ShopConfig) -> None:
    llm = ShopAnswerer(config.profile, now=lambda: WED_NOON)
    chunks = [c async for c in llm.stream([Message("user", "where are you located")], [])]
    assert len(chunks) > 10 and all(isinstance(c, TextDelta) and c.text.count(" ") <= 1 for c in chunks)


async def test_goodbye_ends_the_call(config: ShopConfig) -> None:
    text, calls = await ask(config, "thank you goodbye")
    assert text == "Thanks for calling Sunrise Bakery. Goodbye!"
    assert [c.name for c in calls] == ["end_call"]
    # the round after the end_call result says nothing more
    llm = ShopAnswerer(config.profile, now=lambda: WED_NOON)
    history = [Message("user", "bye"), Message("assistant", text, tool_calls=tuple(calls)),
               Message("tool", "", tool_call_id=calls[0].id)]
    assert [c async for c in llm.stream(history, specs(config))] == []


async def test_person_transfers_and_tool_result_is_spoken(config: ShopConfig) -> None:
    text, calls = await ask(config, "can i talk to a real person")
    assert text == "" and [c.name for c in calls] == ["transfer_to_staff"]
    result = await ShopTools(config, now=lambda: WED_NOON).call(calls[0].name, calls[0].arguments)
    llm = ShopAnswerer(config.profile, now=lambda: WED_NOON)
    history = [Message("user", "person"), Message("assistant", "", tool_calls=tuple(calls)),
               Message("tool", result.content, tool_call_id=calls[0].id)]
    spoken = "".join(c.text for c in [c async for c in llm.stream(history, specs(config))]
                     if isinstance(c, TextDelta))
    assert spoken == result.content


async def test_no_transfer_tool_offers_message(config: ShopConfig) -> None:
    llm = ShopAnswerer(config.profile, now=lambda: WED_NOON)
    out = [c async for c in llm.stream([Message("user", "can i speak to the manager")], [])]
    assert not any(isinstance(c, ToolCall) for c in out)
    assert "take a message" in "".join(c.text for c in out if isinstance(c, TextDelta))


async def test_message_over_two_turns(config: ShopConfig) -> None:
    text, calls = await ask(config, "i would like to leave a message")
    assert text == MESSAGE_PROMPT and calls == []
    history = [Message("user", "i would like to leave a message"), Message("assistant", MESSAGE_PROMPT)]
    said = "my name is ann lee my number is five five five one two three four five six seven please call me"
    text, calls = await ask(config, said, history=history)
    assert text == "" and [c.name for c in calls] == ["take_message"]
    args = json.loads(calls[0].arguments)
    assert args == {"caller_name": "Ann Lee", "callback_number": "5551234567", "message": said}


async def test_message_without_number_asks_once_more(config: ShopConfig) -> None:
    history = [Message("user", "leave a message"), Message("assistant", MESSAGE_PROMPT)]
    assert (await ask(config, "this is bob tell them hi", history=history))[0] == NUMBER_RETRY
    history += [Message("user", "this is bob tell them hi"), Message("assistant", NUMBER_RETRY)]
    # twice without a number: no take_message (its refusal is worded for a model, and was read to the caller)
    assert await ask(config, "this is bob", history=history) == (NO_NUMBER, [])
    text, calls = await ask(config, "okay that's all bye", history=history)
    assert text.endswith("Goodbye!") and [c.name for c in calls] == ["end_call"]


SHOPS = Path(__file__).resolve().parents[2] / "bench" / "quality" / "shops"
SALON = shop_config_from_manifest(yaml.safe_load((SHOPS / "bright-cuts-salon.yaml").read_text()))
HARDWARE = shop_config_from_manifest(yaml.safe_load((SHOPS / "oak-hardware.yaml").read_text()))


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("when are you open on saturday", "On Saturday we're open 8 AM to 4 PM."),  # "when" + a day asks hours
        ("please tell the owner i called", MESSAGE_PROMPT),  # a message without the word
        ("can you tell me the price of the croissant", "Yes, we have the croissant. It's $3.25."),  # not a relay
        ("is any of your bread gluten free", "We bake a gluten-free seeded loaf on Fridays only."),
        ("can i order a croissant", "Yes, we have the croissant. It's $3.25."),  # the FAQ speaks of no croissant
    ],
)
async def test_everyday_phrasings(config: ShopConfig, question: str, answer: str) -> None:
    text, calls = await ask(config, question)
    assert text.startswith(answer) and calls == []


@pytest.mark.parametrize("question", ["great thanks have a nice day", "alright that's everything thank you"])
async def test_a_turn_ending_in_a_closing_phrase_is_a_goodbye(config: ShopConfig, question: str) -> None:
    assert [c.name for c in (await ask(config, question))[1]] == ["end_call"]


async def test_a_closing_phrase_inside_a_longer_turn_is_not_a_goodbye(config: ShopConfig) -> None:
    text, calls = await ask(config, "thats all i wanted to know about the croissant how much is it")
    assert calls == [] and "$3.25" in text


@pytest.mark.parametrize(
    ("shop", "question", "answer"),
    [
        (SALON, "do you cut children's hair", "Kids under twelve"),  # the FAQ names the haircut's alias "cut"
        (SALON, "my son is six can he get a haircut there", "Kids under twelve"),  # kin of "children"
        (SALON, "how much is a haircut", "Yes, we have the haircut. It's $35.00."),
        (HARDWARE, "would you bring the lumber to my house", "We deliver lumber"),  # kin of "deliver"
    ],
)
async def test_faq_topics_in_everyday_words(shop: ShopConfig, question: str, answer: str) -> None:
    text, _ = await ask(shop, question)
    assert text.startswith(answer)
