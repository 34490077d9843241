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
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, model_validator
from pydantic.alias_generators import to_camel

E164_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _e164(v: str) -> str:
    if not E164_RE.match(v):
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

    monday: list[TimeRange] = Field(default_factory=list)
    tuesday: list[TimeRange] = Field(default_factory=list)
    wednesday: list[TimeRange] = Field(default_factory=list)
    thursday: list[TimeRange] = Field(default_factory=list)
    friday: list[TimeRange] = Field(default_factory=list)
    saturday: list[TimeRange] = Field(default_factory=list)
    sunday: list[TimeRange] = Field(default_factory=list)

    def for_weekday(self, weekday: int) -> list[TimeRange]:
        """Intervals for date.weekday() numbering (0 = Monday)."""
        ranges: list[TimeRange] = getattr(self, WEEKDAYS[weekday])
        return ranges


class Holiday(Model):
    """A date with special hours: closed when `hours` is empty."""

    date: date
    name: str = ""
    hours: list[TimeRange] = Field(default_factory=list)


class MenuItem(Model):
    name: str = Field(min_length=1)
    price: Decimal = Field(ge=0)
    available: bool = True
    description: str = ""
    aliases: list[str] = Field(default_factory=list)  # other words callers use for it ("baguette" -> "french stick")


class FaqEntry(Model):
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    keywords: list[str] = Field(default_factory=list)


class ShopProfile(Model):
    """What the agent knows about the shop and may say to callers."""

    name: str = Field(min_length=1)
    timezone: str = "UTC"
    address: str = ""
    directions: str = ""
    currency: str = "USD"
    hours: WeeklyHours = Field(default_factory=WeeklyHours)
    holidays: list[Holiday] = Field(default_factory=list)
    menu: list[MenuItem] = Field(default_factory=list)
    faq: list[FaqEntry] = Field(default_factory=list)
    greeting: str = ""  # empty: "Thank you for calling <name>, how can I help?"

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown IANA timezone {v!r}") from e
        return v


class ProviderChoice(Model):
    """One provider for a stage; `fallbacks` are tried in order when it fails (offline is always last)."""

    name: Literal["offline", "scripted", "deepgram", "openai", "elevenlabs"] = "offline"
    model: str = ""
    voice: str = ""
    base_url: str = ""  # OpenAI-compatible servers, or a local test server
    fallbacks: list[ProviderChoice] = Field(default_factory=list)


class Providers(Model):
    stt: ProviderChoice = Field(default_factory=ProviderChoice)
    llm: ProviderChoice = Field(default_factory=ProviderChoice)
    tts: ProviderChoice = Field(default_factory=ProviderChoice)


class TransferConfig(Model):
    """Humans the agent may hand a call to; staffed hours default to opening hours."""

    staff_numbers: list[E164] = Field(default_factory=list)
    staffed_hours: WeeklyHours | None = None
    ring_seconds: int = Field(default=20, ge=5, le=120)


class WebhookConfig(Model):
    url: str = Field(pattern=r"^https?://")


class ShopConfig(Model):
    """Everything one shop's agent needs; rendered by the operator, loaded by the agent."""

    store: str = Field(min_length=1, max_length=63)  # the StoreAgent's name: a metric label and log field
    language: str = "en-US"
    phone_numbers: list[E164] = Field(default_factory=list)
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
