"""KoreanAnswerer: the offline `LLM` for a Korean-speaking shop — the shop's facts in Korean, no network, no keys.

The same contract as the English ShopAnswerer (answerer.py): pick an intent from the caller's last turn, state
the profile's facts exactly (KoreanWording: "토요일은 낮 12시부터 밤 11시 59분까지 영업합니다", "22,000원"), say
honestly when it does not know, and act through the shop's tools (end_call, transfer_to_staff, take_message over
two turns). Korean recognizer output is matched on stems in the text with spaces removed (ko_text.py), so
spacing, particles and polite endings do not matter; menu names also match fuzzily on jamo.

Every stem below is taken from the dev phrasings in bench/quality/dataset.py (KOREAN_DEV), never from the
held-out ones or the demo's questions; tests/unit/test_answerer_ko.py keeps it so.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, timedelta

from storeagent.agent.ports import Message
from storeagent.agent.providers.answerer import Answer, ShopAnswerer, _call, pick_reading
from storeagent.agent.store import knowledge as k
from storeagent.agent.store import ko_text as t
from storeagent.agent.store.wording import KO_WEEKDAYS, KoreanWording, format_price_ko
from storeagent.shop import FaqEntry, MenuItem

UNKNOWN = "죄송합니다, 그건 제가 확인해 드리기 어렵습니다. 사장님께 메시지를 남겨 드릴까요?"
NOT_HEARD = "죄송합니다, 잘 못 들었습니다. 다시 한 번 말씀해 주시겠어요?"
MESSAGE_PROMPT = "네, 사장님께 메시지를 남겨 드리겠습니다. 성함과 전화번호, 남기실 말씀을 말씀해 주세요."
NUMBER_RETRY = "죄송합니다, 전화번호를 못 들었습니다. 성함과 전화번호, 남기실 말씀을 한 번 더 말씀해 주세요."
WHICH_ITEM = "어떤 메뉴의 가격을 알려 드릴까요?"

# Stems, matched in the caller's text with every space removed (ko_text.compact).
STEMS: dict[str, tuple[str, ...]] = {
    "message": ("메시지", "메세지", "메모", "전해", "전달", "남길", "남기"),
    "person": ("직원", "사람", "사장님", "매니저", "담당", "상담원"),
    "connect": ("연결", "바꿔", "통화", "얘기", "대화"),
    "bye": ("안녕히", "끊을", "끊겠", "끊어", "수고하", "들어가세요"),  # not "이만": "이만 원" is 20,000 won
    "hours": ("몇시", "시간", "영업", "문열", "문여", "여나요", "여세요", "열어", "엽니", "여는", "오픈", "닫",
              "마감", "끝나", "언제까지", "하시나요"),
    "now": ("지금", "현재", "아직"),
    "menu": ("메뉴", "뭐팔", "뭐있", "뭐가있", "무슨종류", "어떤종류", "뭐파"),
    "where": ("주소", "위치", "어디", "찾아가", "오시는길", "가는길", "주차"),
    "price": ("얼마", "가격", "값", "비싸", "비용"),
    "thanks": ("감사", "고맙", "고마워"),
    "hello": ("안녕하세요", "여보세요"),
}
# Words callers use for an FAQ entry's keyword (a shop writes "배달", a caller says "갖다 주세요").
FAQ_SYNONYMS: dict[str, tuple[str, ...]] = {
    "배달": ("배달", "배송", "가져다주", "보내주", "집으로"),
    "포장": ("포장", "테이크아웃", "가져가", "찾으러", "픽업"),
    "할인": ("할인", "싸게", "저렴"),
    "주차": ("주차", "차를"),
    "예약": ("예약", "자리"),
}
DAYS: dict[str, int] = {**{d: i for i, d in enumerate(KO_WEEKDAYS)}, **{d[0] + "욜": i for i, d in
                                                                     enumerate(KO_WEEKDAYS)}}
RELATIVE = {"오늘": 0, "금일": 0, "내일": 1, "모레": 2}
_FUZZY = 0.8  # jamo likeness for a menu name: one wrong letter in a two-syllable name still matches


class KoreanAnswerer(ShopAnswerer):
    """The LLM port from a Korean shop's profile (its wording in KoreanWording); `now` is injectable."""

    wording = KoreanWording()

    def answer(self, messages: Sequence[Message], tools: set[str]) -> Answer:
        if messages and messages[-1].role == "tool":
            return self._after_tool(messages)
        users = [m for m in messages if m.role == "user"]
        if not users:
            return Answer(self.profile.greeting or f"감사합니다, {self.profile.name}입니다. 무엇을 도와드릴까요?")
        text = users[-1].content
        said = t.compact(text)
        if not said:
            return Answer(NOT_HEARD)
        prev = next((m.content for m in reversed(messages[:-1]) if m.role == "assistant"), "")
        if prev in (MESSAGE_PROMPT, NUMBER_RETRY):
            return self._ko_message(text, tools, retried=prev == NUMBER_RETRY, n=len(messages))
        return pick_reading(self._ko_intent(said, tools, len(messages)), users[-1].alternatives,
                            lambda other: self._ko_intent(t.compact(other), tools, len(messages)),
                            unsure=(UNKNOWN, NOT_HEARD), vague=(WHICH_ITEM,))

    def _ko_intent(self, s: str, tools: set[str], n: int) -> Answer:
        p = self.profile
        if t.has_any(s, STEMS["message"]):
            return Answer(MESSAGE_PROMPT)
        if t.has_any(s, STEMS["connect"]) and (t.has_any(s, STEMS["person"]) or "연결" in s):
            if "transfer_to_staff" in tools:
                return Answer("", [_call(n, "transfer_to_staff", {"reason": "caller asked for a person"})])
            return Answer("지금은 직원 연결이 어렵습니다. 사장님께 메시지를 남겨 드릴 수 있습니다.")
        if t.has_any(s, STEMS["bye"]) and not t.has_any(s, STEMS["hello"]):
            calls = [_call(n, "end_call", {"reason": "caller said goodbye"})] if "end_call" in tools else []
            return Answer(f"{p.name}에 전화 주셔서 감사합니다. 안녕히 계세요.", calls)
        item = self._item(s, fuzzy=False)
        if item is not None:
            return Answer(self.wording.item(p, item))
        faq = self._faq(s)
        if faq is not None:
            return Answer(faq.answer)
        day = self._day(s)
        if t.has_any(s, STEMS["hours"]) or (day is not None and ("하" in s or "쉬" in s)):
            return Answer(self._ko_hours(s, day))
        if t.has_any(s, STEMS["menu"]):
            return Answer(self._ko_menu())
        if t.has_any(s, STEMS["where"]):
            return Answer(self._ko_where())
        item = self._item(s, fuzzy=True)
        if item is not None:
            return Answer(self.wording.item(p, item))
        if t.has_any(s, STEMS["price"]):
            return Answer(WHICH_ITEM)
        if t.has_any(s, STEMS["thanks"]):
            return Answer("천만에요. 더 궁금하신 점 있으세요?")
        if t.has_any(s, STEMS["hello"]):
            return Answer("네, 말씀하세요. 무엇을 도와드릴까요?")
        return Answer(UNKNOWN)

    # ------------------------------------------------------------------ facts
    def _item(self, s: str, *, fuzzy: bool) -> MenuItem | None:
        """A whole name or alias in the text (longest wins); fuzzily, a name's distinctive part on its jamo."""
        names = [(m, t.compact(x)) for m in self.profile.menu for x in (m.name, *m.aliases)]
        exact = [(len(x), m) for m, x in names if x and x in s]
        if exact:
            return max(exact, key=lambda e: e[0])[1]
        if not fuzzy:
            return None
        best: tuple[float, MenuItem | None] = (0.0, None)
        for m, x in names:
            core = self._distinctive(x)
            score = t.fuzzy_find(s, core, _FUZZY) if len(core) >= 2 else 0.0
            if score > best[0]:
                best = (score, m)
        return best[1]

    def _distinctive(self, name: str) -> str:
        """The name without words every other item shares ('양념치킨' -> '양념'): '치킨' tells items apart poorly."""
        shared = [w for w in ("치킨", "세트", "메뉴") if sum(w in t.compact(m.name) for m in self.profile.menu) > 1]
        for w in shared:
            name = name.replace(w, "")
        return name

    def _faq(self, s: str) -> FaqEntry | None:
        for entry in self.profile.faq:
            for kw in entry.keywords:
                word = t.compact(kw)
                if word and t.has_any(s, FAQ_SYNONYMS.get(word, (word,))):
                    return entry
        return None

    def _day(self, s: str) -> tuple[date, str] | None:
        """The local date meant: a holiday by name or date, today/tomorrow, or a weekday (its next occurrence)."""
        today = k.local_time(self.profile, self.now()).date()
        w = self.wording
        for h in self.profile.holidays:
            if h.name and t.compact(h.name) in s:
                return h.date, w.on_date(h.date)
        md = t.month_day(s)
        if md is not None:
            year = today.year + (1 if (md[0], md[1]) < (today.month, today.day) else 0)
            try:
                d = date(year, *md)
            except ValueError:
                return None
            return d, w.on_date(d)
        for word, ahead in RELATIVE.items():
            if word in s:
                d = today + timedelta(days=ahead)
                return d, {0: w.today, 1: w.tomorrow}.get(ahead, f"모레 {w.on_day(d)}")
        for word, i in DAYS.items():
            if word in s:
                d = today + timedelta(days=(i - today.weekday()) % 7)
                return d, w.on_day(d)
        return None

    def _ko_hours(self, s: str, day: tuple[date, str] | None) -> str:
        p, now, w = self.profile, self.now(), self.wording
        if day is not None:
            return w.hours(p, *day)
        if t.has_any(s, STEMS["now"]):
            close = k.closing_time(p, now)
            if close is not None:
                return w.open_until(close.time())
            return w.closed_now(p, k.next_opening(p, now), now)
        if "영업시간" in s or "시간" in s:
            return w.week(p)
        today = k.local_time(p, now).date()
        return w.hours(p, today, w.today)

    def _ko_menu(self) -> str:
        p = self.profile
        if not p.menu:
            return UNKNOWN
        parts = []
        for m in p.menu:
            part = f"{m.name} {format_price_ko(m.price, p.currency)}"
            parts.append(part + (" (지금은 준비가 안 됩니다)" if not m.available else ""))
        return "저희 메뉴는 " + ", ".join(parts) + "입니다. 더 궁금하신 메뉴 있으세요?"

    def _ko_where(self) -> str:
        p = self.profile
        if not p.address:
            return UNKNOWN
        return f"저희 가게는 {p.address}에 있습니다." + (f" {p.directions}입니다." if p.directions else "")

    # ------------------------------------------------------------------ message
    def _ko_message(self, text: str, tools: set[str], *, retried: bool, n: int) -> Answer:
        number = t.phone_digits(text)
        if number is None and not retried:
            return Answer(NUMBER_RETRY)
        if "take_message" not in tools:
            return Answer("죄송합니다, 지금은 메시지를 받을 수 없습니다. 영업시간에 다시 전화해 주세요.")
        args = {"caller_name": spoken_name_ko(text) or "이름 모름", "callback_number": number or "",
                "message": text.strip()}
        return Answer("", [_call(n, "take_message", args)])


_NAME_CUES = re.compile(r"(?:이름은|성함은|저는|제가)\s*([가-힣]{2,4}?)"
                        r"(?:이고|이에요|예요|입니다|인데요|이구요|고|요|\s|$)")


def spoken_name_ko(text: str) -> str | None:
    """'제 이름은 김민수이고 ...' / '저는 김민수입니다' -> '김민수'."""
    m = _NAME_CUES.search(text)
    return m.group(1) if m else None
