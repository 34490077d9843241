"""The shop as both deployables see it: profile (hours, menu, FAQ) and the agent's per-shop configuration.

`ShopConfig` is the contract between the operator and the agent: the operator renders it from a StoreAgent's
spec into the shop's ConfigMap (`shop.yaml`), the agent loads it at start, and `make demo` builds it from the
same manifest a platform team applies. Only pydantic here, so both images can import it.
Field names are camelCase on the wire (Kubernetes style) and snake_case in Python.
"""

from __future__ import annotations

import re
from datetime import date, time
from decimal import Decimal
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, model_validator
from pydantic.alias_generators import to_camel

E164_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")

# Size budgets (issue 11): every string and list is bounded, so admission refuses a spec whose ConfigMap could
# not be stored (1 MiB). The free text of a profile (FAQ, menu, address, directions, greeting, holiday names)
# also shares one budget in characters: at most 4 bytes each in UTF-8, 256 KiB in the worst case.
PROFILE_TEXT_BUDGET = 65536
NAME_MAX = 200  # shop name, menu item, holiday, alias, keyword
TEXT_MAX = 4000  # one FAQ answer, description, directions
MENU_MAX = 300
FAQ_MAX = 200
WORDS_MAX = 10  # aliases per item, keywords per FAQ entry
RANGES_MAX = 8  # opening intervals per day
# Free text may hold any printable character, newlines and tabs; other control characters only confuse the
# prompt, TTS and log viewers. A JSON-schema pattern, so the API server applies it without CEL cost.
TEXT_RE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"


def _text(max_length: int, *, min_length: int = 0) -> Any:
    return Field(default="", min_length=min_length, max_length=max_length, pattern=TEXT_RE)


Word = Annotated[str, Field(min_length=1, max_length=NAME_MAX, pattern=TEXT_RE)]
Ranges = Annotated[list["TimeRange"], Field(max_length=RANGES_MAX)]

# What a provider `model`/`voice` may be (model ids like "gpt-4o-mini", "accounts/x/models/llama-v3",
# "nova-3"); a base URL is scheme, host, optional port and path: no userinfo, query or fragment, so a key
# has no natural place in it. Values that look like a key are refused anyway (KEY_SHAPED): a ConfigMap
# is readable by everyone who may read the namespace's ConfigMaps, unlike the Secret the key belongs in.
MODEL_RE = r"^[A-Za-z0-9._:/@+-]*$"
BASE_URL_RE = r"^(https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%/+-]*)?)?$"
WEBHOOK_URL_RE = r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%/+=&?,;:!$*'()@-]*)?$"
KEY_SHAPED_RE = r"(sk|pk|rk|xi|dg)[-_][A-Za-z0-9_-]{16,}|[A-Fa-f0-9]{32,}|[A-Za-z0-9_-]{40,}"
URL_MAX = 512
PRICE_RE = r"[0-9]{1,8}([.][0-9]{1,4})?"  # the CRD's rule says the same (operator/crdgen.py DECIMAL_PATTERN)
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _e164(v: str) -> str:
    if not E164_RE.fullmatch(v):  # fullmatch: `$` alone would accept a trailing newline
        raise ValueError(f"{v!r} is not an E.164 number (+ then 7 to 15 digits, e.g. +15551230001)")
    return v


# The JSON schema carries the pattern so the operator's CRD rejects a bad number at admission.
E164 = Annotated[str, AfterValidator(_e164), WithJsonSchema({"type": "string", "pattern": E164_RE.pattern})]


class Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class TimeRange(Model):
    """One opening interval, local shop time; `close` after `open` (no overnight ranges: split them)."""

    open: time
    close: time

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        if self.close <= self.open:
            raise ValueError(f"close {self.close:%H:%M} must be after open {self.open:%H:%M}")
        return self


