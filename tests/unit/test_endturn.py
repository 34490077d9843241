"""Semantic end of turn (agent/pipeline/endturn.py): the detector's pause probe, the judge's verdicts and
fallbacks, and what a conversation does with them — one turn across a pause the model calls unfinished, two
turns where it calls the first part complete, the plain timer without a model, the digits rule."""

from __future__ import annotations

import asyncio

from storeagent.agent.metrics import AgentMetrics
from storeagent.agent.pipeline.conversation import Conversation, ConversationConfig, ConversationOutcome
from storeagent.agent.pipeline.endturn import CallerAudio, EndTurn, EndTurnConfig, asks_for_digits
from storeagent.agent.pipeline.prompts import phrases_for
from storeagent.agent.pipeline.turn import TurnDetector, TurnEnd, TurnPause, TurnState
from storeagent.agent.pipeline.vad import WebRtcVad
from storeagent.agent.ports import AudioFormat, TransferResult
from storeagent.agent.providers.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS
from storeagent.agent.store.tools import ShopTools
from support.agent_harness import bakery
from support.audio import silence, voiced
from support.memlink import MemoryLink
from support.turnfeed import feed

PHRASES = phrases_for("en-US", "Sunrise Bakery")


# ------------------------------------------------------------------ the detector
def test_a_pause_is_probed_once_and_a_complete_verdict_ends_the_turn_at_once() -> None:
    det = TurnDetector(60, 500, probe_ms=200, unfinished_ms=1000)
    evs = feed(det, "SSSSS" + "." * 12)
    kinds = [type(e).__name__ for _, e in evs]
    assert kinds == ["SpeechStart", "TurnPause"]  # once, after 10 silent frames; no timer end at 25 frames
    i, pause = evs[1]
    assert isinstance(pause, TurnPause) and i == 14 and abs(pause.last_speech_at - 0.08) < 1e-9
    end = det.decide(pause.pause, True, 0.5)
    assert isinstance(end, TurnEnd) and end.detected_at == 0.5 and end.speech_ms == 100
    assert det.state is TurnState.SILENCE


def test_an_unfinished_verdict_holds_the_turn_until_the_long_timer() -> None:
    det = TurnDetector(60, 500, probe_ms=200, unfinished_ms=1000)
    evs = feed(det, "SSSSS" + "." * 10)
    pause = evs[-1][1]
    assert isinstance(pause, TurnPause)
    assert det.decide(pause.pause, False, 0.3) is None
    later = feed(det, "." * 40, t0=0.3)
    ends = [(i, e) for i, e in later if isinstance(e, TurnEnd)]
    assert len(ends) == 1 and ends[0][0] == 39 and not [e for _, e in later if isinstance(e, TurnPause)]
    # 10 silent frames before the verdict + 40 after: the end came at the 50th (1000 ms), not the 25th (500 ms)


def test_speech_after_an_unfinished_pause_continues_the_same_turn_and_a_stale_verdict_is_ignored() -> None:
    det = TurnDetector(60, 500, probe_ms=200, unfinished_ms=1000)
    evs = feed(det, "SSSSS" + "." * 10 + "." * 20 + "SSSS" + "." * 10)
    pauses = [e for _, e in evs if isinstance(e, TurnPause)]
    assert [type(e).__name__ for _, e in evs] == ["SpeechStart", "TurnPause", "TurnPause"]
    assert det.decide(pauses[0].pause, True, 1.0) is None  # the caller spoke again after that pause
    end = det.decide(pauses[1].pause, True, 1.0)
    assert isinstance(end, TurnEnd) and end.speech_ms == 9 * 20  # both parts: one turn


def test_no_verdict_falls_back_to_the_silence_timer() -> None:
    det = TurnDetector(60, 500, probe_ms=200, unfinished_ms=2000)
    pause = feed(det, "SSSSS" + "." * 10)[-1][1]
    assert isinstance(pause, TurnPause)
    assert feed(det, "." * 10, t0=0.3) == []  # 400 ms of silence: under the timer
    end = det.decide(pause.pause, None, 0.5)
    assert end is None
    ends = feed(det, "." * 5, t0=0.5)
    assert [i for i, e in ends if isinstance(e, TurnEnd)] == [4]  # the 25th silent frame: 500 ms


def test_a_late_no_verdict_past_the_timer_ends_the_turn_at_once() -> None:
    det = TurnDetector(60, 500, probe_ms=200, unfinished_ms=2000)
    pause = feed(det, "SSSSS" + "." * 30)[0 - 1][1]
    assert isinstance(pause, TurnPause)
    assert isinstance(det.decide(pause.pause, None, 0.8), TurnEnd)  # 30 silent frames > the 25 of the timer


def test_set_timer_lengthens_the_plain_timer_from_the_next_pause() -> None:
    det = TurnDetector(60, 500)
    det.set_timer(1000)
    evs = feed(det, "SSSSS" + "." * 60)
    assert [i for i, e in evs if isinstance(e, TurnEnd)] == [54]  # 50 silent frames
    assert not [e for _, e in evs if isinstance(e, TurnPause)]  # no model: never probed


# ------------------------------------------------------------------ the judge
class FakeModel:
    name = "fake"

    def __init__(self, p: float | Exception, delay: float = 0.0) -> None:
        self.p, self.delay = p, delay
        self.heard: list[bytes] = []

    async def complete_probability(self, pcm: bytes, sample_rate: int) -> float:
        self.heard.append(pcm)
        await asyncio.sleep(self.delay)
        if isinstance(self.p, Exception):
            raise self.p
        return self.p


def _pause(onset: float, at: float) -> TurnPause:
    return TurnPause(pause=1, onset_at=onset, last_speech_at=at - 0.2, at=at)


