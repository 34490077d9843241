"""The shop's tools for the LLM (the `Tools` port): hours, menu, FAQ, transfer, message-taking, hang-up.

Every tool validates its arguments with pydantic and answers with a `ToolResult` whose content is a short
sentence the model can say (or act on); a bad argument, an unknown tool or a failing message sink is a result
explaining the problem, never an exception into the pipeline. Transfers go only to the shop's configured staff
numbers and only during staffed hours; durable message storage is another component's job (`MessageSink`).
Results are worded in the shop's language (wording.py): a Korean shop's model reads Korean hours and won.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from storeagent.agent.ports import EndCall, ToolResult, ToolSpec, Transfer
from storeagent.agent.store import knowledge as k
from storeagent.agent.store.wording import KO_WEEKDAYS, wording_for
from storeagent.policy import NumberPolicy, number_refused
from storeagent.shop import E164_RE, WEEKDAYS, ShopConfig

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class MessageSink(Protocol):
    """Where `take_message` hands a message for durable storage and delivery to the shop."""

    async def submit(self, message: dict[str, Any]) -> None: ...


# ----------------------------------------------------------------------------------------- arguments
class _Args(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)  # models add stray keys; harmless


class HoursArgs(_Args):
    day: str | None = Field(default=None, description="weekday name, 'today', 'tomorrow' or YYYY-MM-DD")


class NoArgs(_Args):
    pass


class ItemArgs(_Args):
    name: str = Field(min_length=1, max_length=100, description="the item as the caller named it")


class FaqArgs(_Args):
    question: str = Field(min_length=1, max_length=300)


class TransferArgs(_Args):
    number: str | None = Field(default=None, description="a staff number; omit for the shop's default")
    reason: str = Field(default="", max_length=200)


_SEPARATORS = re.compile(r"[\s().\-/]")


def normalize_callback(raw: str) -> str:
    """'+1 (555) 123-4567' -> '+15551234567'; '555-123-4567' -> '5551234567'. ValueError when not a number."""
    digits = _SEPARATORS.sub("", raw)
    if digits.startswith("+"):
        if not E164_RE.match(digits):
            raise ValueError("an international number is + then 7 to 15 digits, first digit not 0")
        return digits
    if not re.fullmatch(r"[0-9]{7,15}", digits):  # ASCII digits only (str.isdigit accepts any script)
        raise ValueError("a callback number needs 7 to 15 digits")
    return digits


class MessageArgs(_Args):
    caller_name: str = Field(min_length=1, max_length=100)
    callback_number: str = Field(min_length=1, max_length=40, description="E.164 or a national number")
    message: str = Field(min_length=1, max_length=1000)

    @field_validator("callback_number")
    @classmethod
    def _number(cls, v: str) -> str:
        return normalize_callback(v)


class EndArgs(_Args):
    reason: str = Field(default="caller_done", max_length=100)


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    s = model.model_json_schema()
    s.pop("title", None)
    for prop in s.get("properties", {}).values():
        prop.pop("title", None)
    return s


SPECS: tuple[tuple[str, str, type[_Args]], ...] = (
    ("get_opening_hours", "Opening hours for a day (default: the whole week), holidays included.", HoursArgs),
    ("is_open_now", "Whether the shop is open right now, and until when or when it opens next.", NoArgs),
    ("lookup_menu_item", "Price and availability of a menu item.", ItemArgs),
    ("search_faq", "Answer to a common question (gluten-free, custom orders, ...).", FaqArgs),
    ("transfer_to_staff", "Connect the caller to a person at the shop (only while staffed).", TransferArgs),
    ("take_message", "Leave a message for the owner with the caller's name and callback number.", MessageArgs),
    ("end_call", "Hang up after saying goodbye, when the caller is done.", EndArgs),
)


@functools.cache
def tool_specs() -> tuple[ToolSpec, ...]:
    """The tools' specs, the same for every call and shop: built once per process. pydantic takes ~5 ms of CPU
    to generate these schemas, and a call set up on the event loop would stall every live call's audio that
    long (seen in a py-spy profile of `make bench`: 8 % of the agent's CPU)."""
    return tuple(ToolSpec(n, d, _schema(m)) for n, d, m in SPECS)


# --------------------------------------------------------------------------------------------- tools
class ShopTools:
    """One shop's tools; `now` is injectable so tests pin the clock."""

    def __init__(self, config: ShopConfig, sink: MessageSink | None = None, *,
                 now: Clock = lambda: datetime.now(UTC), number_policy: NumberPolicy | None = None) -> None:
        self.config = config
        # The platform's number policy, checked again here: a staff number refused by it (premium rate,
        # another country) is never dialled, even if the operator's check was bypassed or the policy changed.
        self.number_policy = number_policy if number_policy is not None else NumberPolicy()
        self.profile = config.profile
        self.sink = sink
        self.now = now
        self.say = wording_for(config.language)
        self._specs = tool_specs()
        self._impl: dict[str, tuple[type[_Args], Callable[[Any], Awaitable[ToolResult]]]] = {
            "get_opening_hours": (HoursArgs, self._hours),
            "is_open_now": (NoArgs, self._open_now),
            "lookup_menu_item": (ItemArgs, self._item),
            "search_faq": (FaqArgs, self._faq),
            "transfer_to_staff": (TransferArgs, self._transfer),
            "take_message": (MessageArgs, self._message),
            "end_call": (EndArgs, self._end),
        }

    def specs(self) -> Sequence[ToolSpec]:
        return self._specs

    async def call(self, name: str, arguments: str) -> ToolResult:
        entry = self._impl.get(name)
        if entry is None:
            return ToolResult(f"There is no tool named {name!r}. Available: {', '.join(self._impl)}.")
        model, impl = entry
        try:
            raw = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as e:
            return ToolResult(f"The arguments for {name} are not valid JSON ({e.msg}). Please try again.")
        if not isinstance(raw, dict):
            return ToolResult(f"The arguments for {name} must be a JSON object.")
        try:
            args = model.model_validate(raw)
        except ValidationError as e:
            problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'arguments'}: {err['msg']}"
                                 for err in e.errors())
            return ToolResult(f"Invalid arguments for {name}: {problems}. Ask the caller and try again.")
        return await impl(args)

    # ------------------------------------------------------------------ hours
    def _local_now(self) -> datetime:
        return k.local_time(self.profile, self.now())

    def _parse_day(self, text: str) -> tuple[date, str] | None:
        today = self._local_now().date()
        t = text.strip().lower()
        if t in ("today", "오늘"):
            return today, self.say.today
        if t in ("tomorrow", "내일"):
            return today + timedelta(days=1), self.say.tomorrow
        for i, wd in enumerate(WEEKDAYS):
            if t.rstrip("s") == wd or t in (KO_WEEKDAYS[i], KO_WEEKDAYS[i][0]):
                d = today + timedelta(days=(i - today.weekday()) % 7)
                return d, self.say.on_day(d)
        try:
            d = date.fromisoformat(t)
        except ValueError:
            return None
        return d, self.say.on_date(d)

    async def _hours(self, args: HoursArgs) -> ToolResult:
        if not args.day:
            return ToolResult(self.say.week(self.profile))
        parsed = self._parse_day(args.day)
        if parsed is None:
            return ToolResult(f"Invalid arguments for get_opening_hours: day: {args.day!r} is not a weekday, "
                              "'today', 'tomorrow' or a YYYY-MM-DD date.")
        day, label = parsed
        return ToolResult(self.say.hours(self.profile, day, label))

    async def _open_now(self, _: NoArgs) -> ToolResult:
        return ToolResult(open_now_sentence(self.config, self.now()))

    # ------------------------------------------------------------------ menu / faq
    async def _item(self, args: ItemArgs) -> ToolResult:
        item = k.find_item(self.profile, args.name)
        if item is None:
            return ToolResult(self.say.not_on_menu(args.name, self.profile.name))
        return ToolResult(self.say.item(self.profile, item))

    async def _faq(self, args: FaqArgs) -> ToolResult:
        hit = k.match_faq(self.profile, args.question)
        if hit is None:
            return ToolResult(self.say.no_faq)
        return ToolResult(hit.answer)

    # ------------------------------------------------------------------ call actions
    def is_staffed(self, when: datetime) -> bool:
        return k.is_open_at(self.profile, when, self.config.transfer.staffed_hours)

    async def _transfer(self, args: TransferArgs) -> ToolResult:
        staff = self.config.transfer.staff_numbers
        if not staff:
            return ToolResult(self.say.no_staff_number)
        number = staff[0]
        if args.number:
            try:
                wanted = normalize_callback(args.number)
            except ValueError:
                wanted = args.number
            if wanted not in staff:
                return ToolResult(self.say.not_staff)
            number = wanted
        if number_refused(number, self.number_policy, self.config.phone_numbers) is not None:
            return ToolResult(self.say.refused_number)
        if not self.is_staffed(self.now()):
            return ToolResult(self.say.unstaffed)
        return ToolResult(self.say.transferring, Transfer(number))

    async def _message(self, args: MessageArgs) -> ToolResult:
        if self.sink is None:
            return ToolResult(self.say.no_sink)
        message = {
            "id": uuid.uuid4().hex,  # idempotency key for delivery
            "store": self.config.store,
            "caller_name": args.caller_name,
            "callback_number": args.callback_number,
            "message": args.message,
            "created_at": self.now().astimezone(UTC).isoformat(),
        }
        try:
            await self.sink.submit(message)
        except Exception:  # any sink failure degrades to an apology, never a failed call
            log.exception("message sink failed")
            return ToolResult(self.say.sink_failed)
        return ToolResult(self.say.message_taken(args.caller_name, args.callback_number))

    async def _end(self, args: EndArgs) -> ToolResult:
        return ToolResult("", EndCall(args.reason))


def open_now_sentence(config: ShopConfig, when: datetime) -> str:
    p, say = config.profile, wording_for(config.language)
    close = k.closing_time(p, when)
    if close is not None:
        return say.open_until(k.local_time(p, close).time())
    return say.closed_now(p, k.next_opening(p, when), when)
