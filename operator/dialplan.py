"""Pure FreeSWITCH 1.10 dialplan rendering and number ownership.

One file per shop, included into the `public` context (`<X-PRE-PROCESS cmd="include" data="storeagent/*.xml"/>`
in FreeSWITCH's public.xml). Per shop: match its numbers, set channel variables, `socket` to the shop's
Service `async full`, and then the fallback as the very next actions: FreeSWITCH continues the dialplan both
when the agent cannot be reached and when it dies mid-call (tests/data/freeswitch-1.10.12/fslog-agent-*.txt).
`send_silence_when_idle` is deliberately NOT set: with mod_storeagent's own paced writer it doubles the
outgoing RTP stream (DESIGN.md). Nor is `rtp_timer_name=none` (it would save the caller's audio FreeSWITCH's
0-20 ms timed read): measured on a real 1.10.12, a channel without an RTP timer is paced by the caller's packets,
so with a silent caller (silence suppression, hold) an agent that dies mid-call leaves dead air - the session
thread never reaches the forward (no INVITE in 18 s; with the profile's `soft` timer the INVITE left 82 ms after
the kill) - and a `playback` sends 4 packets in 15 s. `timer_name=soft` before the playback mends only the
playback, not the stalled fallback, so the channel keeps the profile's timer (docs/benchmarks.md "Wire").

Every tenant-written value is checked against a narrow allowlist here again, whatever admission let through
(defense in depth: a spec stored before a rule existed, or a bug in the CRD): FreeSWITCH expands `${..}` and
`${api(..)}` in action data when the action runs, and `$${..}` / `X-PRE-PROCESS` when it loads the file.
A value outside its allowlist raises `RenderError`; nothing is escaped into "safe" FreeSWITCH syntax.

The fallback always ends in an apology in the shop's language: a failed forward continues (`continue_on_fail`;
without it FreeSWITCH hangs the caller up on the spot), and the default apology is a file every FreeSWITCH
image ships: `freeswitch/sounds/make_apologies.py` synthesizes `<sounds_dir>/storeagent/apology-<lang>.wav`
for each of APOLOGY_LANGUAGES at image build time (FreeSWITCH resolves the relative path against its
sounds directory).

Files are sharded over a fixed number of ConfigMaps (a ConfigMap holds at most 1 MiB); the shard of a shop
never changes, because the shard count is a constant of the format.
"""

from __future__ import annotations

import functools
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

from storeagent.operator.model import PLAYBACK_MAX, PLAYBACK_RE, PREPROCESS_WORD, Fallback, StoreAgentSpec

SHARDS = 16
# Languages freeswitch/sounds/apologies.json has an apology for (a unit test keeps both in step); the first
# is what any other language gets.
APOLOGY_LANGUAGES = ("en", "ko")
FORWARD_RING_SECONDS = 30  # how long the owner's phone rings before the caller gets the apology
# What a caller whose call was already answered (the agent died mid-call) hears while the owner's phone rings:
# FreeSWITCH's US ringback tone (vars.xml `us-ring` in the stock conf), instead of silence.
FORWARD_RINGBACK = "%(2000,4000,440,480)"
CONFIGMAP_PREFIX = "storeagent-dialplan"
STORE_VAR = "storeagent_store"
NAMESPACE_VAR = "storeagent_namespace"


# Allowlists for what reaches the file (fullmatch: Python's `$` would also accept a trailing newline).
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*")
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_PLAYBACK = re.compile(PLAYBACK_RE.removeprefix("^").removesuffix("$"))


class RenderError(ValueError):
    """A value may not be written into a FreeSWITCH dialplan; the shop gets no dialplan until it is fixed."""

    def __init__(self, field: str, value: object, why: str) -> None:
        super().__init__(f"{field} {str(value)[:80]!r} cannot be rendered into the dialplan: {why}")
        self.field = field


def _allow(field: str, value: str, pattern: re.Pattern[str], max_len: int, what: str) -> str:
    if not isinstance(value, str) or len(value) > max_len or pattern.fullmatch(value) is None:
        raise RenderError(field, value, f"must be {what}")
    if PREPROCESS_WORD in value.lower():
        raise RenderError(field, value, f"must not contain {PREPROCESS_WORD!r}")
    return value


def _check_inputs(namespace: str, name: str, numbers: list[str], service_host: str, esl_port: int,
                  fallback: Fallback, apology: str, generation: int) -> None:
    _allow("metadata.namespace", namespace, _DNS_LABEL, 63, "a DNS label")
    _allow("metadata.name", name, _DNS_LABEL, 63, "a DNS label")
    _allow("serviceHost", service_host, _DNS_NAME, 253, "a DNS name")
    for i, n in enumerate(numbers):
        _allow(f"phoneNumbers[{i}]", n, _E164, 16, "an E.164 number")
    if fallback.forward_to is not None:
        _allow("fallback.forwardTo", fallback.forward_to, _E164, 16, "an E.164 number")
    if fallback.playback is not None:
        _allow("fallback.playback", fallback.playback, _PLAYBACK, PLAYBACK_MAX, "a relative .wav path")
    _allow("apology", apology, _PLAYBACK, PLAYBACK_MAX, "a relative .wav path")
    if type(esl_port) is not int or not 0 < esl_port < 65536:
        raise RenderError("eslPort", esl_port, "must be a TCP port")
    if type(generation) is not int or generation < 0:
        raise RenderError("generation", generation, "must be a non-negative integer")


def check_spec(namespace: str, name: str, spec: StoreAgentSpec) -> None:
    """What render() would refuse in this shop, checked before anything of the shop is written (RenderError)."""
    _check_inputs(namespace, name, list(spec.phone_numbers), f"{name}.{namespace}.svc.cluster.local", 1,
                  spec.fallback, apology_file(spec.language), 0)


