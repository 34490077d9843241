"""Pure facts over a ShopProfile: opening hours in the shop's timezone, holidays, menu and FAQ lookup.

No I/O and no clock of its own: every function takes the instant or date it is about, so callers (the offline
answerer, the LLM tools) inject "now" and tests pin it. Instants must be timezone-aware; the shop's local wall
clock (its IANA zone, DST included) decides the day and the time.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from storeagent.shop import WEEKDAYS, FaqEntry, Holiday, MenuItem, ShopProfile, TimeRange, WeeklyHours

_SEARCH_DAYS = 14  # how far next_opening looks ahead (a shop closed two weeks running has no "next")
_CURRENCY_SYMBOLS = {"USD": "$", "CAD": "$", "AUD": "$", "NZD": "$", "EUR": "€", "GBP": "£"}


# ------------------------------------------------------------------------------------------------- hours
def shop_tz(profile: ShopProfile) -> ZoneInfo:
    return ZoneInfo(profile.timezone)


def local_time(profile: ShopProfile, when: datetime) -> datetime:
    """The shop's wall clock at an aware instant."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("when must be timezone-aware (a naive datetime has no defined shop-local time)")
    return when.astimezone(shop_tz(profile))


def holiday_on(profile: ShopProfile, day: date) -> Holiday | None:
    return next((h for h in profile.holidays if h.date == day), None)


def hours_on(profile: ShopProfile, day: date, weekly: WeeklyHours | None = None) -> list[TimeRange]:
    """Opening ranges on a local date: a holiday's hours replace the week's (empty = closed).

    `weekly` overrides the profile's hours (staffed hours): holidays still apply, since nobody staffs a shop
    that is closed for the day.
    """
    week = profile.hours if weekly is None else weekly
    ranges = week.for_weekday(day.weekday())
    hol = holiday_on(profile, day)
    if hol is None:
        return list(ranges)
    if weekly is None:
        return list(hol.hours)
    return [r for r in ranges if any(_overlaps(r, h) for h in hol.hours)]  # staffed ∩ holiday-open


def _overlaps(a: TimeRange, b: TimeRange) -> bool:
    return a.open < b.close and b.open < a.close


def is_open_at(profile: ShopProfile, when: datetime, weekly: WeeklyHours | None = None) -> bool:
    """Open at this instant? A range includes its opening minute and excludes its closing minute."""
    now = local_time(profile, when)
    t = now.time().replace(tzinfo=None)
    return any(r.open <= t < r.close for r in hours_on(profile, now.date(), weekly))


def _at(profile: ShopProfile, day: date, t: time) -> datetime:
    return datetime.combine(day, t, tzinfo=shop_tz(profile))


def next_opening(profile: ShopProfile, when: datetime) -> datetime | None:
    """The first opening time strictly after `when` (shop-local aware datetime), within two weeks."""
    now = local_time(profile, when)
    for offset in range(_SEARCH_DAYS + 1):
        day = now.date() + timedelta(days=offset)
        for r in sorted(hours_on(profile, day), key=lambda r: r.open):
            start = _at(profile, day, r.open)
            if start > now:
                return start
    return None


def closing_time(profile: ShopProfile, when: datetime) -> datetime | None:
    """When the range the shop is open in at `when` ends; None when closed."""
    now = local_time(profile, when)
    t = now.time().replace(tzinfo=None)
    for r in hours_on(profile, now.date()):
        if r.open <= t < r.close:
            return _at(profile, now.date(), r.close)
    return None


# ---------------------------------------------------------------------------------------------- wording
def say_time(t: time) -> str:
    """Spoken clock time: 7 AM, 7:30 AM, 12 PM (noon), 12 AM (midnight)."""
    suffix = "AM" if t.hour < 12 else "PM"
    hour = t.hour % 12 or 12
    return f"{hour} {suffix}" if t.minute == 0 else f"{hour}:{t.minute:02d} {suffix}"


def say_ranges(ranges: Sequence[TimeRange]) -> str:
    """'7 AM to 6 PM', '7 AM to 11 AM and 1 PM to 5 PM', or 'closed'."""
    if not ranges:
        return "closed"
    parts = [f"{say_time(r.open)} to {say_time(r.close)}" for r in sorted(ranges, key=lambda r: r.open)]
    return " and ".join(parts)


def say_date(day: date) -> str:
    return f"{WEEKDAYS[day.weekday()].capitalize()}, {day:%B} {day.day}"


def describe_hours(profile: ShopProfile, day: date, label: str | None = None) -> str:
    """'On Saturday we're open 8 AM to 4 PM.' for one local date; names a holiday that changes the hours.

    `label` replaces 'On Saturday' (e.g. 'Today', 'Tomorrow').
    """
    name = label or f"On {WEEKDAYS[day.weekday()].capitalize()}"
    ranges = hours_on(profile, day)
    hol = holiday_on(profile, day)
    why = f" for {hol.name}" if hol and hol.name else (" for a holiday" if hol else "")
    if not ranges:
        return f"{name} we're closed{why}."
    return f"{name} we're open {say_ranges(ranges)}{why}."


