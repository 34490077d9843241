"""The demo's questions for a Korean shop (`make demo MANIFEST=examples/gangnam-chicken.yaml`).

Same rules as the English script (demo.py): every fact an answer must state comes from the manifest, not from
the agent's code, and the questions are worded unlike any phrasing the Korean answerer's stems were taken from
(bench/quality/dataset.py KOREAN_DEV) or the held-out set (tests/unit/test_answerer_ko.py keeps it so). The
caller speaks with espeak-ng's Korean voice in a female variant, so it does not sound like the agent's voice.
"""

from __future__ import annotations

import re
from datetime import time

from storeagent.shop import ShopConfig

CALLER_VOICE = "ko+f2"
CALLER_WPM = 140

Line = tuple[str, tuple[str, ...], float | None]  # what the caller says, regexes the answer must match, barge-in


def ko_time(t: time) -> str:
    """A regex for a clock time as Korean states it: '밤 11시 59분' or '23시 59분', '낮 12시' or '12시'."""
    h, m = t.hour, t.minute
    if h == 0:
        hour = r"(?:밤\s*12|0|24)"
    elif h == 12:
        hour = r"(?:낮\s*|정오\s*)?12"
    elif h > 12:
        hour = rf"(?:(?:오후|밤|저녁)\s*{h - 12}|{h})"
    else:
        hour = rf"(?:(?:오전|아침|새벽)\s*)?{h}"
    return hour + r"\s*시" + (rf"\s*{m}\s*분" if m else r"(?!\s*[0-9]+\s*분)")


def won(amount: object) -> str:
    n = int(str(amount).split(".")[0])
    return f"(?:{n:,}|{n})\\s*원"


def korean_script(shop: ShopConfig) -> list[Line]:
    """Saturday's hours, an item's price, the menu (interrupted), where the shop is, goodbye."""
    p = shop.profile
    sat = p.hours.saturday
    hours = (ko_time(sat[0].open), ko_time(sat[-1].close)) if sat else ("쉽니다",)
    item = next(m for m in p.menu if m.available)
    street = r"\s*".join(re.escape(w) for w in p.address.split()[-2:])
    return [
        ("여보세요, 이번 주 토요일에는 가게를 몇 시부터 몇 시까지 하시는지 궁금해서요.", hours, None),
        (f"{item.name} 한 마리 시키려고 하는데 얼마 정도 하나요?", (won(item.price),), None),
        ("혹시 메뉴에는 어떤 것들이 있나요?", (), 2.5),
        ("그런데 가게가 정확히 어디에 있는 거죠?", (street,), None),
        ("네 알겠어요, 고마워요. 안녕히 계세요.", (), None),
    ]