class WeeklyHours(Model):
    """Opening intervals per weekday; a missing or empty day means closed."""

    monday: Ranges = Field(default_factory=list)
    tuesday: Ranges = Field(default_factory=list)
    wednesday: Ranges = Field(default_factory=list)
    thursday: Ranges = Field(default_factory=list)
    friday: Ranges = Field(default_factory=list)
    saturday: Ranges = Field(default_factory=list)
    sunday: Ranges = Field(default_factory=list)

    def for_weekday(self, weekday: int) -> list[TimeRange]:
        """Intervals for date.weekday() numbering (0 = Monday)."""
        ranges: list[TimeRange] = getattr(self, WEEKDAYS[weekday])
        return ranges


class Holiday(Model):
    """A date with special hours: closed when `hours` is empty."""

    date: date
    name: str = _text(NAME_MAX)
    hours: Ranges = Field(default_factory=list)


class MenuItem(Model):
    name: str = _text(NAME_MAX, min_length=1)
    # A YAML `price: 4.5` arrives as a number: accepted and kept exact as the decimal it was written as.
    price: Decimal = Field(ge=0, max_digits=12, decimal_places=4)
    available: bool = True
    description: str = _text(TEXT_MAX)
    # other words callers use for it ("baguette" -> "french stick")
    aliases: list[Word] = Field(default_factory=list, max_length=WORDS_MAX)

    @field_validator("price", mode="before")
    @classmethod
    def _plain_amount(cls, v: object) -> object:
        # repr() of a float is its shortest round-trip text: 4.1 stays 4.1, not 4.0999999999999996447...
        if isinstance(v, float):
            v = repr(v)
        if isinstance(v, str) and not re.fullmatch(PRICE_RE, v):
            raise ValueError(f"{v[:20]!r} is not an amount such as 4.50 (digits, at most 4 decimals)")
        return v


class FaqEntry(Model):
    question: str = _text(TEXT_MAX, min_length=1)
    answer: str = _text(TEXT_MAX, min_length=1)
    keywords: list[Word] = Field(default_factory=list, max_length=WORDS_MAX)


class ShopProfile(Model):
    """What the agent knows about the shop and may say to callers."""

    name: str = _text(NAME_MAX, min_length=1)
    timezone: str = Field(default="UTC", max_length=64)
    address: str = _text(NAME_MAX * 2)
    directions: str = _text(TEXT_MAX)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    hours: WeeklyHours = Field(default_factory=WeeklyHours)
    holidays: list[Holiday] = Field(default_factory=list, max_length=366)
    menu: list[MenuItem] = Field(default_factory=list, max_length=MENU_MAX)
    faq: list[FaqEntry] = Field(default_factory=list, max_length=FAQ_MAX)
    greeting: str = _text(TEXT_MAX)  # empty: "Thank you for calling <name>, how can I help?"

    @model_validator(mode="after")
    def _text_budget(self) -> ShopProfile:
        used = profile_text_size(self)
        if used > PROFILE_TEXT_BUDGET:
            raise ValueError(f"profile text is {used} characters; the budget is {PROFILE_TEXT_BUDGET} "
                             "(FAQ, menu, address, directions, greeting and holiday names together)")
        return self

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown IANA timezone {v!r}") from e
        return v


def profile_text_size(p: ShopProfile) -> int:
    """Characters counted against PROFILE_TEXT_BUDGET (the CRD's CEL rule on ShopProfile counts the same)."""
    faq = sum(len(f.question) + len(f.answer) + sum(map(len, f.keywords)) for f in p.faq)
    menu = sum(len(m.name) + len(m.description) + sum(map(len, m.aliases)) for m in p.menu)
    return faq + menu + len(p.address) + len(p.directions) + len(p.greeting) + sum(len(h.name) for h in p.holidays)


def _not_key_shaped(v: str) -> str:
    if re.search(KEY_SHAPED_RE, v):
        raise ValueError("looks like an API key: keys belong in the Secret named by secretRef, not in the spec")
    return v