def group_days(said: list[str]) -> list[tuple[int, int]]:
    """Runs of consecutive weekdays (Monday = 0) whose hours read the same, as (first, last) pairs."""
    groups: list[tuple[int, int]] = []
    for i, words in enumerate(said):
        if groups and said[groups[-1][1]] == words:
            groups[-1] = (groups[-1][0], i)
        else:
            groups.append((i, i))
    return groups


def describe_week(profile: ShopProfile) -> str:
    """Weekly hours with equal consecutive days grouped: 'Monday to Thursday 7 AM to 6 PM, ... Sunday closed'."""
    said = [say_ranges(profile.hours.for_weekday(i)) for i in range(7)]
    parts = []
    for first, last in group_days(said):
        days = WEEKDAYS[first].capitalize()
        if last > first:
            days += (" and " if last == first + 1 else " to ") + WEEKDAYS[last].capitalize()
        parts.append(f"{days} {said[first]}")
    return "Our hours are " + ", ".join(parts) + "."


def format_price(price: Decimal, currency: str) -> str:
    """'$6.50' for dollars, '€3.00', else '5000 KRW' (whole units where the currency has no cents)."""
    symbol = _CURRENCY_SYMBOLS.get(currency.upper())
    if symbol:
        return f"{symbol}{price:.2f}"
    if currency.upper() in {"KRW", "JPY"}:
        return f"{price:,.0f} {currency.upper()}"
    return f"{price:.2f} {currency.upper()}"


def say_when(profile: ShopProfile, at: datetime, now: datetime) -> str:
    """'today at 8 AM', 'tomorrow at 7 AM', 'on Monday at 7 AM', or 'on Monday, June 15 at 7 AM' (beyond a week)."""
    day, today = local_time(profile, at).date(), local_time(profile, now).date()
    clock = say_time(local_time(profile, at).time())
    if day == today:
        return f"today at {clock}"
    if day == today + timedelta(days=1):
        return f"tomorrow at {clock}"
    if day < today + timedelta(days=7):
        return f"on {WEEKDAYS[day.weekday()].capitalize()} at {clock}"
    return f"on {say_date(day)} at {clock}"


def describe_item(profile: ShopProfile, item: MenuItem) -> str:
    """Availability and exact price: 'Yes, we have the croissant. It's $3.25.'"""
    price = format_price(item.price, profile.currency)
    if not item.available:
        return f"Sorry, the {item.name} is not available right now. It's normally {price}."
    what = f", {item.description}" if item.description else ""
    return f"Yes, we have the {item.name}{what}. It's {price}."


# ----------------------------------------------------------------------------------------- text matching
_WORD = re.compile(r"[^\W_]+")  # any script: Korean menu names are words too
_STOP = frozenset(
    "a an the and or of to for in on at is are do does you your we our i me my it its any some can could "
    "would will please have has how what when where much many there this that with be get".split()
)


def words(text: str) -> list[str]:
    """Lower-case words without punctuation ('Gluten-free?' -> ['gluten', 'free'])."""
    return _WORD.findall(text.lower().replace("'", ""))


def _singular(w: str) -> str:
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 3 and w.endswith(("ches", "shes", "sses", "xes")):
        return w[:-2]
    if len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
        return w[:-1]
    return w


def _norm(text: str) -> list[str]:
    return [_singular(w) for w in words(text)]


def _contains(hay: list[str], needle: list[str]) -> bool:
    n = len(needle)
    return n > 0 and any(hay[i : i + n] == needle for i in range(len(hay) - n + 1))


def _similar(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b).ratio()


def find_item(profile: ShopProfile, text: str, *, exact_only: bool = False) -> MenuItem | None:
    """The menu item a caller's words refer to, or None.

    In order: a whole name or alias in the text (singular/plural folded, longest wins); then, unless
    `exact_only`, the same phrase fuzzily (STT misspellings, cutoff 0.8) and a distinctive word of a name
    ("sourdough" -> "sourdough loaf").
    """
    said = _norm(text)
    names = [(item, _norm(n)) for item in profile.menu for n in (item.name, *item.aliases)]
    exact = [(len(n), item) for item, n in names if _contains(said, n)]
    if exact:
        return max(exact, key=lambda e: e[0])[1]
    if exact_only:
        return None
    best: tuple[float, MenuItem | None] = (0.0, None)
    for item, n in names:
        joined = " ".join(n)
        for i in range(len(said) - len(n) + 1):
            window = said[i : i + len(n)]
            score = _similar(" ".join(window), joined)
            # every word must be close too: "free bread" is not "french bread"
            close = all(_similar(a, b) >= 0.75 for a, b in zip(window, n, strict=True))
            if score >= 0.8 and score > best[0] and close:
                best = (score, item)
    if best[1] is not None:
        return best[1]
    for item, n in names:
        for w in n:
            if len(w) >= 4 and w not in _STOP and any(_similar(w, s) >= 0.85 for s in said):
                return item
    return None


