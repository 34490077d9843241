"""ShopAnswerer: the offline `LLM` — deterministic answers from the shop's profile, no network, no keys.

It reads the caller's last turn as speech recognition produces it (lower case, no punctuation, misheard words),
picks an intent by keywords and fuzzy menu matching, and states the profile's facts exactly ("$6.50",
"7 AM to 6 PM"). It says honestly when it does not know and offers a message. Call actions go through the
shop's tools like a real model's would: goodbye -> `end_call`, "a person" -> `transfer_to_staff`, a message
(asked for over two turns: request, then name/number/message) -> `take_message`. Text streams word by word so
the pipeline's clause splitting sees a real stream.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from storeagent.agent.ports import LLMChunk, Message, TextDelta, ToolCall, ToolSpec
from storeagent.agent.store import knowledge as k
from storeagent.shop import WEEKDAYS, ShopProfile

UNKNOWN = "I'm not sure about that; I can take a message for the owner."
NOT_HEARD = "Sorry, I didn't catch that. Could you say it again?"
MESSAGE_PROMPT = ("Sure, I can take a message for the owner. Please tell me your name, your phone number, "
                  "and your message.")
NUMBER_RETRY = "Sorry, I didn't catch a phone number. Please say your name, number and message once more."
WHICH_ITEM = "Which item would you like the price of?"
NO_NUMBER = ("Sorry, I still didn't catch a phone number, so I couldn't leave the message. "
             "What else can I help you with?")

_MESSAGE = {"message", "voicemail"}
_PEOPLE = {"person", "human", "someone", "somebody", "staff", "manager", "owner", "representative", "operator",
           "employee", "people", "anybody", "anyone"}
_CONNECT = {"talk", "speak", "transfer", "connect", "put", "reach", "get"}
_BYE = {"bye", "goodbye"}
_BYE_PHRASES = ("thats all", "that is all", "nothing else", "no thank you", "no thanks", "have a good day",
                "have a nice day", "thats everything", "that is everything", "thats it", "that will be all")
_HOURS = {"open", "opening", "opens", "close", "closing", "closes", "closed", "hours", "hour"}
_NOW = {"now", "currently", "still"}
_EARLY_LATE = {"early", "earliest", "late", "latest"}  # "how early can I come in on Saturday" asks the hours
_DAY_ASK = {"time", "what", "when", *_EARLY_LATE}  # with a day: "when are you open on Monday" asks the hours
_MENU = ("menu", "what do you sell", "what do you have", "what kind", "what else do you", "what do you make",
         "what do you bake")
_WHERE = {"where", "address", "located", "location", "directions", "direction", "parking", "park"}
# "please tell the owner I called", "let him know": a message, though the word "message" is not said
_RELAY = ("tell the owner", "tell the manager", "tell him", "tell her", "tell them", "let the owner know",
          "let him know", "let her know", "let them know", "pass on", "pass along")
_THANKS = {"thanks", "thank"}
_HELLO = {"hello", "hi", "hey", "morning", "afternoon", "evening"}
_DIGITS = {"zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4",
           "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", **{str(i): str(i) for i in range(10)}}
_NAME_STOP = {"and", "my", "number", "phone", "is", "im", "i", "calling", "the", "please", "from", "at", "here"}

Clock = Callable[[], datetime]


@dataclass(slots=True)
class Answer:
    text: str
    calls: list[ToolCall] = field(default_factory=list)


class ShopAnswerer:
    """Implements the LLM port from a ShopProfile; `now` is injectable for tests."""

    def __init__(self, profile: ShopProfile, *, now: Clock = lambda: datetime.now(UTC),
                 word_delay: float = 0.0, name: str = "offline") -> None:
        self.name = name
        self.profile = profile
        self.now = now
        self.word_delay = word_delay  # seconds between words; 0 still yields to the loop between them

    async def stream(self, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> AsyncIterator[LLMChunk]:
        answer = self.answer(messages, {t.name for t in tools})
        words = answer.text.split()
        for i, w in enumerate(words):
            await asyncio.sleep(self.word_delay if i else 0)
            yield TextDelta(w if i == len(words) - 1 else w + " ")
        for call in answer.calls:
            yield call

    # ------------------------------------------------------------------ decision
    def answer(self, messages: Sequence[Message], tools: set[str]) -> Answer:
        if messages and messages[-1].role == "tool":
            return self._after_tool(messages)
        users = [m for m in messages if m.role == "user"]
        if not users:
            return Answer(self.profile.greeting or f"Thank you for calling {self.profile.name}. How can I help?")
        text = users[-1].content
        said = k.words(text)
        if not said:
            return Answer(NOT_HEARD)
        prev = next((m.content for m in reversed(messages[:-1]) if m.role == "assistant"), "")
        if prev in (MESSAGE_PROMPT, NUMBER_RETRY):
            return self._message_details(text, said, tools, retried=prev == NUMBER_RETRY, n=len(messages))
        return pick_reading(self._intent(text, said, tools, len(messages)), users[-1].alternatives,
                            lambda other: self._intent(other, k.words(other), tools, len(messages)),
                            unsure=(UNKNOWN, NOT_HEARD), vague=(WHICH_ITEM,))

    def _intent(self, text: str, said: list[str], tools: set[str], n: int) -> Answer:
        p, w, s = self.profile, set(said), " ".join(said)
        if w & _MESSAGE or any(ph in s for ph in _RELAY):
            return Answer(MESSAGE_PROMPT)
        if w & _PEOPLE and (w & _CONNECT or "real person" in s):
            if "transfer_to_staff" in tools:
                return Answer("", [_call(n, "transfer_to_staff", {"reason": "caller asked for a person"})])
            return Answer("I can't transfer calls right now, but I can take a message for the owner.")
        if _is_goodbye(said):
            return self._goodbye(tools, n)
        item = k.find_item(p, text, exact_only=True)
        faq = k.faq_keyword_match(p, text)
        if item is not None and not (faq is not None and k.faq_about(faq, item, text)):
            return Answer(k.describe_item(p, item))
        if faq is not None:
            return Answer(faq.answer)
        if w & _HOURS or (self._day_in(said) is not None and w & _DAY_ASK):
            return Answer(self._hours(said))
        if any(m in s for m in _MENU):
            return Answer(self._menu())
        if w & _WHERE or "get there" in s or "get to you" in s or "find you" in s:
            return Answer(self._where())
        item = k.find_item(p, text)
        if item is not None:
            return Answer(k.describe_item(p, item))
        faq = k.match_faq(p, text)
        if faq is not None:
            return Answer(faq.answer)
        if "how much" in s or "price" in w:
            return Answer(WHICH_ITEM)
        if w & _THANKS:
            return Answer("You're welcome. Is there anything else I can help you with?")
        if w & _HELLO:
            return Answer("Hello! How can I help you today?")
        return Answer(UNKNOWN)

    # ------------------------------------------------------------------ answers
    def _day_in(self, said: list[str]) -> tuple[date, str] | None:
        """The local date a caller means: today, tomorrow, a weekday (next occurrence) or a holiday's name."""
        today = k.local_time(self.profile, self.now()).date()
        norm = [x.rstrip("s") if x.endswith("days") else x for x in said]
        best: tuple[int, date, str] | None = None
        for h in self.profile.holidays:  # the holiday whose name matches most words ("christmas eve")
            hw = k.words(h.name)
            hits = sum(1 for x in hw if x in norm)
            if hits and (best is None or hits > best[0]) and hw[0] in norm:
                best = (hits, h.date, f"On {h.name}")
        if best is not None:
            return best[1], best[2]
        if "today" in norm or "tonight" in norm:
            return today, "Today"
        if "tomorrow" in norm:
            return today + timedelta(days=1), "Tomorrow"
        for i, wd in enumerate(WEEKDAYS):
            if wd in norm:
                return today + timedelta(days=(i - today.weekday()) % 7), f"On {wd.capitalize()}"
        return None

    def _hours(self, said: list[str]) -> str:
        p, now = self.profile, self.now()
        day = self._day_in(said)
        w = set(said)
        if day is not None:
            return k.describe_hours(p, *day)
        if w & _NOW or ("are" in w and "you" in w and "open" in w):
            close = k.closing_time(p, now)
            if close is not None:
                return f"Yes, we're open now until {k.say_time(close.time())}."
            nxt = k.next_opening(p, now)
            return "We're closed right now." + (f" We open again {k.say_when(p, nxt, now)}." if nxt else "")
        if "hours" in w or "hour" in w:
            return k.describe_week(p)
        today = k.local_time(p, now).date()
        sentence = k.describe_hours(p, today, "Today")
        if not k.hours_on(p, today):
            nxt = k.next_opening(p, now)
            if nxt is not None:
                sentence += f" We open again {k.say_when(p, nxt, now)}."
        return sentence

    def _menu(self) -> str:
        p = self.profile
        if not p.menu:
            return UNKNOWN
        parts = []
        for item in p.menu:
            part = f"{item.name[:1].upper()}{item.name[1:]}, {k.format_price(item.price, p.currency)}"
            if item.description:
                part += f", {item.description}"
            if not item.available:
                part += ", though it's not available right now"
            parts.append(part + ".")
        return "Here's our menu. " + " ".join(parts) + " What would you like to know more about?"

    def _where(self) -> str:
        p = self.profile
        if not p.address:
            return UNKNOWN
        return f"We're at {p.address}" + (f", {p.directions}." if p.directions else ".")

    # ------------------------------------------------------------------ message and tool rounds
    def _message_details(self, text: str, said: list[str], tools: set[str], *, retried: bool, n: int) -> Answer:
        number = _spoken_number(said)
        if number is None and not retried:
            return Answer(NUMBER_RETRY)
        if number is None:  # twice without a number: the tool would refuse it (and its refusal is for a model)
            return self._goodbye(tools, n) if _is_goodbye(said) else Answer(NO_NUMBER)
        if "take_message" not in tools:
            return Answer("Sorry, I can't take messages right now. Please call back during opening hours.")
        args = {"caller_name": _spoken_name(said) or "unknown caller", "callback_number": number or "",
                "message": text.strip()}
        return Answer("", [_call(n, "take_message", args)])

    def _goodbye(self, tools: set[str], n: int) -> Answer:
        calls = [_call(n, "end_call", {"reason": "caller said goodbye"})] if "end_call" in tools else []
        return Answer(f"Thanks for calling {self.profile.name}. Goodbye!", calls)

    def _after_tool(self, messages: Sequence[Message]) -> Answer:
        result = messages[-1]
        names = {c.id: c.name for m in messages if m.role == "assistant" for c in m.tool_calls}
        if names.get(result.tool_call_id or "") == "end_call" or not result.content:
            return Answer("")  # the goodbye was said before hanging up
        return Answer(result.content)