@dataclass(frozen=True)
class Claim:
    """A shop's wish for its numbers, as the ownership rule sees it."""

    namespace: str
    name: str
    created: str  # metadata.creationTimestamp, RFC 3339 (sorts chronologically)
    numbers: tuple[str, ...]
    uid: str = ""

    @functools.cached_property
    def key(self) -> str:  # cached: ownership() sorts by it for every number
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Ownership:
    owner: dict[str, str]  # number -> shop key that keeps it
    contested: dict[str, tuple[str, ...]]  # number -> every shop key claiming it (owner first)

    def lost_by(self, key: str, numbers: Iterable[str]) -> list[str]:
        """Numbers this shop asked for but another shop holds."""
        return [n for n in numbers if self.owner.get(n, key) != key]

    def rivals(self, key: str, numbers: Iterable[str]) -> dict[str, list[str]]:
        """For each contested number of this shop: the other shops claiming it."""
        return {n: [k for k in self.contested[n] if k != key] for n in numbers if n in self.contested}


def ownership(claims: Iterable[Claim]) -> Ownership:
    """First come keeps the number (oldest creationTimestamp, then namespace/name): a newer shop never
    silently takes over a number a live shop answers; both are told about the conflict."""
    by_number: dict[str, list[Claim]] = {}
    for c in claims:
        for n in c.numbers:
            by_number.setdefault(n, []).append(c)
    owner: dict[str, str] = {}
    contested: dict[str, tuple[str, ...]] = {}
    for n, cs in by_number.items():
        ordered = sorted(cs, key=lambda c: (c.created, c.key))
        owner[n] = ordered[0].key
        if len(ordered) > 1:
            contested[n] = tuple(c.key for c in ordered)
    return Ownership(owner, contested)


def shard_of(namespace: str, name: str) -> int:
    return zlib.crc32(f"{namespace}/{name}".encode()) % SHARDS


def configmap_name(shard: int) -> str:
    return f"{CONFIGMAP_PREFIX}-{shard:02d}"


def file_key(namespace: str, name: str) -> str:
    # ConfigMap keys allow [-._a-zA-Z0-9]; namespace and name are DNS labels, so "." separates them safely.
    return f"{namespace}.{name}.xml"


def _action(app: str, data: str = "") -> str:
    attrs = f"application={quoteattr(app)}" + (f" data={quoteattr(data)}" if data else "")
    return f"      <action {attrs}/>"


def apology_file(language: str) -> str:
    """The shipped apology for a shop language (BCP 47, e.g. "ko-KR"), relative to FreeSWITCH's sounds dir."""
    lang = language.split("-", 1)[0].lower()
    return f"storeagent/apology-{lang if lang in APOLOGY_LANGUAGES else APOLOGY_LANGUAGES[0]}.wav"


def fallback_actions(fallback: Fallback, bridge_template: str, apology: str) -> list[str]:
    """Forward to the owner's phone if set; if that fails (or there is none), apologise and hang up."""
    lines: list[str] = []
    if fallback.forward_to:
        # continue_on_fail: an unreachable, busy or silent owner falls through to the apology instead of the
        # caller being hung up (FreeSWITCH 1.10 switch_channel_handle_cause); once the owner answered, the
        # call ends with the bridge (hangup_after_bridge) and the apology never plays.
        lines.append(_action("set", "continue_on_fail=true"))
        lines.append(_action("set", "hangup_after_bridge=true"))
        lines.append(_action("set", f"call_timeout={FORWARD_RING_SECONDS}"))
        lines.append(_action("set", f"transfer_ringback={FORWARD_RINGBACK}"))
        lines.append(_action("bridge", bridge_template.format(number=fallback.forward_to)))
    lines.append(_action("answer"))
    lines.append(_action("playback", fallback.playback or apology))
    lines.append(_action("hangup", "NORMAL_TEMPORARY_FAILURE"))
    return lines


def render(
    *,
    namespace: str,
    name: str,
    numbers: Iterable[str],
    service_host: str,
    esl_port: int,
    fallback: Fallback,
    bridge_template: str,
    apology: str,
    generation: int,
) -> str:
    """The shop's dialplan file. With no numbers left (all lost to conflicts) the file is an empty include.

    Raises RenderError when a value is outside its allowlist (see the module docstring)."""
    given = list(numbers)
    _check_inputs(namespace, name, given, service_host, esl_port, fallback, apology, generation)
    nums = sorted(given)
    # The names stay out of the comment: a legal DNS label may contain "--", which XML comments may not.
    head = f"<include>\n  <!-- storeagent generation {generation}: generated from a StoreAgent, do not edit -->\n"
    if not nums:
        return head + "</include>\n"
    # E.164 with or without the leading "+": carriers differ in what they send as destination_number.
    alternatives = "|".join(n.lstrip("+") for n in nums)
    expr = f"^\\+?({alternatives})$"
    lines = [
        f"  <extension name={quoteattr(f'storeagent-{namespace}-{name}')}>",
        f"    <condition field=\"destination_number\" expression={quoteattr(expr)}>",
        _action("set", f"{STORE_VAR}={name}"),
        _action("set", f"{NAMESPACE_VAR}={namespace}"),
        _action("socket", f"{service_host}:{esl_port} async full"),
        *fallback_actions(fallback, bridge_template, apology),
        "    </condition>",
        "  </extension>",
    ]
    xml = head + "\n".join(lines) + "\n</include>\n"
    # Whole-file wall: the preprocessor word from anywhere (the platform's gateway name included) would
    # silently delete its line and break the shard every shop shares.
    if PREPROCESS_WORD in xml.lower():
        raise RenderError("dialplan", PREPROCESS_WORD, "the rendered file must not contain it")
    return xml
