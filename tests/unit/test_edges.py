"""A clause's own leading/trailing silence is trimmed (clause gaps <= 150 ms); its sound and inner pauses are not."""

from __future__ import annotations

from storeagent.agent.pipeline.edges import ClauseEdges
from support.audio import silence, voiced

RATE = 8000


def ms(pcm: bytes) -> float:
    return len(pcm) / 16


def run(chunks: list[bytes], **kw: int) -> bytes:
    e = ClauseEdges(RATE, **kw)
    return b"".join(e.push(c) for c in chunks) + e.end()


def test_padding_at_both_ends_is_cut_to_the_kept_lengths() -> None:
    word = voiced(400)
    out = run([silence(60) + word[:1600], word[1600:] + silence(250)], lead_ms=20, tail_ms=90)
    assert abs(ms(out) - (20 + 400 + 90)) <= 1
    assert word[100:-100] in out  # the sound itself goes out unchanged


def test_silence_inside_a_clause_is_kept_whole_even_across_chunks() -> None:
    a, b = voiced(300), voiced(300, f0=180)
    out = run([a + silence(100), silence(200), b + silence(300)], tail_ms=90)
    assert a + silence(300) + b in out  # the 300 ms pause between the two words survives


def test_sound_is_sent_at_once_and_only_the_quiet_after_it_waits() -> None:
    e = ClauseEdges(RATE)
    word = voiced(200)
    sent = e.push(word + silence(100))
    assert sent.startswith(word[:800]) and ms(sent) <= 200  # the word now; the quiet after it held
    assert e.push(silence(100)) == b""
    assert ms(e.end()) == 90


def test_a_tone_is_untouched_and_a_silent_clause_says_nothing() -> None:
    tone = voiced(500)
    assert run([tone[:1000], tone[1000:]]) == tone  # zero crossings are not silence
    assert run([silence(300), silence(300)]) == b""
