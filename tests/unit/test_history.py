from __future__ import annotations

from storeagent.agent.pipeline.history import History, spoken_prefix


def test_only_played_clauses_reach_the_model() -> None:
    h = History("sys")
    h.add_user("what's on the menu")
    u = h.start_utterance()
    for i, text in enumerate(["We have sourdough.", "We have croissants.", "We have cake."]):
        h.add_clause(u, text, f"t1.{i}")
    h.on_mark("t1.0", "played")
    h.on_mark("t1.1", "cleared")
    h.on_mark("t1.2", "cleared")
    u.interrupted = True
    msgs = h.messages()
    assert [m.role for m in msgs] == ["system", "user", "assistant"]
    assert msgs[-1].content.startswith("We have sourdough.")
    assert "croissants" not in msgs[-1].content and "interrupted" in msgs[-1].content
    assert u.full_text().endswith("We have cake.")


def test_nothing_heard_leaves_no_assistant_message() -> None:
    h = History("sys")
    u = h.start_utterance()
    h.add_clause(u, "Hello.", "g.0")
    h.on_mark("g.0", "cleared")
    assert [m.role for m in h.messages()] == ["system"]
    assert not u.pending


def test_a_clause_cut_off_mid_way_keeps_the_words_its_played_audio_covers() -> None:
    h = History("sys")
    u = h.start_utterance()
    text = "We open at eight in the morning and close at four in the afternoon."
    c = h.add_clause(u, text, "t1.0")
    c.audio_ms, c.sealed = 4000, True
    for ms in (300, 600, 900, 1200, 1500, 1800):
        h.add_progress(c, f"t1.0+{ms}", ms)
    for ms in (300, 600, 900, 1200, 1500):
        h.on_mark(f"t1.0+{ms}", "played")
    h.on_mark("t1.0+1800", "cleared")  # the barge-in's clear dropped the rest
    h.on_mark("t1.0", "cleared")
    u.interrupted = True
    # 1.5 s of 4 s is 37.5 % of the 68 characters (25.5): the words ending by then.
    assert u.heard_text() == "We open at eight in the"
    assert h.messages()[-1].content == "We open at eight in the [the caller interrupted here]"
    assert not u.pending


def test_spoken_prefix_rounds_down_to_whole_words_or_characters() -> None:
    assert spoken_prefix("one two three four", 0.5) == "one two"  # "three" ends at 13 of 18 > 9
    assert spoken_prefix("one two three four", 0.1) == ""
    assert spoken_prefix("one two three four", 1.0) == "one two three four"
    assert spoken_prefix("토요일은 8시에 엽니다.", 0.5) == "토요일은"
    assert spoken_prefix("今日は八時に開きます", 0.5) == "今日は八時"  # no spaces: by character


def test_a_clause_cut_while_still_synthesizing_estimates_its_length() -> None:
    h = History("sys")
    u = h.start_utterance()
    c = h.add_clause(u, "Our sourdough is six fifty a loaf.", "t2.0")  # 34 chars: ~2.4 s at 70 ms a char
    c.audio_ms = 600  # only this much existed when the reply was cancelled; never sealed
    h.add_progress(c, "t2.0+300", 300)
    h.on_mark("t2.0+300", "played")
    assert u.heard_text() == "Our"  # 300 / 2380 ms of 34 characters = 4.3: "Our" ends at 3
    assert not u.pending  # never sealed: nothing of ours is queued for its final mark
