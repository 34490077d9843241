"""The Korean offline answerer: recognizer-style Korean (any spacing, particles, endings, Hangul numerals, one
misheard letter) gets the manifest's facts in Korean; its stems come from the dev phrasings only."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from storeagent.agent.loopback.demo import script_for
from storeagent.agent.ports import Message, ToolCall
from storeagent.agent.providers.answerer_ko import (
    FAQ_SYNONYMS,
    MESSAGE_PROMPT,
    NUMBER_RETRY,
    STEMS,
    UNKNOWN,
    KoreanAnswerer,
)
from storeagent.agent.store import ko_text
from storeagent.shop import ShopConfig, shop_config_from_manifest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench/quality"))

import dataset  # noqa: E402

SEOUL = ZoneInfo("Asia/Seoul")
WED_3PM = datetime(2026, 3, 11, 15, 0, tzinfo=SEOUL)  # closed until 16:00 on weekdays
TOOLS = {"transfer_to_staff", "end_call", "take_message"}


@pytest.fixture(scope="module")
def shop() -> ShopConfig:
    return shop_config_from_manifest(yaml.safe_load((ROOT / "examples/gangnam-chicken.yaml").read_text()))


def ask(shop: ShopConfig, text: str, when: datetime = WED_3PM,
        history: list[Message] | None = None) -> tuple[str, list[ToolCall]]:
    a = KoreanAnswerer(shop.profile, now=lambda: when).answer(
        [Message("assistant", "감사합니다"), *(history or []), Message("user", text)], TOOLS)
    return a.text, a.calls


@pytest.mark.parametrize("text", ["토요일 몇시 문 여세요", "토 요일은 몇 시 에 오픈 하나요",
                                  "토요일에 문을 여십니까 몇시"])
def test_weekday_hours_whatever_the_spacing_and_particles(shop: ShopConfig, text: str) -> None:
    assert ask(shop, text)[0] == "토요일은 낮 12시부터 밤 11시 59분까지 영업합니다."


def test_today_and_tomorrow_are_the_shops_local_days(shop: ShopConfig) -> None:
    assert ask(shop, "오늘 몇 시 오픈")[0] == "오늘은 오후 4시부터 밤 11시 59분까지 영업합니다."
    saturday = datetime(2026, 3, 14, 23, 30, tzinfo=SEOUL)
    assert ask(shop, "내일은 몇시에 마감이죠", saturday)[0] == "내일은 낮 12시부터 밤 10시까지 영업합니다."


def test_open_now_answers_from_the_clock(shop: ShopConfig) -> None:
    assert ask(shop, "지금 영업 하세요")[0] == "지금은 영업하지 않습니다. 오늘 오후 4시에 다시 엽니다."
    evening = datetime(2026, 3, 11, 19, 0, tzinfo=SEOUL)
    assert ask(shop, "지금 영업 하세요", evening)[0] == "네, 지금 영업 중이고 밤 11시 59분까지 합니다."


def test_holidays_by_name_and_by_a_date_in_hangul_numerals(shop: ShopConfig) -> None:
    assert ask(shop, "추석 당일 영업 해요", datetime(2026, 9, 1, tzinfo=SEOUL))[0] == \
        "9월 25일 금요일은 추석 때문에 쉽니다."
    text, _ = ask(shop, "십이월 삼십일일 몇 시까지 해요", datetime(2026, 12, 1, tzinfo=SEOUL))
    assert text == "12월 31일 목요일은 연말 때문에 낮 12시부터 오후 8시까지 영업합니다."
    assert ask(shop, "12월 31일 몇 시까지 해요", datetime(2026, 12, 1, tzinfo=SEOUL))[0] == text


@pytest.mark.parametrize(("text", "price"), [("양념치킨이 얼마죠", "22,000원"), ("후라이드 는 얼마 에요", "20,000원"),
                                             ("프라이드 하나 값", "20,000원"), ("감장 치킨 가격", "22,000원"),
                                             ("반반은 얼마", "22,000원")])
def test_prices_in_won_with_particles_aliases_and_one_misheard_letter(shop: ShopConfig, text: str,
                                                                    price: str) -> None:
    answer, _ = ask(shop, text)
    assert price in answer and "메뉴는" not in answer


def test_sold_out_item_says_so_and_its_price(shop: ShopConfig) -> None:
    answer, _ = ask(shop, "치즈볼도 시킬수 있어요")
    assert "준비가 안 됩니다" in answer and "5,000원" in answer


def test_address_menu_and_faq(shop: ShopConfig) -> None:
    assert "테헤란로 123" in ask(shop, "가게 위치 가 어디죠")[0]
    menu = ask(shop, "메뉴 뭐뭐 있어요")[0]
    assert all(m.name in menu for m in shop.profile.menu) and "지금은 준비가 안 됩니다" in menu
    assert ask(shop, "배달 시켜 먹을 수 있나요")[0] == shop.profile.faq[0].answer
    assert ask(shop, "포장 해가면요")[0] == shop.profile.faq[1].answer


def test_message_over_two_turns_reads_hangul_digits_and_the_name(shop: ShopConfig) -> None:
    assert ask(shop, "사장님께 메시지 하나 남기려구요")[0] == MESSAGE_PROMPT
    history = [Message("user", "메시지 남길게요"), Message("assistant", MESSAGE_PROMPT)]
    assert ask(shop, "내일 예약하고 싶어요", history=history)[0] == NUMBER_RETRY
    _, calls = ask(shop, "제 이름은 김민수이고 번호는 공일공 일이삼사 오육칠팔 내일 전화 주세요", history=history)
    (call,) = calls
    assert call.name == "take_message"
    args = json.loads(call.arguments)
    assert args["callback_number"] == "01012345678" and args["caller_name"] == "김민수"


def test_transfer_goodbye_and_greeting_are_told_apart(shop: ShopConfig) -> None:
    assert [c.name for c in ask(shop, "직원분 좀 바꿔주실래요")[1]] == ["transfer_to_staff"]
    text, calls = ask(shop, "네 수고하세요")
    assert [c.name for c in calls] == ["end_call"] and "안녕히" in text
    assert ask(shop, "안녕하세요")[1] == []


def test_unknown_is_honest(shop: ShopConfig) -> None:
    assert ask(shop, "주식 투자 어떻게 생각해요")[0] == UNKNOWN


def test_ko_text_helpers() -> None:
    assert ko_text.compact("양념 치킨은, 얼마?") == "양념치킨은얼마"
    assert ko_text.jamo("간장") == "ㄱㅏㄴㅈㅏㅇ"
    assert [ko_text.sino_number(w) for w in ("삼십일", "십이", "이", "십", "25", "사과")] == [31, 12, 2, 10, 25, None]
    assert ko_text.phone_digits("공일공-1234 오륙칠팔") == "01012345678"


def test_stems_come_from_the_dev_phrasings_only() -> None:
    """Rule sources stay on the dev split: each stem is in a dev sentence; no held-out or demo sentence is one."""
    dev = [ko_text.compact(t) for rows in dataset.KOREAN_DEV.values() for t, _ in rows]
    dev += [ko_text.compact(t) for t in dataset.KOREAN_DEV_OTHER]
    stems = [s for group in STEMS.values() for s in group] + [s for g in FAQ_SYNONYMS.values() for s in g]
    missing = [s for s in stems if not any(s in d for d in dev)]
    assert not missing
    shop = dataset.load_shop(dataset.KOREAN_SHOP)
    held = [ko_text.compact(t) for rows in dataset.KOREAN_HELDOUT.values() for t, _ in rows]
    demo = [ko_text.compact(q.text) for q in script_for(shop)]
    assert not set(held + demo) & set(dev)
    assert not set(demo) & set(held)
