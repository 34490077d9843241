"""The call record the shop owner receives after each call: transcript, outcome, latencies, a short summary.

The call session fills `CallRecordInput` at hangup; `build_call_record` turns it into the webhook payload
(pure: no I/O, no clock) and `enqueue_call_record` stores it in the outbox under `call_record:<call_id>`, so a
record enqueued twice for one call is delivered once. The summary is extractive and deterministic (the
caller's first request, the outcome, the message left), so it costs no model call and never invents facts.
The caller's number is in the payload (it goes to the shop owner) and nowhere else: not in logs, not in metrics.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from storeagent.agent.store.outbox import Outbox

Role = Literal["caller", "agent"]
Outcome = Literal["answered", "message", "transferred", "abandoned", "failed"]
ROLES: tuple[str, ...] = get_args(Role)
OUTCOMES: tuple[str, ...] = get_args(Outcome)
SUMMARY_QUOTE_CHARS = 160  # long enough for one request, short enough for a phone notification


@dataclass(frozen=True, slots=True)
class TurnRecord:
    """One turn. Times are seconds since the call started (monotonic differences, so immune to clock jumps).

    `truncated` marks agent speech cut off by a barge-in; `text` is then only what the caller heard.
    `latency` (agent turns) maps a stage (stt_final, llm_first_token, tts_first_audio, voice_to_voice) to
    seconds from the end of the caller's previous turn.
    """

    role: Role
    text: str
    start_s: float
    end_s: float
    truncated: bool = False
    latency: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role: must be one of {', '.join(ROLES)}, got {self.role!r}")
        for name in ("start_s", "end_s"):
            v = getattr(self, name)
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"{name}: must be a finite number of seconds >= 0, got {v!r}")
        if self.end_s < self.start_s:
            raise ValueError(f"end_s: {self.end_s} is before start_s {self.start_s}")
        for stage, secs in self.latency.items():
            if not math.isfinite(secs) or secs < 0:
                raise ValueError(f"latency[{stage!r}]: must be finite seconds >= 0, got {secs!r}")


@dataclass(frozen=True, slots=True)
class TransferRecord:
    """One attempt to hand the call to staff, with FreeSWITCH's verdict."""

    to: str
    answered: bool
    result: str  # originate_disposition: "call accepted", NO_ANSWER, USER_BUSY, INVALID_GATEWAY, ...


@dataclass(frozen=True, slots=True)
class CallRecordInput:
    """Everything the record needs, filled by the call session at hangup."""

    call_id: str  # FreeSWITCH channel uuid
    store: str
    started_at: datetime  # timezone-aware wall clock, when the call was answered
    ended_at: datetime
    outcome: Outcome
    turns: Sequence[TurnRecord] = ()
    caller_number: str | None = None  # as FreeSWITCH reported it (Caller-Caller-ID-Number); may be withheld
    message: Mapping[str, Any] | None = None  # what take_message stored (caller_name, callback_number, message)
    transferred_to: str | None = None
    transfers: Sequence[TransferRecord] = ()  # every attempt, answered or not
    language: str = ""
    end_reason: str = ""  # e.g. caller_hangup, end_call, transfer, max_duration, error

    def __post_init__(self) -> None:
        if not self.call_id:
            raise ValueError("call_id: must not be empty")
        if not self.store:
            raise ValueError("store: must not be empty")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome: must be one of {', '.join(OUTCOMES)}, got {self.outcome!r}")
        for name in ("started_at", "ended_at"):
            if getattr(self, name).utcoffset() is None:
                raise ValueError(f"{name}: must be timezone-aware")
        if self.ended_at < self.started_at:
            raise ValueError("ended_at: is before started_at")


@dataclass(frozen=True, slots=True)
class CallRecord:
    key: str  # the outbox idempotency key
    payload: dict[str, Any]


def call_record_key(call_id: str) -> str:
    return f"call_record:{call_id}"