# Everyday words for a few common FAQ topics: a keyword the owner wrote also matches its kin ("my son" asks about
# children, "bring it to my house" about delivery). Phrases, matched as word runs; from the dev set's misses.
_KIN: tuple[frozenset[str], ...] = (  # a keyword in a group also matches the group's other words
    frozenset({"child", "children", "kid", "son", "daughter", "toddler", "boy", "girl"}),
    frozenset({"deliver", "delivery", "ship", "shipping", "to my house", "to my home", "to my place",
               "drop it off"}),
    frozenset({"appointment", "book", "booking", "reservation", "reserve"}),
    frozenset({"parking", "park"}),
)


def _keyword_hit(said: list[str], keyword: str) -> bool:
    k = _norm(keyword)
    if not k:
        return False
    if set(k) <= set(said):
        return True
    return len(k) == 1 and any(_contains(said, _norm(kin)) for group in _KIN if k[0] in group for kin in group)


def faq_keyword_match(profile: ShopProfile, text: str) -> FaqEntry | None:
    """An FAQ entry one of whose keywords (or a keyword's everyday kin, `_KIN`) the caller said (plural folded)."""
    said = _norm(text)
    for entry in profile.faq:
        if any(_keyword_hit(said, k) for k in entry.keywords):
            return entry
    return None


def faq_about(entry: FaqEntry, item: MenuItem, text: str) -> bool:
    """The FAQ entry itself speaks of the item the caller named ("Do you cut children's hair?" names the
    haircut's alias "cut"): then the caller is asking the FAQ, not for the item's price."""
    faq_words = set(_norm(f"{entry.question} {entry.answer}"))
    said = _norm(text)
    return any(_contains(said, n) and set(n) <= faq_words
               for n in (_norm(x) for x in (item.name, *item.aliases)))


def match_faq(profile: ShopProfile, text: str) -> FaqEntry | None:
    """Keywords first; else the entry whose question shares most content words (at least half of them)."""
    hit = faq_keyword_match(profile, text)
    if hit is not None:
        return hit
    said = {w for w in _norm(text) if w not in _STOP}
    best: tuple[float, FaqEntry | None] = (0.0, None)
    for entry in profile.faq:
        content = {w for w in _norm(entry.question) if w not in _STOP}
        if content:
            score = len(content & said) / len(content)
            if score >= 0.5 and score > best[0]:
                best = (score, entry)
    return best[1]


def caller_phrases(profile: ShopProfile) -> list[str]:
    """Sentences callers are likely to say to this shop: a vocabulary bias for offline speech recognition."""
    days = [*WEEKDAYS, "today", "tomorrow"]
    items = sorted({n.lower() for m in profile.menu for n in (m.name, *m.aliases)})
    hours = ["what time do you open on {d}", "are you open on {d}", "what are your hours on {d}",
             "when do you close on {d}", "what time do you close {d}", "are you open {d}"]
    asks = ["do you have {i}", "how much is the {i}", "how much are the {i}", "how much does a {i} cost",
            "is the {i} available", "can i get a {i}", "do you have any {i} today", "i would like a {i}"]
    fixed = ["hello", "hi", "thank you", "thanks", "goodbye", "bye", "thank you goodbye", "that is all",
             "where are you located", "what is your address", "how do i get there", "where is the shop",
             "are you open now", "are you open right now", "what are your opening hours", "what are your hours",
             "can i talk to a person", "can i speak to someone", "i want to talk to a human",
             "can i speak to the staff", "i would like to leave a message", "can i leave a message",
             "what is on the menu", "what do you sell", "yes", "no", "yes please", "no thanks", "my name is",
             "my number is"]
    holidays = [f"are you open on {h.name.lower()}" for h in profile.holidays if h.name]
    faq = [e.question.lower() for e in profile.faq]
    return ([t.format(d=d) for t in hours for d in days] + [t.format(i=i) for t in asks for i in items]
            + fixed + holidays + faq)


def shop_vocabulary(profile: ShopProfile) -> list[str]:
    """The shop's own names — its name, its items and their aliases, its street, its holidays — and no sentence:
    a spelling bias for a recognizer that takes a word prompt (Whisper), which cannot steer it toward any phrasing
    (tests/unit/test_bench_quality.py checks no held-out or demo sentence gets in)."""
    names = [profile.name, *(n for m in profile.menu for n in (m.name, *m.aliases))]
    if profile.address:
        names.append(profile.address.split(",")[0])
    names += [h.name for h in profile.holidays if h.name]
    return [n.strip() for n in names if n.strip()]
