"""Call record: payload shape, extractive summary per outcome, latency summary, input validation."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from storeagent.agent.store.callrecord import (
    CallRecordInput,
    TransferRecord,
    TurnRecord,
    build_call_record,
    enqueue_call_record,
    summarize,
)
from storeagent.agent.store.outbox import Outbox

START = datetime(2026, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=9)))  # a Seoul shop
MESSAGE = {"id": "m1", "caller_name": "Kim Minji", "callback_number": "+821012345678", "message": "Cake for Sat?"}


def turns() -> list[TurnRecord]:
    return [
        TurnRecord("agent", "Thank you for calling Sunrise Bakery, how can I help?", 0.3, 3.1),
        TurnRecord("caller", "  Hi, do you   have a birthday cake for Saturday? ", 3.5, 6.0),
        TurnRecord("agent", "Let me check, we have", 6.7, 7.4, truncated=True,
                   latency={"stt_final": 0.21, "llm_first_token": 0.35, "voice_to_voice": 0.7}),
        TurnRecord("caller", "Actually can I leave a message?", 7.2, 9.0),
        TurnRecord("agent", "Of course. What is your name?", 9.5, 11.0, latency={"voice_to_voice": 0.5}),
    ]  # fmt: skip


def inp(**kw: Any) -> CallRecordInput:
    base: dict[str, Any] = {
        "call_id": "6f1c0e9a-uuid",
        "store": "sunrise-bakery",
        "started_at": START,
        "ended_at": START + timedelta(seconds=42.5),
        "outcome": "message",
        "turns": turns(),
        "caller_number": "+821099998888",
        "message": MESSAGE,
        "language": "ko",
        "end_reason": "end_call",
    }
    base.update(kw)
    return CallRecordInput(**base)


def test_payload_shape() -> None:
    rec = build_call_record(inp())
    p = rec.payload
    assert rec.key == "call_record:6f1c0e9a-uuid"
    assert p["started_at"] == "2026-03-01T00:30:00.000Z" and p["ended_at"] == "2026-03-01T00:30:42.500Z"
    assert p["duration_s"] == 42.5
    assert p["caller_number"] == "+821099998888" and p["outcome"] == "message" and p["message"] == MESSAGE
    assert [t["role"] for t in p["transcript"]] == ["agent", "caller", "agent", "caller", "agent"]
    assert p["transcript"][2] == {
        "role": "agent", "text": "Let me check, we have", "start_s": 6.7, "end_s": 7.4, "truncated": True,
        "latency": {"llm_first_token": 0.35, "stt_final": 0.21, "voice_to_voice": 0.7},
    }  # fmt: skip
    assert "truncated" not in p["transcript"][1]
    assert p["latency"]["voice_to_voice"] == {"count": 2, "mean": 0.6, "max": 0.7}
    assert p["latency"]["stt_final"] == {"count": 1, "mean": 0.21, "max": 0.21}
    json.dumps(p)  # serializable as is


def test_summary_is_extractive_and_deterministic() -> None:
    p = build_call_record(inp()).payload
    assert p["summary"] == (
        'Caller asked: "Hi, do you have a birthday cake for Saturday?". '
        'Message from Kim Minji, callback +821012345678: "Cake for Sat?".'
    )
    assert build_call_record(inp()).payload == p


@pytest.mark.parametrize(
    ("outcome", "extra", "expected_end"),
    [
        ("answered", {}, "Answered by the agent."),
        ("transferred", {"transferred_to": "+15551230001"}, "Transferred to staff (+15551230001)."),
        ("abandoned", {}, "Caller hung up before the agent could help."),
        ("failed", {}, "The call ended on a technical failure."),
    ],
)
def test_summary_per_outcome(outcome: str, extra: dict[str, str], expected_end: str) -> None:
    s = summarize(outcome, turns(), None, extra.get("transferred_to"))
    assert s.startswith('Caller asked: "Hi, do you have') and s.endswith(expected_end)


def test_summary_edge_cases() -> None:
    assert summarize("abandoned", []) == "Caller hung up without speaking."
    assert summarize("message", [], None) == "Caller left a message."
    long = TurnRecord("caller", "word " * 100, 0.0, 10.0)
    quoted = summarize("answered", [long]).split('"')[1]
    assert len(quoted) <= 161 and quoted.endswith("…")
    assert summarize("message", [], {"caller_name": "", "message": "x"}) == 'Message from unknown caller: "x".'


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"outcome": "hung_up"}, "^outcome: must be one of"),
        ({"call_id": ""}, "^call_id:"),
        ({"store": ""}, "^store:"),
        ({"started_at": datetime(2026, 3, 1, 9, 30)}, "^started_at: must be timezone-aware"),
        ({"ended_at": START - timedelta(seconds=1)}, "^ended_at: is before started_at"),
    ],
)
def test_invalid_input_names_the_field(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        inp(**kw)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("bot", "x", 0.0, 1.0), "^role:"),
        (("agent", "x", -1.0, 1.0), "^start_s:"),
        (("agent", "x", 2.0, 1.0), "^end_s:"),
        (("agent", "x", 0.0, float("nan")), "^end_s:"),
    ],
)
def test_invalid_turn_names_the_field(args: tuple[Any, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TurnRecord(*args)
    with pytest.raises(ValueError, match=r"^latency\['voice_to_voice'\]"):
        TurnRecord("agent", "x", 0.0, 1.0, latency={"voice_to_voice": -0.1})


async def test_enqueue_once_per_call(tmp_path: Path) -> None:
    box = await Outbox.open(tmp_path / "o.sqlite", store="sunrise-bakery")
    try:
        assert await enqueue_call_record(box, inp()) is True
        assert await enqueue_call_record(box, inp(ended_at=START + timedelta(seconds=50))) is False
        (item,) = await box.pending()
        assert item.kind == "call_record" and json.loads(item.body)["data"]["duration_s"] == 42.5
    finally:
        await box.close()


def test_utc_input_stays_utc() -> None:
    p = build_call_record(
        inp(started_at=datetime(2026, 1, 1, tzinfo=UTC), ended_at=datetime(2026, 1, 1, 0, 1, tzinfo=UTC))
    )
    assert p.payload["started_at"] == "2026-01-01T00:00:00.000Z" and p.payload["duration_s"] == 60.0


def test_transfer_attempts_are_in_the_record_with_freeswitchs_verdict() -> None:
    missed = TransferRecord("+15551239999", answered=False, result="NO_ANSWER")
    payload = build_call_record(inp(outcome="message", message=MESSAGE, transfers=[missed])).payload
    assert payload["transfers"] == [{"to": "+15551239999", "answered": False, "result": "NO_ANSWER"}]
    assert "Staff did not answer the transfer (NO_ANSWER)." in payload["summary"]
    taken = TransferRecord("+15551239999", answered=True, result="SUCCESS")
    payload = build_call_record(inp(outcome="transferred", transferred_to="+15551239999", transfers=[taken])).payload
    assert payload["transferred_to"] == "+15551239999" and payload["transfers"][0]["answered"] is True
    assert payload["summary"].endswith("Transferred to staff (+15551239999).")
