"""The interruption judge (pipeline/interruption.py): which sounds under the agent's speech pause it for good
(REAL) and which resume it (FALSE), from synthetic frames: voiced speech (a harmonic source WebRTC's VAD calls
speech), noise bursts shaped like coughs, clicks, and recognizer words."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from storeagent.agent.pipeline.interruption import (
    InterruptionConfig,
    InterruptionJudge,
    Judgement,
    Verdict,
    content_words,
    periodicity,
)
from storeagent.agent.pipeline.vad import WebRtcVad
from support.audio import frames, silence, voiced

RATE = 8000


def burst(ms: int, seed: int, amplitude: float = 9000.0) -> bytes:
    """A cough-like sound: broadband noise with a fast attack and an exponential decay (aperiodic)."""
    rng = np.random.default_rng(seed)
    n = RATE * ms // 1000
    env = np.minimum(1.0, np.arange(n) / (0.01 * RATE)) * np.exp(-np.arange(n) / (0.35 * n))
    noise = np.convolve(rng.standard_normal(n), np.ones(3) / 3, "same")  # a little low-pass, like a throat
    return (noise / np.abs(noise).max() * env * amplitude).astype("<i2").tobytes()


def click() -> bytes:
    pcm = np.zeros(160, dtype="<i2")
    pcm[40:44] = [20000, -20000, 12000, -6000]
    return pcm.tobytes()


def judge_sound(sound: bytes, *, words: dict[int, str] | None = None, tail_ms: int = 1500,
                cfg: InterruptionConfig | None = None) -> tuple[Judgement | None, int]:
    """Feeds silence, the sound, then silence; returns the judgement and the frame index it came at."""
    vad, judge = WebRtcVad(RATE), InterruptionJudge(RATE, cfg or InterruptionConfig())
    stream = frames(silence(300) + sound + silence(tail_ms))
    for i, f in enumerate(stream):
        at = i * 0.02
        if not judge.pending:
            if judge.onset(vad.is_speech(f), f, at):
                opened = i
            continue
        if words and i - opened in words:
            j = judge.words(words[i - opened], at)
            if j is not None:
                return j, i
        j = judge.feed(vad.is_speech(f), f, at)
        if j is not None:
            return j, i
    return None, -1


def drive(judge: InterruptionJudge, sound: bytes, during: Callable[[int, float], None]) -> Judgement | None:
    """Frames through VAD and the judge: the first onset opens a judgement, `during(i, at)` runs on each frame
    of it before the judge sees the frame; returns the verdict."""
    vad = WebRtcVad(RATE)
    verdict = None
    for i, f in enumerate(frames(sound)):
        at = i * 0.02
        if not judge.pending:
            if verdict is None:
                judge.onset(vad.is_speech(f), f, at)
            continue
        during(i, at)
        verdict = judge.feed(vad.is_speech(f), f, at) or verdict
    return verdict


def test_the_caller_talking_on_is_a_real_interruption_decided_by_voice() -> None:
    j, _ = judge_sound(voiced(1200))
    assert j is not None and j.verdict is Verdict.REAL and j.reason == "voice"
    assert 0.55 <= j.decided_at - j.onset_at <= 0.7  # 600 ms of voice, then no further wait


def test_coughs_and_clicks_resume_soon_after_they_end() -> None:
    for seed in range(8):
        for ms in (120, 250, 400):
            j, _ = judge_sound(burst(ms, seed))
            if j is None:  # the VAD never called it speech: the agent was never even paused
                continue
            assert j.verdict is Verdict.FALSE, (seed, ms, j)
            assert j.voiced_ms < 200 and j.decided_at - j.onset_at <= ms / 1000 + 0.3, (seed, ms, j)
    j, _ = judge_sound(click())
    assert j is None or (j.verdict is Verdict.FALSE and j.decided_at - j.onset_at <= 0.3)


def test_a_short_voiced_sound_waits_briefly_for_words_then_resumes() -> None:
    j, _ = judge_sound(voiced(400))
    assert j is not None and j.verdict is Verdict.FALSE and j.reason == "no words"
    assert 0.9 <= j.decided_at - j.onset_at <= 1.0  # 400 ms sound + 240 ms release + 300 ms for words


def test_words_decide_a_short_sound_both_ways() -> None:
    # a backchannel heard by the recognizer: resume as soon as the sound ended
    j, _ = judge_sound(voiced(400), words={12: "mm hmm"})
    assert j is not None and j.verdict is Verdict.FALSE and j.reason == "backchannel"
    assert j.decided_at - j.onset_at < 0.7
    # a word that is not one ("wait"): a real interruption at once, before the sound even ends
    j, _ = judge_sound(voiced(400), words={8: "Wait"})
    assert j is not None and j.verdict is Verdict.REAL and j.reason == "words"
    assert j.decided_at - j.onset_at < 0.2


def test_words_on_a_voiceless_sound_do_not_make_it_real() -> None:
    """Recognizers invent words for coughs; without voice behind them they do not interrupt."""
    for seed in range(4):
        j, _ = judge_sound(burst(300, seed), words={3: "the"})
        assert j is None or j.verdict is Verdict.FALSE, (seed, j)


def test_steady_noise_resumes_once_and_does_not_pause_again_until_it_stops() -> None:
    cfg = InterruptionConfig()
    vad, judge = WebRtcVad(RATE), InterruptionJudge(RATE, cfg)
    noise = b"".join(burst(200, s, amplitude=6000) for s in range(20))  # 4 s of rough noise
    stream = frames(silence(200) + noise + silence(400) + voiced(1000))
    verdicts, pauses = [], 0
    for i, f in enumerate(stream):
        speech = vad.is_speech(f)
        if judge.pending:
            j = judge.feed(speech, f, i * 0.02)
            if j is not None:
                verdicts.append(j.verdict)
        elif judge.onset(speech, f, i * 0.02):
            pauses += 1
    # the noise paused at most once (and resumed); the voice after it was still heard as an interruption
    assert verdicts[-1] is Verdict.REAL
    assert all(v is Verdict.FALSE for v in verdicts[:-1]) and pauses <= 2 + verdicts.count(Verdict.FALSE)


def test_quiet_frames_never_pause() -> None:
    judge = InterruptionJudge(RATE)
    quiet = (np.frombuffer(voiced(20), dtype="<i2") // 80).astype("<i2").tobytes()  # ~-56 dBFS
    assert not judge.onset(True, quiet, 0.0)
    assert judge.onset(True, voiced(20), 0.02)
    assert not judge.onset(True, voiced(20), 0.04)  # one judgement at a time


def test_periodicity_tells_voice_from_noise() -> None:
    v = np.frombuffer(voiced(40), dtype="<i2")
    n = np.frombuffer(burst(40, 1), dtype="<i2")
    assert periodicity(v, RATE) > 0.8
    assert periodicity(n, RATE) < 0.5
    assert periodicity(np.zeros(320, dtype="<i2"), RATE) == 0.0


def test_content_words_fold_case_width_and_two_word_backchannels() -> None:
    assert content_words("Uh-huh, OKAY. yeah") == []
    assert content_words("got it, thank you") == []
    assert content_words("네 네") == [] and content_words("응") == []
    assert content_words("ｗａｉｔ") == ["wait"]  # full-width folded
    assert content_words("okay but what about sunday") == ["but", "what", "about", "sunday"]
    assert content_words("") == []


# --- words: what the offline recognizer invents must not interrupt; a real "wait" still does (issue 10) ---


def test_invented_function_words_on_a_backchannel_or_a_cough_are_not_an_interruption() -> None:
    """Seen on a real FreeSWITCH call: the offline recognizer's partials "are" and "the" under "yeah"/"okay"
    made four false barge-ins."""
    for text in ("are", "the", "is it", "a", "and the", "you"):
        j, _ = judge_sound(voiced(350), words={6: text})  # a backchannel-length voiced sound
        assert j is not None and j.verdict is Verdict.FALSE, (text, j)
        for seed in range(3):
            j, _ = judge_sound(burst(300, seed), words={3: text})
            assert j is None or j.verdict is Verdict.FALSE, (text, seed, j)


def test_backchannels_heard_as_words_resume() -> None:
    for text in ("yeah", "okay", "uh huh", "mm hmm", "right", "네", "got it"):
        j, _ = judge_sound(voiced(400), words={8: text})
        assert j is not None and j.verdict is Verdict.FALSE and j.reason == "backchannel", (text, j)


def test_cut_in_words_clear_as_soon_as_they_are_heard() -> None:
    """ "wait", "stop", "sorry", "잠깐만": the words callers take the floor with clear on the partial, with 100 ms of
    voice; the caller heard the agent stop at the onset already (the pause), so the verdict only must not resume
    the agent over them."""
    for text in ("wait", "Stop!", "sorry", "hold on", "excuse me", "no no", "잠깐만요"):
        j, _ = judge_sound(voiced(300), words={8: text})
        assert j is not None and j.verdict is Verdict.REAL and j.reason == "words", (text, j)
        assert j.decided_at - j.onset_at <= 0.2, (text, j)  # at the partial: no wait for more voice
    # but not on a cough: no voice behind the word
    for seed in range(3):
        j, _ = judge_sound(burst(250, seed), words={3: "stop"})
        assert j is None or j.verdict is Verdict.FALSE, (seed, j)


def test_one_other_content_word_needs_more_voice_two_do_not() -> None:
    cfg = InterruptionConfig()
    # an invented "bread" on a short voiced sound (shorter than word_alone_voiced_ms of voice): resumed
    j, _ = judge_sound(voiced(200), words={4: "bread"})
    assert j is not None and j.verdict is Verdict.FALSE and j.reason == "few words", j
    # "Sunday?" said for real: once it has word_alone_voiced_ms of voice it is an interruption, before 600 ms
    j, _ = judge_sound(voiced(500), words={6: "sunday"})
    assert j is not None and j.verdict is Verdict.REAL and j.reason == "words", j
    # (the onset frame itself is the first 20 ms of voice)
    assert (cfg.word_alone_voiced_ms - 20) / 1000 <= round(j.decided_at - j.onset_at, 3) < cfg.confirm_voiced_ms / 1000
    assert j.voiced_ms >= cfg.word_alone_voiced_ms
    # two content words: at once (the voice floor only)
    j, _ = judge_sound(voiced(400), words={6: "what about"})
    assert j is not None and j.verdict is Verdict.REAL and j.decided_at - j.onset_at <= 0.15, j


def test_cumulative_partials_are_not_summed() -> None:
    """Interim hypotheses repeat the utterance so far: "bread", "bread", "bread" is one word, not three."""
    judge = InterruptionJudge(RATE)

    def partials(_i: int, at: float) -> None:
        for _ in range(3):
            assert judge.words("bread", at) is None

    verdict = drive(judge, silence(300) + voiced(220) + silence(1500), partials)
    assert verdict is not None and verdict.verdict is Verdict.FALSE, verdict


def test_the_second_look_at_a_final_transcript_uses_the_same_rule() -> None:
    judge = InterruptionJudge(RATE)

    def judged(voiced_ms: int) -> Judgement:
        return Judgement(Verdict.FALSE, 0.0, 0.5, voiced_ms, voiced_ms, "no words")

    assert not judge.says_something("are", judged(350))
    assert not judge.says_something("the", judged(350))
    assert not judge.says_something("yeah okay", judged(350))
    assert judge.says_something("wait", judged(150))
    assert not judge.says_something("wait", judged(50))  # a cough: no voice behind it
    # after a FALSE verdict one word alone is not enough, unless it is a cut-in word: a hummed "mm-hmm" comes
    # back as one invented word ("Amanda.")
    assert not judge.says_something("sunday", judged(350))
    assert not judge.says_something("Amanda.", judged(480))
    assert judge.says_something("what about sunday", judged(150))
    # spelled letters are no words: what Whisper writes for a hum
    assert not judge.says_something("M. A. M. D.", judged(480))
    assert not judge.says_something("M&M.", judged(480))
    assert not judge.says_something("M-E-M-T-M-T-M-T", judged(480))


def test_one_word_still_counts_while_the_judgement_is_open() -> None:
    judge = InterruptionJudge(RATE)
    drive(judge, voiced(400), lambda i, at: None)  # 400 ms of voice, not yet ended: still pending
    assert judge.pending
    assert judge.says_something("sunday")


def test_a_late_interim_of_the_sentence_before_the_onset_does_not_count() -> None:
    """A recognizer behind the audio (seen on a real FreeSWITCH call with the decoder holding the GIL) sends,
    after the onset of a "yeah", an interim of the caller's previous question: its words are not the new sound's."""
    judge = InterruptionJudge(RATE)
    judge.transcript("where are you located", is_final=False)  # the question: its final not in yet

    def late_interim(i: int, at: float) -> None:
        if i == 30:  # 300 ms into the sound: the old utterance's interim again, then a backchannel on it
            for text in ("where are you located", "where are you located yeah"):
                assert judge.words(text, at) is None, text
                judge.transcript(text, is_final=False)

    verdict = drive(judge, silence(300) + voiced(350) + silence(1500), late_interim)
    assert verdict is not None and verdict.verdict is Verdict.FALSE, verdict
    # without that baseline the same interim is two content words: a real interruption
    judge = InterruptionJudge(RATE)
    assert judge.onset(True, voiced(20), 0.0)
    for k in range(1, 8):
        judge.feed(True, voiced(20), k * 0.02)
    j = judge.words("where are you located", 0.16)
    assert j is not None and j.verdict is Verdict.REAL


def test_words_after_the_baseline_still_interrupt() -> None:
    judge = InterruptionJudge(RATE)
    judge.transcript("what time", is_final=False)
    assert judge.onset(True, voiced(20), 0.0)
    for k in range(1, 8):
        judge.feed(True, voiced(20), k * 0.02)
    assert judge.words("what time", 0.16) is None  # nothing new yet
    j = judge.words("what time wait", 0.18)
    assert j is not None and j.verdict is Verdict.REAL and j.reason == "words"
    # a final ends the recognizer's utterance: the next onset has no baseline
    judge.transcript("what time wait", is_final=True)
    assert judge.onset(True, voiced(20), 1.0)
    for k in range(1, 8):
        judge.feed(True, voiced(20), 1.0 + k * 0.02)
    j = judge.words("what about", 1.16)
    assert j is not None and j.verdict is Verdict.REAL