class ProviderChoice(Model):
    """One provider for a stage; `fallbacks` are tried in order when it fails (offline is always last)."""

    # speech: the platform's shared speech service (STT and TTS only; its URL is the platform's, not the shop's)
    name: Literal["offline", "scripted", "deepgram", "openai", "elevenlabs", "speech"] = "offline"
    model: Annotated[str, AfterValidator(_not_key_shaped)] = Field(default="", max_length=128, pattern=MODEL_RE)
    voice: Annotated[str, AfterValidator(_not_key_shaped)] = Field(default="", max_length=128, pattern=MODEL_RE)
    # OpenAI-compatible servers, or a local test server; checked against the platform's URL policy by the
    # operator (reconcile) and the agent (connect time, on the resolved address).
    base_url: Annotated[str, AfterValidator(_not_key_shaped)] = Field(
        default="", max_length=URL_MAX, pattern=BASE_URL_RE)
    fallbacks: list[ProviderChoice] = Field(default_factory=list, max_length=3)


class Providers(Model):
    stt: ProviderChoice = Field(default_factory=ProviderChoice)
    llm: ProviderChoice = Field(default_factory=ProviderChoice)
    tts: ProviderChoice = Field(default_factory=ProviderChoice)

    @model_validator(mode="after")
    def _speech_is_not_an_llm(self) -> Providers:
        todo = [self.llm]
        while todo:
            c = todo.pop()
            if c.name == "speech":
                raise ValueError("llm: the speech service serves stt and tts only")
            todo.extend(c.fallbacks)
        return self

    def uses(self, name: str) -> bool:
        """Whether any stage or fallback names this provider."""
        todo = [self.stt, self.llm, self.tts]
        while todo:
            c = todo.pop()
            if c.name == name:
                return True
            todo.extend(c.fallbacks)
        return False


class TransferConfig(Model):
    """Humans the agent may hand a call to; staffed hours default to opening hours."""

    staff_numbers: list[E164] = Field(default_factory=list, max_length=10)
    staffed_hours: WeeklyHours | None = None
    ring_seconds: int = Field(default=20, ge=5, le=120)


class SecretKeyRef(Model):
    """One key of a Secret in the shop's namespace (mounted as a file; never copied into the ConfigMap)."""

    name: str = Field(min_length=1, max_length=253,
                      pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    key: str = Field(default="secret", min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")


class WebhookConfig(Model):
    # No userinfo (`user:pass@`) or fragment; the path/query may carry the receiver's token, so the agent
    # logs only the host. Checked against the platform's URL policy like providers' baseUrl.
    url: str = Field(max_length=URL_MAX, pattern=WEBHOOK_URL_RE)
    # HMAC-SHA256 key for X-StoreAgent-Signature (docs/webhooks.md). The operator mounts it and points
    # STOREAGENT_WEBHOOK_SECRET_FILE at it; the pod does not start until the Secret exists.
    signing_secret_ref: SecretKeyRef | None = None


class ShopConfig(Model):
    """Everything one shop's agent needs; rendered by the operator, loaded by the agent."""

    store: str = Field(min_length=1, max_length=63)  # the StoreAgent's name: a metric label and log field
    language: str = "en-US"
    phone_numbers: list[E164] = Field(default_factory=list, max_length=20)
    profile: ShopProfile
    providers: Providers = Field(default_factory=Providers)
    transfer: TransferConfig = Field(default_factory=TransferConfig)
    webhook: WebhookConfig | None = None
    max_call_seconds: int = Field(default=600, ge=30, le=3600)
    silence_reprompt_seconds: float = Field(default=8.0, ge=2.0, le=60.0)


def shop_config_from_manifest(doc: dict[str, object]) -> ShopConfig:
    """The agent's view of a StoreAgent manifest: `metadata.name` plus the spec fields the agent uses.

    Operator-only fields (scaling, resources, fallback, secretRef, ...) are ignored here; the operator's own
    model validates them.
    """
    meta = doc.get("metadata")
    spec = doc.get("spec")
    if not isinstance(meta, dict) or not isinstance(spec, dict):
        raise ValueError("a StoreAgent manifest needs `metadata` and `spec` mappings")
    wanted = {f.alias or name for name, f in ShopConfig.model_fields.items()}
    data = {k: v for k, v in spec.items() if k in wanted}
    data["store"] = meta.get("name")
    return ShopConfig.model_validate(data)
