"""The evaluation set: caller utterances per shop, intent and phrasing, with the facts a right answer states.

Two parts. `dev` phrasings may be looked at while tuning rules or vocabularies; `heldout` phrasings were
written for this benchmark only and nothing in the agent is built from them (`test_bench_quality_smoke.py`
checks that no held-out sentence is one of `caller_phrases()`, the offline STT's vocabulary bias). The facts a
right answer must state come from the shop's manifest (hours, prices, address, FAQ answers), never from the
agent's code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import yaml

from storeagent.shop import WEEKDAYS, ShopConfig, shop_config_from_manifest

ROOT = Path(__file__).resolve().parents[2]
SHOPS = [ROOT / "examples/sunrise-bakery.yaml", ROOT / "bench/quality/shops/bright-cuts-salon.yaml",
         ROOT / "bench/quality/shops/oak-hardware.yaml"]
KOREAN_SHOP = ROOT / "examples/gangnam-chicken.yaml"


@dataclass(frozen=True, slots=True)
class Utterance:
    id: str
    shop: str  # the manifest's metadata.name
    language: str
    intent: str
    split: str  # "dev" or "heldout"
    text: str
    expect: tuple[str, ...]  # regexes the answer must all match; "!regex" must not match; "tool:<name>" a call


# {d} a weekday, {i} a menu item, {f} an FAQ topic word. Dev phrasings are close to what the vocabulary holds.
DEV: dict[str, list[str]] = {
    "hours_day": ["what time do you open on {d}", "are you open on {d}", "when do you close on {d}",
                  "what are your hours on {d}"],
    "price": ["how much is the {i}", "how much does a {i} cost", "what is the price of the {i}"],
    "availability": ["do you have {i}", "is the {i} available", "do you have any {i} today"],
    "address": ["where are you located", "what is your address", "how do i get there"],
    "faq": ["{q}"],
    "message": ["i would like to leave a message", "can i leave a message"],
    "transfer": ["can i talk to a person", "i want to talk to a human"],
    "goodbye": ["thank you goodbye", "that is all bye"],
}

# Written for the evaluation only: everyday phrasings, fillers, politeness, indirect questions.
HELDOUT: dict[str, list[str]] = {
    "hours_day": ["hi there, I was wondering how late you're open on {d}",
                  "could you tell me your opening times for {d}",
                  "if I come by on {d} morning, will you be open",
                  "um, what hours are you guys keeping on {d}",
                  "until when can I stop in on {d}",
                  "do you happen to be open this {d}"],
    "price": ["roughly what would a {i} set me back",
              "I'd like to know what you charge for a {i}",
              "what's the cost of one {i} these days",
              "how expensive is your {i}",
              "quick question, what do you ask for the {i}"],
    "availability": ["are there any {i} left right now",
                     "I'm hoping to pick up a {i}, do you carry that",
                     "would you happen to have a {i} in stock",
                     "is the {i} something you have at the moment"],
    "address": ["what street are you on",
                "I'm trying to find your place, where exactly are you",
                "could you give me directions to the store",
                "what's the location of your shop"],
    "faq": ["{h}"],
    "message": ["could you pass a message along to the owner",
                "I need to leave a voicemail for the manager",
                "please take down a message for me"],
    "transfer": ["is there a real person I could speak with",
                 "put me through to somebody on the staff please",
                 "I'd rather talk to an actual employee"],
    "goodbye": ["okay that's everything, bye now",
                "great, thanks so much, goodbye",
                "alright, bye bye"],
}

# Held-out FAQ phrasings per shop: the question an FAQ entry answers, asked in other words.
FAQ_HELDOUT: dict[str, list[tuple[str, str]]] = {
    "sunrise-bakery": [("can someone with celiac get gluten free bread from you", "gluten"),
                       ("I want a birthday cake made for my daughter, can you do that", "custom")],
    "bright-cuts-salon": [("do I need to book ahead or can I just walk in", "walk"),
                          ("my kids need haircuts, do you do children", "kids")],
    "oak-hardware": [("can you make a copy of my house key", "key"),
                     ("will you deliver to my house if I buy a lot of lumber", "deliver")],
}

KOREAN: dict[str, list[tuple[str, str]]] = {  # (text, intent); all held out (nothing Korean is tuned)
    "hours": [("토요일에 몇 시에 문 열어요", "토요일"), ("일요일은 몇 시까지 영업하세요", "일요일")],
    "price": [("양념 치킨 얼마예요", "양념"), ("후라이드 치킨 가격이 어떻게 되나요", "후라이드"),
              ("간장 치킨은 얼마인가요", "간장")],
    "availability": [("치즈볼 지금 주문 되나요", "치즈볼")],
    "address": [("가게 주소가 어디예요", ""), ("매장 위치 좀 알려 주세요", "")],
    "faq": [("배달도 해 주시나요", "배달"), ("포장하면 할인 되나요", "포장")],
    "message": [("사장님께 메시지 남기고 싶어요", "")],
    "transfer": [("직원이랑 통화하고 싶어요", "")],
    "goodbye": [("감사합니다 안녕히 계세요", "")],
}


_NOT_MENU = "!^Here's our menu"  # reading out the whole menu is not an answer to one item's price


def load_shop(path: Path) -> ShopConfig:
    return shop_config_from_manifest(yaml.safe_load(path.read_text(encoding="utf-8")))


def _hour_re(t: object) -> str:
    h = int(getattr(t, "hour", 0))
    return rf"\b{h % 12 or 12}\b"


def _price(p: Decimal, currency: str) -> str:
    return re.escape(f"{p:.2f}") if currency.upper() not in {"KRW", "JPY"} else f"{p:,.0f}|{p:.0f}"


def facts(shop: ShopConfig, intent: str, slot: str) -> tuple[str, ...]:
    p = shop.profile
    if intent == "hours_day":
        ranges = getattr(p.hours, slot)
        return (_hour_re(ranges[0].open), _hour_re(ranges[-1].close)) if ranges else (r"closed",)
    if intent in ("price", "availability"):
        item = next(m for m in p.menu if m.name == slot)
        price = _price(item.price, p.currency)
        if not item.available:
            return ((r"not available|sold out|don't have|out of", price, _NOT_MENU) if intent == "availability"
                    else (price, _NOT_MENU))
        return (price, _NOT_MENU)
    if intent == "address":
        return (re.escape(p.address.split(",")[0]),)
    if intent == "faq":
        entry = next(e for e in p.faq if slot in {w.lower() for w in e.keywords})
        return (re.escape(entry.answer[:24]),)
    if intent == "message":
        return (r"phone number",)  # the request for the caller's details, not the "I can take a message" fallback
    if intent == "transfer":
        return ("tool:transfer_to_staff",)
    return ("tool:end_call",)


def english(split: str | None = None) -> list[Utterance]:
    """Every English utterance: phrasings x slots (weekdays, menu items) rotated so each shop gets a spread."""
    out: list[Utterance] = []
    for path in SHOPS:
        shop = load_shop(path)
        name, p = shop.store, shop.profile
        items = [m.name for m in p.menu]
        for part, table in (("dev", DEV), ("heldout", HELDOUT)):
            if split is not None and part != split:
                continue
            n = 0
            for intent, phrasings in table.items():
                for k, tmpl in enumerate(phrasings):
                    if intent == "faq":
                        pairs = ([(e.question.rstrip("?"), e.keywords[0].lower()) for e in p.faq] if part == "dev"
                                 else FAQ_HELDOUT[name])
                        for text, kw in pairs:
                            out.append(Utterance(f"{name}/{part}/{intent}/{n}", name, shop.language, intent, part,
                                                 text, facts(shop, intent, kw)))
                            n += 1
                        continue
                    slots = {"hours_day": WEEKDAYS, "price": items, "availability": items}.get(intent, [""])
                    reps = 2 if len(slots) > 1 else 1  # two slot values per phrasing: more words, same phrasing
                    for r in range(reps):
                        slot = slots[(k * 3 + r * 2 + len(name)) % len(slots)]
                        text = tmpl.format(d=slot, i=slot)
                        out.append(Utterance(f"{name}/{part}/{intent}/{n}", name, shop.language, intent, part,
                                             text, facts(shop, intent, slot)))
                        n += 1
    return out


def korean() -> list[Utterance]:
    shop = load_shop(KOREAN_SHOP)
    p = shop.profile
    out: list[Utterance] = []
    day = {"토요일": "saturday", "일요일": "sunday"}
    for intent, rows in KOREAN.items():
        for n, (text, slot) in enumerate(rows):
            if intent == "hours":
                ranges = getattr(p.hours, day[slot])
                expect: tuple[str, ...] = (rf"{ranges[0].open.hour}\s*시", rf"{ranges[-1].close.hour}\s*시")
                intent_name = "hours_day"
            elif intent in ("price", "availability"):
                item = next(m for m in p.menu if slot in (m.name, *m.aliases) or m.name.startswith(slot))
                expect = (_price(item.price, p.currency),)
                if not item.available:
                    expect = ("없|품절|안 됩|어렵", *expect)
                intent_name = intent
            elif intent == "address":
                expect, intent_name = (re.escape(p.address.split()[-1]),), intent
            elif intent == "faq":
                entry = next(e for e in p.faq if slot in e.keywords)
                expect, intent_name = (re.escape(entry.answer[:8]),), intent
            elif intent == "message":
                expect, intent_name = ("메시지",), intent
            elif intent == "transfer":
                expect, intent_name = ("tool:transfer_to_staff",), intent
            else:
                expect, intent_name = ("tool:end_call",), intent
            out.append(Utterance(f"{shop.store}/heldout/{intent}/{n}", shop.store, shop.language, intent_name,
                                 "heldout", text, expect))
    return out
