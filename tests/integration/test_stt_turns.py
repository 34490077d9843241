"""Caller turns on real timing against the Deepgram protocol server (tests/support/turn_timing.py): no turn is
lost to a final that comes before our end-of-turn decision, a pause inside a turn keeps both parts, a dropped
stream is reconnected within the turn, and with no recognizer left the caller hears the hand-off line.

The full table (every variant, repeated) is `make bench-stt-turns`, in docs/providers.md."""

from __future__ import annotations

import pytest

from support.turn_timing import VARIANTS, run_variant

pytestmark = pytest.mark.integration
BY_NAME = {v.name: v for v in VARIANTS}


@pytest.mark.parametrize("name", [
    "final before decision (endpointing 300 ms, result +50 ms)",
    "final after decision (endpointing 300 ms, result +400 ms)",
    "400 ms pause inside the turn",
])
async def test_turn_is_answered_whenever_the_final_comes(name: str) -> None:
    r = await run_variant(BY_NAME[name])
    assert r.answered, (r.caller_text, r.outcome)
    assert r.caller_text == "오늘 몇 시에 문 닫아요"
    assert r.sessions == 1 and r.outcome.outcome == "answered"


@pytest.mark.parametrize("name", ["close 1011 mid-utterance", "connection abort mid-utterance"])
async def test_dropped_stream_is_reconnected_within_the_turn(name: str) -> None:
    r = await run_variant(BY_NAME[name])
    assert r.answered and r.caller_text == "오늘 몇 시에 문 닫아요", (r.caller_text, r.outcome)
    assert r.sessions == 2  # the same provider, once more, with the turn's audio replayed
    assert r.drop_to_audio is not None and not r.outcome.handoff


async def test_no_recognizer_left_says_the_hand_off_line_first() -> None:
    r = await run_variant(BY_NAME["close 1011, reconnect refused (503), no offline STT: hand-off"])
    assert r.outcome.handoff and not r.answered
    # The first agent line after the greeting, read from the call record: `first_heard` pairs lines with the
    # moment playout grew, which a starved CI loop can put past the 0.1 s it allows.
    after_greeting = [x.text for x in r.outcome.transcript if x.role == "agent"][1:]
    assert after_greeting and after_greeting[0].startswith("죄송합니다, 지금 말씀을 잘 들을 수 없어서"), after_greeting
    assert r.drop_to_audio is not None and r.drop_to_audio < 3.0