async def test_the_judge_hears_the_turn_from_before_its_onset_up_to_the_pause() -> None:
    cfg = EndTurnConfig(pre_speech_ms=100)
    model = FakeModel(0.9)
    judge = EndTurn(model, 8000, cfg)
    for i in range(100):  # 2 s of frames, each marked with its index
        judge.audio.add(i * 0.02, bytes([i]) * 320)
    assert await judge.complete(_pause(onset=1.0, at=1.5)) is True
    heard = model.heard[0]
    assert heard[0] == 45 and heard[-1] == 75 and len(heard) == 31 * 320  # 0.9 s .. 1.5 s inclusive


async def test_the_judge_threshold_and_its_fallbacks() -> None:
    cfg = EndTurnConfig(threshold=0.5, unfinished_below=0.2, timeout_s=0.2)

    async def verdict(model: FakeModel) -> bool | None:
        judge = EndTurn(model, 8000, cfg)
        judge.audio.add(0.1, b"\1\0" * 160)
        return await judge.complete(_pause(onset=0.1, at=0.3))

    assert await verdict(FakeModel(0.5)) is True
    assert await verdict(FakeModel(0.49)) is None  # unsure: the plain timer
    assert await verdict(FakeModel(0.19)) is False  # surely unfinished: the long timer
    assert await verdict(FakeModel(RuntimeError("onnx"))) is None  # the timer decides
    assert await verdict(FakeModel(0.9, delay=1.0)) is None  # too slow: the timer decides
    assert await EndTurn(FakeModel(0.9), 8000, cfg).complete(_pause(onset=0.1, at=0.3)) is None  # no audio


def test_the_audio_window_keeps_eight_seconds_and_the_pre_speech() -> None:
    w = CallerAudio(EndTurnConfig(pre_speech_ms=500, max_audio_ms=8000))
    for i in range(1000):
        w.add(i * 0.02, b"\0\0" * 160)
    assert len(w.turn(_pause(onset=0.0, at=20.0))) == 425 * 320  # 8.5 s of 20 ms frames at most


def test_a_request_for_a_phone_number_is_recognized() -> None:
    assert asks_for_digits("Sure, I can take a message for the owner. Please tell me your name, your phone number, "
                           "and your message.")
    assert asks_for_digits("What's the best number to reach you?")
    assert asks_for_digits("성함과 연락처, 메시지를 남겨 주시면 전해 드리겠습니다.")
    assert not asks_for_digits("We open at 8 AM on Saturday.")
    assert not asks_for_digits("Your callback number is 5 5 5 1 2 3. Is that right?")  # a yes/no question


# ------------------------------------------------------------------ in a conversation
async def converse(model: FakeModel | None, caller: list[tuple[int, int]], *, greeting: str = "Hello.",
                   **cfg: object) -> tuple[ConversationOutcome, ScriptedSTT]:
    """The caller speaks `caller` (voiced ms, silence ms after it) once the greeting played; the outcome and the
    recognizer (one final per turn it was asked to finalize)."""
    fmt = AudioFormat(8000)
    link = MemoryLink()
    stt = ScriptedSTT(lambda n: f"part {n}")

    async def hangup() -> None:
        await link.close()

    async def transfer(number: str) -> TransferResult:
        return TransferResult(answered=False, cause="NO_ANSWER")

    conv = Conversation(
        cfg=ConversationConfig(greeting=greeting, phrases=PHRASES, silence_reprompt_s=30, **cfg),  # type: ignore[arg-type]
        link=link, vad=WebRtcVad(8000), stt=await stt.open(fmt, "en-US"), llm=ScriptedLLM("Okay."),
        tts=await ScriptedTTS(seconds_per_char=0.005).open(fmt, "en-US"), tools=ShopTools(bakery()),
        metrics=AgentMetrics("t"), system_prompt="", transfer=transfer, hangup=hangup, turn_model=model,
    )
    task = asyncio.create_task(conv.run())
    async with asyncio.timeout(15):
        while link.first_audio_at is None or link.speaking:  # noqa: ASYNC110  # the greeting has played
            await asyncio.sleep(0.02)
        for speech_ms, pause_ms in caller:
            await link.caller_speaks(voiced(speech_ms) + silence(pause_ms))
        await link.caller_speaks(silence(2500))
    conv.post_hangup("NORMAL_CLEARING")
    return await asyncio.wait_for(task, 15), stt


def caller_lines(out: ConversationOutcome) -> list[str]:
    return [x.text for x in out.transcript if x.role == "caller"]


async def test_a_pause_the_model_calls_unfinished_stays_inside_one_turn() -> None:
    out, _ = await converse(FakeModel(0.1), [(600, 800), (600, 0)])
    assert len(caller_lines(out)) == 1  # 800 ms pause: the 500 ms timer would have split it


async def test_without_a_model_the_same_pause_splits_the_turn_on_the_silence_timer() -> None:
    out, _ = await converse(None, [(600, 800), (600, 0)])
    assert len(caller_lines(out)) == 2


async def test_a_complete_verdict_ends_the_turn_before_the_silence_timer() -> None:
    model = FakeModel(0.9)
    out, _ = await converse(model, [(600, 350), (600, 0)])
    # 350 ms pause: under the 500 ms timer, which would keep one turn; the model ended the first part
    assert len(caller_lines(out)) == 2 and len(model.heard) >= 2


async def test_after_the_agent_asks_for_a_number_pauses_between_digit_groups_do_not_end_the_turn() -> None:
    model = FakeModel(0.9)  # would end the turn at every pause
    ask = "Please tell me your name, your phone number, and your message."
    out, _ = await converse(model, [(600, 900), (600, 900), (600, 0)], greeting=ask)
    assert len(caller_lines(out)) == 1 and model.heard == []  # the digits timer, the model not asked
