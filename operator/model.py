"""The StoreAgent resource: one pydantic model is both the operator's parser and the CRD schema's source.

`crdgen.py` turns `StoreAgentSpec`/`StoreAgentStatus` into `crds/` (drift-checked by a unit test). Admission
rules the OpenAPI schema cannot say are CEL rules attached here (`x-kubernetes-validations`); the operator
re-validates with pydantic anyway, so a spec written before a rule existed still gets a clear condition.
Shop fields are the agent's own models from `storeagent.shop`, so the ConfigMap the agent loads cannot drift
from what the API server accepted.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from storeagent.policy import PolicyError, TenantPolicy, check_url, number_refused
from storeagent.shop import (
    E164,
    KEY_SHAPED_RE,
    PROFILE_TEXT_BUDGET,
    Model,
    ProviderChoice,
    Providers,
    ShopConfig,
    ShopProfile,
    TransferConfig,
    WebhookConfig,
)

GROUP = "storeagent.dev"
VERSION = "v1alpha1"
PLURAL = "storeagents"
KIND = "StoreAgent"
SHORT_NAMES = ["stag"]  # not "sa": ServiceAccounts own it

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$"
# What a FreeSWITCH `playback` may be given: a relative .wav path under FreeSWITCH's sound directory, nothing
# else. FreeSWITCH expands `${var}`/`${api(..)}` in action data and `$${var}` when it loads the file, so the
# allowlist has no `$ { } ( ) , | : ; ! % ' " < > &`, whitespace or non-ASCII; no leading "/" and no empty or
# dot-led segment, so no absolute path and no `..` (another shop's recordings); no `scheme://` (no fetches
# from FreeSWITCH). ASCII classes only; RE2 (API server) and Rust (pydantic) read `$` as end of text.
PLAYBACK_RE = r"^([A-Za-z0-9_-]+/){0,8}[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.wav$"
PLAYBACK_MAX = 256
# FreeSWITCH's XML preprocessor searches every line for this (case-insensitively) and drops the line when it
# is not a `<X-PRE-PROCESS` tag: a value containing it would delete its dialplan line and break the file
# that every shop in the shard shares. Refused wherever a tenant value reaches the dialplan.
PREPROCESS_WORD = "x-pre-process"


def _cel(rule: str, message: str, field_path: str = "", reason: str = "FieldValueInvalid") -> dict[str, str]:
    out = {"rule": rule, "message": message, "reason": reason}
    if field_path:
        out["fieldPath"] = field_path
    return out


PhoneNumber = E164


class Fallback(Model):
    """What FreeSWITCH does when the agent cannot take the call (unreachable, or died mid-call)."""

    forward_to: PhoneNumber | None = Field(
        default=None, description="Bridge the caller to this number (the owner's phone), E.164."
    )
    playback: str | None = Field(
        default=None,
        max_length=PLAYBACK_MAX,
        pattern=PLAYBACK_RE,
        description="Sound played (then hang up) when there is no forwardTo or the forward fails: a relative "
        "path of a .wav installed under FreeSWITCH's sounds directory (letters, digits, _ - . /). Unset: the "
        "apology every FreeSWITCH image ships, in the shop's language.",
    )

    @field_validator("playback")
    @classmethod
    def _no_preprocessor_word(cls, v: str | None) -> str | None:
        if v is not None and PREPROCESS_WORD in v.lower():
            raise ValueError(f"playback must not contain {PREPROCESS_WORD!r} (FreeSWITCH's preprocessor drops it)")
        return v


class SecretRef(Model):
    """Secret in the shop's namespace holding provider keys (DEEPGRAM_API_KEY, OPENAI_API_KEY, ELEVENLABS_API_KEY)."""

    # A Secret's name is a DNS subdomain: dots are legal ("shop.keys").
    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)


class Scaling(Model):
    replicas: int = Field(default=1, ge=0, le=50, description="Agent pods (0 parks the shop on its fallback).")
    max_calls_per_pod: int = Field(default=20, ge=1, le=500, description="Concurrent calls one pod accepts.")


class ResourceList(Model):
    cpu: str | None = Field(default=None, pattern=QUANTITY)
    memory: str | None = Field(default=None, pattern=QUANTITY)