def build_call_record(inp: CallRecordInput) -> CallRecord:
    turns = sorted(inp.turns, key=lambda t: t.start_s)
    payload: dict[str, Any] = {
        "call_id": inp.call_id,
        "store": inp.store,
        "caller_number": inp.caller_number,
        "started_at": _iso(inp.started_at),
        "ended_at": _iso(inp.ended_at),
        "duration_s": round((inp.ended_at - inp.started_at).total_seconds(), 3),
        "outcome": inp.outcome,
        "end_reason": inp.end_reason,
        "language": inp.language,
        "summary": summarize(inp.outcome, turns, inp.message, inp.transferred_to, inp.transfers),
        "message": dict(inp.message) if inp.message is not None else None,
        "transferred_to": inp.transferred_to,
        "transfers": [{"to": t.to, "answered": t.answered, "result": t.result} for t in inp.transfers],
        "transcript": [_turn(t) for t in turns],
        "latency": latency_summary(turns),
    }
    return CallRecord(call_record_key(inp.call_id), payload)


async def enqueue_call_record(outbox: Outbox, inp: CallRecordInput) -> bool:
    """Build and store the record for delivery; False if this call's record was already enqueued."""
    record = build_call_record(inp)
    return await outbox.enqueue("call_record", record.payload, record.key)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _turn(t: TurnRecord) -> dict[str, Any]:
    d: dict[str, Any] = {"role": t.role, "text": t.text, "start_s": round(t.start_s, 3), "end_s": round(t.end_s, 3)}
    if t.role == "agent":
        d["truncated"] = t.truncated
        d["latency"] = {k: round(v, 3) for k, v in sorted(t.latency.items())}
    return d


def latency_summary(turns: Sequence[TurnRecord]) -> dict[str, dict[str, float]]:
    """Per stage over the call: count, mean and max seconds (the owner's "was it snappy" at a glance)."""
    by_stage: dict[str, list[float]] = {}
    for t in turns:
        for stage, secs in t.latency.items():
            by_stage.setdefault(stage, []).append(secs)
    return {
        stage: {"count": len(v), "mean": round(sum(v) / len(v), 3), "max": round(max(v), 3)}
        for stage, v in sorted(by_stage.items())
    }


def _clip(text: str, limit: int = SUMMARY_QUOTE_CHARS) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] or text[:limit]
    return cut.rstrip(",;:.") + "…"


def summarize(
    outcome: str,
    turns: Sequence[TurnRecord],
    message: Mapping[str, Any] | None = None,
    transferred_to: str | None = None,
    transfers: Sequence[TransferRecord] = (),
) -> str:
    """One or two sentences: what the caller first asked, then how the call ended."""
    first = next((t.text for t in turns if t.role == "caller" and t.text.strip()), "")
    parts = [f'Caller asked: "{_clip(first)}".'] if first else []
    missed = [t for t in transfers if not t.answered]
    if missed and outcome != "transferred":
        parts.append(f"Staff did not answer the transfer ({', '.join(t.result for t in missed)}).")
    if outcome == "message":
        parts.append(_message_sentence(message))
    elif outcome == "transferred":
        parts.append(f"Transferred to staff ({transferred_to})." if transferred_to else "Transferred to staff.")
    elif outcome == "answered":
        parts.append("Answered by the agent.")
    elif outcome == "abandoned":
        parts.append("Caller hung up before the agent could help." if first else "Caller hung up without speaking.")
    else:
        parts.append("The call ended on a technical failure.")
    return " ".join(parts)


def _message_sentence(message: Mapping[str, Any] | None) -> str:
    if not message:
        return "Caller left a message."
    name = str(message.get("caller_name") or "").strip() or "unknown caller"
    number = str(message.get("callback_number") or "").strip()
    who = f"{name}, callback {number}" if number else name
    text = str(message.get("message") or "").strip()
    return f'Message from {who}: "{_clip(text)}".' if text else f"Message from {who}."
