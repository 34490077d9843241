from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from storeagent.agent.pipeline.text import MAX_CLAUSE, ClauseSplitter


def split_stream(pieces: list[str]) -> list[str]:
    s = ClauseSplitter()
    out: list[str] = []
    for p in pieces:
        out += s.push(p)
    return out + s.flush()


def test_first_sentence_is_released_before_the_reply_ends() -> None:
    s = ClauseSplitter()
    assert s.push("We open at 8 AM on Saturday.") == []  # no space yet: could be "8 A.M." continuing
    assert s.push(" We close") == ["We open at 8 AM on Saturday."]
    assert s.flush() == ["We close"]


def test_prices_and_decimals_do_not_split() -> None:
    assert split_stream(["A croissant is $3.", "25 each. Anything else?"]) == [
        "A croissant is $3.25 each.",
        "Anything else?",
    ]


def test_long_comma_clauses_split_short_ones_do_not() -> None:
    text = "We have sourdough loaves at six fifty, croissants at three twenty five, and baguettes."
    assert split_stream([text]) == [
        "We have sourdough loaves at six fifty,",
        "croissants at three twenty five,",
        "and baguettes.",
    ]
    assert split_stream(["Yes, we do."]) == ["Yes, we do."]


def test_korean_sentences() -> None:
    assert split_stream(["토요일은 8시에 엽니다. ", "감사합니다."]) == ["토요일은 8시에 엽니다.", "감사합니다."]


@given(st.lists(st.text(alphabet="abc .,!?$0123456789", max_size=30), max_size=12))
def test_chunking_never_loses_or_reorders_text(pieces: list[str]) -> None:
    # Whitespace aside: a run longer than MAX_CLAUSE with no space in it is cut mid-word on purpose (TTS must get
    # bounded clauses), so comparing words would fail on text that is all there and in order.
    whole = "".join(pieces)
    assert "".join("".join(split_stream(pieces)).split()) == "".join(whole.split())


def test_a_long_run_without_spaces_is_cut_without_loss() -> None:
    run = "a" * 30
    clauses = split_stream([run] * 6)
    assert all(len(c) <= MAX_CLAUSE for c in clauses) and "".join(clauses) == run * 6
