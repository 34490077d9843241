"""Shop facts: hours across timezone, DST and holiday edges; menu and FAQ matching."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from storeagent.agent.store import knowledge as k
from storeagent.shop import ShopProfile, shop_config_from_manifest

NY = ZoneInfo("America/New_York")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sunrise-bakery.yaml"


@pytest.fixture
def bakery() -> ShopProfile:
    return shop_config_from_manifest(yaml.safe_load(EXAMPLE.read_text())).profile


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY)  # type: ignore[misc]


def test_closing_minute_is_exclusive_and_opening_minute_inclusive(bakery: ShopProfile) -> None:
    # 2026-06-03 is a Wednesday: 7 AM to 6 PM
    assert not k.is_open_at(bakery, ny(2026, 6, 3, 6, 59, 59))
    assert k.is_open_at(bakery, ny(2026, 6, 3, 7, 0))
    assert k.is_open_at(bakery, ny(2026, 6, 3, 17, 59, 59))
    assert not k.is_open_at(bakery, ny(2026, 6, 3, 18, 0))


def test_utc_instant_on_a_different_local_day(bakery: ShopProfile) -> None:
    # Saturday 01:30 UTC is Friday 21:30 in New York (EDT): Friday closes at 8 PM -> closed
    sat_utc = datetime(2026, 6, 6, 1, 30, tzinfo=UTC)
    assert k.local_time(bakery, sat_utc).date() == date(2026, 6, 5)
    assert not k.is_open_at(bakery, sat_utc)
    # Saturday 00:30 UTC is Friday 20:30 local... still closed; 23:30 UTC Friday = 19:30 local -> open
    assert k.is_open_at(bakery, datetime(2026, 6, 5, 23, 30, tzinfo=UTC))


def test_naive_datetime_rejected(bakery: ShopProfile) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        k.is_open_at(bakery, datetime(2026, 6, 3, 12, 0))


def test_dst_change_day_uses_wall_clock(bakery: ShopProfile) -> None:
    # 2026-03-08 (Sunday) clocks spring forward; Monday 2026-03-09 opens 7 AM EDT = 11:00 UTC, not 12:00
    assert k.is_open_at(bakery, datetime(2026, 3, 9, 11, 0, tzinfo=UTC))
    assert not k.is_open_at(bakery, datetime(2026, 3, 9, 10, 59, tzinfo=UTC))
    # Saturday before the change (EST): 8 AM local = 13:00 UTC
    assert k.is_open_at(bakery, datetime(2026, 3, 7, 13, 0, tzinfo=UTC))
    assert not k.is_open_at(bakery, datetime(2026, 3, 7, 12, 59, tzinfo=UTC))
    nxt = k.next_opening(bakery, datetime(2026, 3, 8, 12, 0, tzinfo=UTC))
    assert nxt is not None and nxt.astimezone(UTC) == datetime(2026, 3, 9, 11, 0, tzinfo=UTC)
    # autumn: 2026-11-01 falls back; Monday 11-02 opens 7 AM EST = 12:00 UTC
    nxt = k.next_opening(bakery, datetime(2026, 11, 1, 12, 0, tzinfo=UTC))
    assert nxt is not None and nxt.astimezone(UTC) == datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def test_holidays_closed_and_special_hours(bakery: ShopProfile) -> None:
    assert k.hours_on(bakery, date(2026, 12, 25)) == []  # a Friday, normally open
    assert not k.is_open_at(bakery, ny(2026, 12, 25, 12, 0))
    eve = k.hours_on(bakery, date(2026, 12, 24))
    assert [(r.open, r.close) for r in eve] == [(time(7), time(12))]
    assert k.is_open_at(bakery, ny(2026, 12, 24, 11, 59))
    assert not k.is_open_at(bakery, ny(2026, 12, 24, 12, 0))
    assert k.describe_hours(bakery, date(2026, 12, 25)) == "On Friday we're closed for Christmas Day."
    assert k.describe_hours(bakery, date(2026, 12, 24), "Tomorrow") == (
        "Tomorrow we're open 7 AM to 12 PM for Christmas Eve."
    )
    # after Christmas Eve closes, the next opening skips Christmas Day (holiday) to Saturday 8 AM
    assert k.next_opening(bakery, ny(2026, 12, 24, 13, 0)) == ny(2026, 12, 26, 8, 0)


def test_next_opening_and_closing(bakery: ShopProfile) -> None:
    assert k.next_opening(bakery, ny(2026, 6, 6, 17, 0)) == ny(2026, 6, 8, 7, 0)  # Sat evening -> Monday
    assert k.closing_time(bakery, ny(2026, 6, 5, 9, 0)) == ny(2026, 6, 5, 20, 0)
    assert k.closing_time(bakery, ny(2026, 6, 7, 9, 0)) is None
    never = bakery.model_copy(update={"hours": type(bakery.hours)()})
    assert k.next_opening(never, ny(2026, 6, 6, 17, 0)) is None


def test_staffed_hours_respect_holidays(bakery: ShopProfile) -> None:
    staffed = type(bakery.hours).model_validate({d: [{"open": "09:00", "close": "17:00"}] for d in
                                                 ("monday", "thursday", "friday")})
    assert k.is_open_at(bakery, ny(2026, 6, 5, 16, 0), staffed)
    assert not k.is_open_at(bakery, ny(2026, 6, 5, 17, 30), staffed)  # shop open, staff gone
    assert not k.is_open_at(bakery, ny(2026, 12, 25, 10, 0), staffed)  # holiday closed
    assert k.is_open_at(bakery, ny(2026, 12, 24, 10, 0), staffed)  # eve: open 7-12 overlaps 9-17


def test_wording(bakery: ShopProfile) -> None:
    assert k.say_time(time(7)) == "7 AM"
    assert k.say_time(time(12)) == "12 PM"
    assert k.say_time(time(0)) == "12 AM"
    assert k.say_time(time(18, 30)) == "6:30 PM"
    assert k.describe_hours(bakery, date(2026, 6, 6)) == "On Saturday we're open 8 AM to 4 PM."
    assert k.describe_week(bakery) == (
        "Our hours are Monday to Thursday 7 AM to 6 PM, Friday 7 AM to 8 PM, Saturday 8 AM to 4 PM, "
        "Sunday closed."
    )
    assert k.format_price(Decimal("6.50"), "USD") == "$6.50"
    assert k.format_price(Decimal("28"), "USD") == "$28.00"
    assert k.format_price(Decimal("5000"), "KRW") == "5,000 KRW"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("how much is the sourdough loaf", "sourdough loaf"),
        ("do you have croissants", "croissant"),
        ("do you have any muffins today", "blueberry muffin"),
        ("is there french bread", "baguette"),
        ("how much are baguettes", "baguette"),
        ("do you have a chocolate cake", "chocolate cake"),
        ("how much is the sour dough loaf", "sourdough loaf"),  # STT split word: fuzzy
        ("do you have the croissont", "croissant"),  # misspelt
        ("how much is sourdough", "sourdough loaf"),  # distinctive word
        ("do you sell coffee", None),
        ("what time do you open", None),
    ],
)
def test_find_item(bakery: ShopProfile, text: str, expected: str | None) -> None:
    item = k.find_item(bakery, text)
    assert (item.name if item else None) == expected


def test_faq(bakery: ShopProfile) -> None:
    hit = k.match_faq(bakery, "do you have gluten free bread")
    assert hit is not None and "Fridays only" in hit.answer
    hit = k.match_faq(bakery, "can i get a birthday cake made")
    assert hit is not None and "two days notice" in hit.answer
    assert k.match_faq(bakery, "is there a bathroom") is None


def test_caller_phrases_cover_menu_and_days(bakery: ShopProfile) -> None:
    text = "\n".join(k.caller_phrases(bakery))
    for word in ("saturday", "croissants", "sourdough loaf", "french bread", "christmas eve", "message"):
        assert word in text