def pick_reading(best: Answer, alternatives: Sequence[str], answer: Callable[[str], Answer], *,
                 unsure: tuple[str, ...], vague: tuple[str, ...]) -> Answer:
    """The answer to the recognizer's best reading unless it is unsure (makes no sense of it) or vague (asks back
    what a specific answer would state): then the first other reading (Whisper's n-best) that gets a specific
    answer, else the first that gets any answer, else the best one's."""
    if best.text not in unsure + vague or not alternatives:
        return best
    fallback = best if best.text not in unsure else None
    for other in alternatives:
        if not other.strip():
            continue
        a = answer(other)
        if a.text not in unsure + vague:
            return a
        if fallback is None and a.text not in unsure:
            fallback = a
    return fallback or best


def _is_goodbye(said: list[str]) -> bool:
    """"bye", or a closing phrase that is the turn or ends it ("great thanks have a nice day"); inside a longer
    turn a closing phrase is not a goodbye ("that is all I need for the cake: how much is it")."""
    s = " ".join(said)
    return bool(set(said) & _BYE) or any(ph in s and (len(said) <= 5 or s.endswith(ph)) for ph in _BYE_PHRASES)


def _call(n: int, name: str, args: dict[str, str]) -> ToolCall:
    return ToolCall(id=f"offline-{n}-{name}", name=name, arguments=json.dumps(args))


def _spoken_number(said: list[str]) -> str | None:
    """The longest run of digits, spoken ('five five five ...') or written ('555 1234'): 7 to 15 of them."""
    best, run = "", ""
    for x in [*said, "."]:
        if x in _DIGITS or x.isdigit():
            run += _DIGITS.get(x, x)
        elif x in {"double", "dash"}:
            continue
        else:
            best, run = max(best, run, key=len), ""
    return best if 7 <= len(best) <= 15 else None


def _spoken_name(said: list[str]) -> str | None:
    """'my name is ann lee and ...' / 'this is ann' / 'it's ann' -> 'Ann Lee'."""
    for cue in (["name", "is"], ["this", "is"], ["im"], ["i", "am"], ["its"]):
        for i in range(len(said) - len(cue) + 1):
            if said[i : i + len(cue)] == cue:
                name = []
                for x in said[i + len(cue) : i + len(cue) + 2]:
                    if x in _NAME_STOP or x in _DIGITS:
                        break
                    name.append(x.capitalize())
                if name:
                    return " ".join(name)
    return None
