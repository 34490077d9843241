"""The demo's fact check: it reads the whole answer to each question, not just its first line."""

from __future__ import annotations

from storeagent.agent.loopback.demo import Question, check_answers
from storeagent.agent.pipeline.conversation import ConversationOutcome
from storeagent.agent.pipeline.history import TranscriptLine


def outcome(*lines: tuple[str, str]) -> ConversationOutcome:
    return ConversationOutcome(transcript=[TranscriptLine(role, text) for role, text in lines])


SCRIPT = [Question("How much is the sourdough?", (r"6\.50",)), Question("Where are you?", (r"42 Maple",))]


def test_a_filler_before_the_answer_is_not_the_answer() -> None:
    out = outcome(("agent", "Hello."), ("caller", "how much is the sourdough"), ("agent", "One moment."),
                  ("agent", "It's $6.50."), ("caller", "where are you"), ("agent", "We're at 42 Maple Street."))
    assert check_answers(SCRIPT, out) == []


def test_a_fact_said_only_after_the_next_question_does_not_count() -> None:
    out = outcome(("caller", "how much is the sourdough"), ("agent", "One moment."),
                  ("caller", "where are you"), ("agent", "It's $6.50. We're at 42 Maple Street."))
    problems = check_answers(SCRIPT, out)
    assert len(problems) == 1 and "sourdough" in problems[0]


def test_a_question_never_heard_is_reported() -> None:
    assert any("heard 1 of 2" in p for p in check_answers(SCRIPT, outcome(("caller", "hi"), ("agent", "$6.50"))))
