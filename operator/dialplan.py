"""Pure FreeSWITCH 1.10 dialplan rendering and number ownership.

One file per shop, included into the `public` context (`<X-PRE-PROCESS cmd="include" data="storeagent/*.xml"/>`
in FreeSWITCH's public.xml). Per shop: match its numbers, set channel variables, `socket` to the shop's
Service `async full`, and then the fallback as the very next actions: FreeSWITCH continues the dialplan both
when the agent cannot be reached and when it dies mid-call (tests/data/freeswitch-1.10.12/fslog-agent-*.txt).
`send_silence_when_idle` is deliberately NOT set: with mod_storeagent's own paced writer it doubles the
outgoing RTP stream (DESIGN.md).

Files are sharded over a fixed number of ConfigMaps (a ConfigMap holds at most 1 MiB); the shard of a shop
never changes, because the shard count is a constant of the format.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

from storeagent.operator.model import Fallback

SHARDS = 16
CONFIGMAP_PREFIX = "storeagent-dialplan"
STORE_VAR = "storeagent_store"
NAMESPACE_VAR = "storeagent_namespace"


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


def fallback_actions(fallback: Fallback, bridge_template: str, apology: str) -> list[str]:
    """Forward to the owner's phone if set; if that fails (or there is none), apologise and hang up."""
    lines: list[str] = []
    if fallback.forward_to:
        lines.append(_action("set", "hangup_after_bridge=true"))
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
    """The shop's dialplan file. With no numbers left (all lost to conflicts) the file is an empty include."""
    nums = sorted(numbers)
    head = f"<include>\n  <!-- storeagent {namespace}/{name} generation {generation}: generated, do not edit -->\n"
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
    return head + "\n".join(lines) + "\n</include>\n"
