from __future__ import annotations

from storeagent.agent.pipeline.turn import SpeechStart, TurnDetector, TurnEnd, TurnState
from support.turnfeed import feed


def test_speech_start_needs_three_frames_and_reports_onset_time() -> None:
    det = TurnDetector(speech_start_ms=60, end_of_turn_ms=100)
    evs = feed(det, "..SSS")
    assert len(evs) == 1
    i, ev = evs[0]
    assert i == 4 and isinstance(ev, SpeechStart)
    assert abs(ev.onset_at - 0.04) < 1e-9 and abs(ev.detected_at - 0.08) < 1e-9


def test_a_click_is_not_a_turn() -> None:
    det = TurnDetector(speech_start_ms=60, end_of_turn_ms=100)
    assert feed(det, "SS.....S.....") == []
    assert det.state is TurnState.SILENCE


def test_turn_ends_after_silence_and_survives_short_pauses() -> None:
    det = TurnDetector(speech_start_ms=60, end_of_turn_ms=100)
    evs = feed(det, "SSSSS...SSS.....")
    kinds = [type(e).__name__ for _, e in evs]
    assert kinds == ["SpeechStart", "TurnEnd"]
    i, end = evs[1]
    assert isinstance(end, TurnEnd)
    assert i == 15  # five silent frames after the last speech frame (index 10)
    assert abs(end.last_speech_at - 10 * 0.02) < 1e-9
    assert end.speech_ms == 8 * 20


def test_detector_resets_for_the_next_turn() -> None:
    det = TurnDetector(speech_start_ms=40, end_of_turn_ms=40)
    evs = feed(det, "SS..SS..")
    assert [type(e).__name__ for _, e in evs] == ["SpeechStart", "TurnEnd", "SpeechStart", "TurnEnd"]
