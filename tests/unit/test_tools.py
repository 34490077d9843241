"""The shop's LLM tools: hours across timezone/holiday edges, transfer rules, message validation."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from storeagent.agent.ports import EndCall, Transfer
from storeagent.agent.store.tools import ShopTools, normalize_callback
from storeagent.shop import ShopConfig, shop_config_from_manifest

NY = ZoneInfo("America/New_York")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sunrise-bakery.yaml"


class Sink:
    def __init__(self, fail: bool = False) -> None:
        self.messages: list[dict[str, Any]] = []
        self.fail = fail

    async def submit(self, message: dict[str, Any]) -> None:
        if self.fail:
            raise OSError("disk full")
        self.messages.append(message)


@pytest.fixture
def config() -> ShopConfig:
    return shop_config_from_manifest(yaml.safe_load(EXAMPLE.read_text()))


def tools_at(config: ShopConfig, when: datetime, sink: Sink | None = None) -> ShopTools:
    return ShopTools(config, sink, now=lambda: when)


WED_NOON = datetime(2026, 6, 3, 12, 0, tzinfo=NY)
SUN_NOON = datetime(2026, 6, 7, 12, 0, tzinfo=NY)


def test_specs_are_json_schema(config: ShopConfig) -> None:
    specs = {s.name: s for s in tools_at(config, WED_NOON).specs()}
    assert set(specs) == {"get_opening_hours", "is_open_now", "lookup_menu_item", "search_faq",
                          "transfer_to_staff", "take_message", "end_call"}
    msg = specs["take_message"].parameters
    assert msg["type"] == "object"
    assert set(msg["required"]) == {"caller_name", "callback_number", "message"}
    json.dumps([dict(s.parameters) for s in specs.values()])  # serializable for any LLM API


async def test_hours_by_day_and_week(config: ShopConfig) -> None:
    t = tools_at(config, WED_NOON)
    assert (await t.call("get_opening_hours", '{"day": "saturday"}')).content == (
        "On Saturday we're open 8 AM to 4 PM.")
    assert (await t.call("get_opening_hours", '{"day": "Tomorrow"}')).content == (
        "Tomorrow we're open 7 AM to 6 PM.")
    assert (await t.call("get_opening_hours", '{"day": "2026-12-25"}')).content == (
        "On Friday, December 25 we're closed for Christmas Day.")
    assert (await t.call("get_opening_hours", "{}")).content.startswith("Our hours are Monday to Thursday")
    bad = await t.call("get_opening_hours", '{"day": "someday"}')
    assert "Invalid arguments" in bad.content and "someday" in bad.content


async def test_today_is_the_shop_local_day(config: ShopConfig) -> None:
    # Sunday 02:00 UTC is still Saturday evening in New York
    t = tools_at(config, datetime(2026, 6, 7, 2, 0, tzinfo=UTC))
    assert (await t.call("get_opening_hours", '{"day": "today"}')).content == "Today we're open 8 AM to 4 PM."


async def test_is_open_now(config: ShopConfig) -> None:
    assert (await tools_at(config, WED_NOON).call("is_open_now", "")).content == (
        "Yes, we're open now until 6 PM.")
    assert (await tools_at(config, SUN_NOON).call("is_open_now", "{}")).content == (
        "We're closed right now. We open again tomorrow at 7 AM.")
    xmas = datetime(2026, 12, 25, 9, 0, tzinfo=NY)
    assert (await tools_at(config, xmas).call("is_open_now", "{}")).content == (
        "We're closed right now. We open again tomorrow at 8 AM.")


async def test_menu_and_faq(config: ShopConfig) -> None:
    t = tools_at(config, WED_NOON)
    r = await t.call("lookup_menu_item", '{"name": "sourdough"}')
    assert r.content == "Yes, we have the sourdough loaf, a crusty naturally leavened loaf. It's $6.50."
    r = await t.call("lookup_menu_item", '{"name": "muffins"}')
    assert r.content == "Sorry, the blueberry muffin is not available right now. It's normally $2.75."
    assert "not on the menu" in (await t.call("lookup_menu_item", '{"name": "espresso"}')).content
    assert "Fridays only" in (await t.call("search_faq", '{"question": "gluten free?"}')).content
    assert "take a message" in (await t.call("search_faq", '{"question": "do you deliver"}')).content


async def test_transfer_only_to_staff_during_staffed_hours(config: ShopConfig) -> None:
    ok = await tools_at(config, WED_NOON).call("transfer_to_staff", "{}")
    assert ok.action == Transfer("+15551239999")
    named = await tools_at(config, WED_NOON).call("transfer_to_staff", '{"number": "+1 555 123 9999"}')
    assert named.action == Transfer("+15551239999")
    other = await tools_at(config, WED_NOON).call("transfer_to_staff", '{"number": "+15550000000"}')
    assert other.action is None and "only transfer to the shop's own staff" in other.content
    closed = await tools_at(config, SUN_NOON).call("transfer_to_staff", "{}")
    assert closed.action is None and "take a message" in closed.content
    holiday = await tools_at(config, datetime(2026, 12, 25, 12, 0, tzinfo=NY)).call("transfer_to_staff", "{}")
    assert holiday.action is None


async def test_transfer_uses_staffed_hours_when_configured(config: ShopConfig) -> None:
    cfg = config.model_copy(update={"transfer": config.transfer.model_copy(update={
        "staffed_hours": type(config.profile.hours).model_validate(
            {"wednesday": [{"open": "13:00", "close": "15:00"}]})})})
    assert (await tools_at(cfg, WED_NOON).call("transfer_to_staff", "{}")).action is None  # shop open, unstaffed
    at_two = datetime(2026, 6, 3, 14, 0, tzinfo=NY)
    assert (await tools_at(cfg, at_two).call("transfer_to_staff", "{}")).action == Transfer("+15551239999")


async def test_transfer_without_staff_numbers(config: ShopConfig) -> None:
    cfg = config.model_copy(update={"transfer": config.transfer.model_copy(update={"staff_numbers": []})})
    r = await tools_at(cfg, WED_NOON).call("transfer_to_staff", "{}")
    assert r.action is None and "no staff number" in r.content


async def test_take_message_stores_and_reads_number_back(config: ShopConfig) -> None:
    sink = Sink()
    t = tools_at(config, WED_NOON, sink)
    r = await t.call("take_message", json.dumps(
        {"caller_name": "Ann", "callback_number": "(555) 123-4567", "message": "Call me about a cake"}))
    assert r.action is None
    assert "5 5 5 1 2 3 4 5 6 7" in r.content and "Is that right?" in r.content
    [m] = sink.messages
    assert m["callback_number"] == "5551234567" and m["store"] == "sunrise-bakery" and m["id"]
    assert m["created_at"] == "2026-06-03T16:00:00+00:00"


@pytest.mark.parametrize(
    ("raw", "ok"),
    [("+15551234567", "+15551234567"), ("+44 20 7946 0958", "+442079460958"), ("555-1234", "5551234"),
     ("555 123", None), ("+0123456789", None), ("call me maybe", None), ("1234567890123456", None)],
)
def test_callback_number_validation(raw: str, ok: str | None) -> None:
    if ok is None:
        with pytest.raises(ValueError):
            normalize_callback(raw)
    else:
        assert normalize_callback(raw) == ok


async def test_bad_message_arguments_are_results_not_exceptions(config: ShopConfig) -> None:
    sink = Sink()
    t = tools_at(config, WED_NOON, sink)
    r = await t.call("take_message", '{"caller_name": "Ann", "callback_number": "12", "message": "hi"}')
    assert "callback_number" in r.content and "7 to 15 digits" in r.content
    r = await t.call("take_message", '{"caller_name": "Ann"}')
    assert "callback_number" in r.content and "message" in r.content
    assert "not valid JSON" in (await t.call("take_message", "{caller")).content
    assert "JSON object" in (await t.call("take_message", "[1]")).content
    assert "no tool named" in (await t.call("launch_rockets", "{}")).content
    assert sink.messages == []


async def test_message_sink_failure_and_absence(config: ShopConfig) -> None:
    args = '{"caller_name": "Ann", "callback_number": "+15551234567", "message": "hi"}'
    assert "couldn't save" in (await tools_at(config, WED_NOON, Sink(fail=True)).call("take_message", args)).content
    assert "can't save" in (await tools_at(config, WED_NOON).call("take_message", args)).content


async def test_end_call(config: ShopConfig) -> None:
    r = await tools_at(config, WED_NOON).call("end_call", '{"reason": "caller said goodbye"}')
    assert r.action == EndCall("caller said goodbye")


# ------------------------------------------------------------------------------------- Korean shop
KOREAN = Path(__file__).resolve().parents[2] / "examples" / "gangnam-chicken.yaml"
SEOUL = ZoneInfo("Asia/Seoul")


async def test_korean_shop_tools_answer_in_korean_with_won() -> None:
    cfg = shop_config_from_manifest(yaml.safe_load(KOREAN.read_text()))
    tools = tools_at(cfg, datetime(2026, 11, 24, 20, 0, tzinfo=SEOUL))  # a Tuesday evening
    saturday = (await tools.call("get_opening_hours", json.dumps({"day": "토요일"}, ensure_ascii=False))).content
    assert saturday.startswith("토요일은 ") and saturday.endswith(" 영업합니다.") and "까지" in saturday
    assert "AM" not in saturday and "PM" not in saturday and "On " not in saturday
    week = (await tools.call("get_opening_hours", "{}")).content
    assert week.startswith("영업시간은 ") and "요일" in week
    item = (await tools.call("lookup_menu_item", json.dumps({"name": "양념"}, ensure_ascii=False))).content
    assert item == "네, 양념 치킨 있습니다. 가격은 22,000원입니다."
    sold_out = (await tools.call("lookup_menu_item", json.dumps({"name": "치즈볼"}, ensure_ascii=False))).content
    assert "5,000원" in sold_out and "KRW" not in sold_out
    now = (await tools.call("is_open_now", "{}")).content
    assert now.startswith("네, 지금 영업 중이고") or now.startswith("지금은 영업하지 않습니다")
    holiday = (await tools.call("get_opening_hours", json.dumps({"day": "2026-09-25"}))).content
    assert holiday == "9월 25일 금요일은 추석 때문에 쉽니다."


def test_korean_clock_words() -> None:
    from datetime import time

    from storeagent.agent.store.wording import say_time_ko

    assert [say_time_ko(time(h, m)) for h, m in ((0, 0), (9, 0), (12, 0), (14, 30), (21, 0), (23, 15))] == [
        "밤 12시", "오전 9시", "낮 12시", "오후 2시 30분", "밤 9시", "밤 11시 15분"]
