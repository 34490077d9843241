from __future__ import annotations

from storeagent.agent.pipeline.history import History


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