class Resources(Model):
    """Pod resources; limits must not be below requests (checked at admission)."""

    requests: ResourceList = Field(default_factory=lambda: ResourceList(cpu="250m", memory="256Mi"))
    limits: ResourceList = Field(default_factory=lambda: ResourceList(memory="512Mi"))


class StoreAgentSpec(Model):
    """A shop: what its agent knows and says, which numbers reach it, and how it runs."""

    phone_numbers: list[PhoneNumber] = Field(min_length=1, max_length=20, description="DIDs routed to this shop.")
    language: str = Field(default="en-US", pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
    profile: ShopProfile
    providers: Providers = Field(default_factory=Providers)
    secret_ref: SecretRef | None = None
    transfer: TransferConfig = Field(default_factory=TransferConfig)
    webhook: WebhookConfig | None = None
    # Empty: the shipped apology in the shop's language (storeagent.operator.dialplan.apology_file).
    fallback: Fallback = Field(default_factory=Fallback)
    max_call_seconds: int = Field(default=600, ge=30, le=3600)
    silence_reprompt_seconds: float = Field(default=8.0, ge=2.0, le=60.0)
    scaling: Scaling = Field(default_factory=Scaling)
    resources: Resources = Field(default_factory=Resources)
    # No `image`: which code runs with the namespace's provider keys is the platform's decision (operator
    # settings / chart value operator.agentImage), never a tenant's. docs/security.md has the migration.

    @model_validator(mode="after")
    def _unique_numbers(self) -> StoreAgentSpec:
        seen: set[str] = set()
        for n in self.phone_numbers:
            if n in seen:
                raise ValueError(f"phoneNumbers: {n} is listed twice")
            seen.add(n)
        return self

    def shop_config(self, store: str) -> ShopConfig:
        """The agent's config (ConfigMap `shop.yaml`): the shop fields, operator-only fields left out."""
        return ShopConfig(
            store=store,
            language=self.language,
            phone_numbers=list(self.phone_numbers),
            profile=self.profile,
            providers=self.providers,
            transfer=self.transfer,
            webhook=self.webhook,
            max_call_seconds=self.max_call_seconds,
            silence_reprompt_seconds=self.silence_reprompt_seconds,
        )


class Condition(Model):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: str = ""
    observed_generation: int | None = None


class LatencySummary(Model):
    p50_ms: float | None = None
    p95_ms: float | None = None


class StoreAgentStatus(Model):
    observed_generation: int | None = None
    phone_numbers: str = Field(default="", description="The numbers, comma separated (printer column).")
    replicas: int = 0
    ready_replicas: int = 0
    calls_active: int = 0
    calls_total: int = 0
    voice_to_voice: LatencySummary = Field(default_factory=LatencySummary)
    conditions: list[Condition] = Field(default_factory=list)


# CEL rules attached to named schema objects by crdgen (models reused from storeagent.shop cannot carry
# them without importing operator concerns into the agent's module).
CEL_RULES: dict[str, list[dict[str, str]]] = {
    "TimeRange": [_cel("self.close > self.open", "close must be after open (split overnight ranges)", ".close")],
    "Fallback": [
        _cel(
            f"!has(self.playback) || !self.playback.matches('(?i){PREPROCESS_WORD}')",
            f"playback must not contain {PREPROCESS_WORD!r} (FreeSWITCH's XML preprocessor drops such lines)",
            ".playback",
        ),
        _cel(
            "has(self.forwardTo) || has(self.playback)",
            "fallback needs forwardTo or playback: a caller must never hear dead air",
            reason="FieldValueRequired",
        )
    ],
    "Resources": [
        _cel(
            "!has(self.requests.cpu) || !has(self.limits.cpu) || "
            "quantity(self.limits.cpu).compareTo(quantity(self.requests.cpu)) >= 0",
            "limits.cpu must not be below requests.cpu",
            ".limits.cpu",
        ),
        _cel(
            "!has(self.requests.memory) || !has(self.limits.memory) || "
            "quantity(self.limits.memory).compareTo(quantity(self.requests.memory)) >= 0",
            "limits.memory must not be below requests.memory",
            ".limits.memory",
        ),
    ],
    "StoreAgentSpec": [
        _cel(
            "!has(self.transfer) || !has(self.transfer.staffNumbers) || "
            "self.transfer.staffNumbers.all(n, !(n in self.phoneNumbers))",
            "transfer.staffNumbers must not contain the shop's own phoneNumbers (the call would loop)",
            ".transfer.staffNumbers",
        ),
        _cel(
            "!has(self.fallback) || !has(self.fallback.forwardTo) || !(self.fallback.forwardTo in self.phoneNumbers)",
            "fallback.forwardTo must not be one of the shop's own phoneNumbers (the call would loop)",
            ".fallback.forwardTo",
        ),
    ],
}

def _size(expr: str, field: str) -> str:
    return f"(has({expr}.{field}) ? {expr}.{field}.size() : 0)"


def _words(expr: str, field: str) -> str:
    return f"(has({expr}.{field}) ? {expr}.{field}.map(w, w.size()).sum() : 0)"


# Same count as storeagent.shop.profile_text_size (fields the API server stored absent count 0).
_PROFILE_TEXT = " + ".join([
    "(has(self.faq) ? self.faq.map(f, f.question.size() + f.answer.size() + " + _words("f", "keywords")
    + ").sum() : 0)",
    "(has(self.menu) ? self.menu.map(m, m.name.size() + " + _size("m", "description") + " + "
    + _words("m", "aliases") + ").sum() : 0)",
    "(has(self.holidays) ? self.holidays.map(h, " + _size("h", "name") + ").sum() : 0)",
    _size("self", "address"), _size("self", "directions"), _size("self", "greeting"),
])
CEL_RULES["ShopProfile"] = [
    _cel(f"{_PROFILE_TEXT} <= {PROFILE_TEXT_BUDGET}",
         f"profile text (FAQ, menu, address, directions, greeting, holiday names) exceeds the budget of "
         f"{PROFILE_TEXT_BUDGET} characters"),
]
_KEY_MSG = "looks like an API key: keys belong in the Secret named by secretRef, not in the spec"
CEL_RULES["ProviderChoice"] = [
    _cel(f"!has(self.{f}) || !self.{f}.matches('{KEY_SHAPED_RE}')", _KEY_MSG, f".{f}")
    for f in ("model", "voice", "baseUrl")
]

# Rules on the whole object (they may read metadata.name).
ROOT_CEL_RULES = [
    _cel(
        "self.metadata.name.size() <= 52 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
        "metadata.name must be a DNS-1035 label of at most 52 characters (it names the shop's Service)",
        reason="FieldValueInvalid",
    ),
    _cel(
        f"!self.metadata.name.contains('{PREPROCESS_WORD}')",
        f"metadata.name must not contain {PREPROCESS_WORD!r}: the name is written into FreeSWITCH's dialplan, "
        "whose preprocessor drops such lines",
        reason="FieldValueInvalid",
    ),
]


def policy_violations(spec: StoreAgentSpec, policy: TenantPolicy) -> list[str]:
    """What the platform's policy refuses in a spec that passed admission (the CRD cannot know the platform's
    allowlists): provider and webhook URLs, forward and transfer numbers. Empty: the spec may be rendered."""
    out: list[str] = []

    def provider(choice: ProviderChoice, path: str) -> None:
        if choice.base_url:
            try:
                check_url(choice.base_url, policy.urls, f"{path}.baseUrl")
            except PolicyError as e:
                out.append(str(e))
        for i, fb in enumerate(choice.fallbacks):
            provider(fb, f"{path}.fallbacks[{i}]")

    for stage in ("stt", "llm", "tts"):
        provider(getattr(spec.providers, stage), f"spec.providers.{stage}")
    if spec.webhook is not None:
        try:
            check_url(spec.webhook.url, policy.urls, "spec.webhook.url")
        except PolicyError as e:
            out.append(str(e))
    targets = [("spec.fallback.forwardTo", spec.fallback.forward_to)] + [
        (f"spec.transfer.staffNumbers[{i}]", n) for i, n in enumerate(spec.transfer.staff_numbers)]
    for path, number in targets:
        if number is not None and (why := number_refused(number, policy.numbers, spec.phone_numbers)):
            out.append(f"{path}: {why}")
    return out


def parse_spec(spec: dict[str, Any]) -> StoreAgentSpec:
    """Validate a spec as the API server stored it; raises pydantic.ValidationError naming the field."""
    return StoreAgentSpec.model_validate(spec)


def valid_store_name(name: str) -> bool:
    return (len(name) <= 52 and re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name) is not None
            and PREPROCESS_WORD not in name)
