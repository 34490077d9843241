"""Part 2 of `make bench-quality`: whole loopback calls at 8 kHz, measured on the caller's side of the wire.

Per English shop one call (agent as in production: ESL + audio websocket, offline providers): held-out
questions, each answered; while some answers play the caller coughs or says a backchannel ("uh-huh", "okay",
"yeah") — a clear or a new reply there is a false barge-in; one answer is interrupted by a real question
(barge-in stop: caller onset -> agent audio stops being played); the caller leaves a message reading the phone
number in groups with pauses — agent speech starting before the caller's last word is a talk-over.
End-of-turn wait = voice_to_voice - decision_to_audio from the agent's call record (its own clock, a
diagnostic); response latency = caller's last voiced frame -> first played agent frame (the loopback's clock).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import audio
import dataset
import numpy as np

from storeagent.agent.app import AgentApp
from storeagent.agent.loopback.caller import LoopbackCall
from storeagent.agent.metrics import AgentMetrics
from storeagent.agent.pipeline.conversation import ConversationOutcome
from storeagent.agent.ports import CallControl
from storeagent.agent.settings import AgentSettings
from storeagent.agent.wiring import build_outbox, build_providers
from storeagent.shop import ShopConfig

RATE = 8000
FRAME = RATE * 2 // 50
BACKCHANNELS = ["uh-huh", "okay", "yeah", "mm-hmm"]


@dataclass
class CallStats:
    response: list[float] = field(default_factory=list)  # s, last caller voice -> first agent audio played
    end_of_turn: list[float] = field(default_factory=list)  # s, agent's own record
    probes: int = 0  # coughs/backchannels played under agent speech
    false_barge_ins: int = 0  # probes after which the agent cleared its speech
    spurious_replies: int = 0  # probes the agent answered as if they were a turn
    barge_in_stop: list[float] = field(default_factory=list)
    talk_over: int = 0
    talk_over_chances: int = 0
    answered: int = 0
    questions: int = 0


def cough(seed: int) -> bytes:
    """A 180 ms burst of shaped noise with a sharp attack: what a cough sounds like to a VAD."""
    rng = np.random.default_rng(seed)
    n = RATE * 180 // 1000
    env = np.exp(-np.linspace(0, 5, n)) * np.minimum(1, np.linspace(0, 8, n))
    x = np.convolve(rng.standard_normal(n), np.ones(4) / 4, mode="same") * env * 9000
    return np.clip(x, -32768, 32767).astype("<i2").tobytes()


def _voiced(frame: bytes) -> bool:
    x = np.frombuffer(frame, dtype="<i2").astype(np.float64)
    return bool(len(x)) and float(np.sqrt(np.mean(x**2))) > 300


def _ticks(pcm: bytes) -> tuple[int, int]:
    """(first voiced, last voiced) 20 ms frame index within pcm."""
    frames = [pcm[i : i + FRAME] for i in range(0, len(pcm), FRAME)]
    voiced = [k for k, f in enumerate(frames) if _voiced(f)]
    return (voiced[0], voiced[-1]) if voiced else (0, len(frames) - 1)


def _first_agent_after(call: LoopbackCall, t: float) -> float | None:
    rec = call.audio.record if call.audio else None
    if rec is None:
        return None
    for at, active in zip(rec.playout_times, rec.agent_active, strict=False):
        if active and at > t:
            return at
    return None


def _phone(text: str, n: int, language: str = "en-US") -> bytes:
    v = audio.voice_for(n, language)
    return audio.phone(audio.clean(v, text), lead_ms=0, tail_ms=0)


async def one_call(shop: ShopConfig, questions: list[dataset.Utterance], stats: CallStats, seed: int) -> None:
    data = Path(tempfile.mkdtemp(prefix="storeagent-bench-quality-"))
    settings = AgentSettings(host="127.0.0.1", esl_port=0, http_port=0, advertise_host="127.0.0.1", data_dir=data)
    metrics = AgentMetrics(shop.store)
    providers = build_providers(shop, "offline", metrics)
    outbox = await build_outbox(settings, shop)
    outcomes: list[ConversationOutcome] = []
    done = asyncio.Event()

    async def finished(uuid: str, call: CallControl, outcome: ConversationOutcome, duration: float) -> None:
        await outbox.on_call_finished(uuid, call, outcome, duration)
        outcomes.append(outcome)
        done.set()

    app = AgentApp(settings, shop, providers, outbox.tools_factory(), on_finished=finished, metrics=metrics)
    await app.start()
    call = LoopbackCall("127.0.0.1", app.esl_port, store=shop.store, rate=RATE)
    windows: list[tuple[float, float]] = []  # when probes were played: a caller turn ending there is spurious
    try:
        await call.start(timeout=30)
        await call.wait_agent_done(quiet=0.8, timeout=30)
        for n, q in enumerate(questions):
            pcm = _phone(q.text, seed + n)
            _, last = _ticks(pcm)
            start = await call.say(pcm)
            end_voice = start + last * 0.02
            stats.questions += 1
            if n % 2 == 1:  # probe: a cough or a backchannel 0.6 s into the answer
                if await call.wait_agent_speaking(timeout=15):
                    stats.answered += 1
                    await asyncio.sleep(0.6)
                    # coughs at n = 1, 5; backchannels at n = 3, 7, each call two others: all four over the calls
                    # (indexing by n alone played only "mm-hmm")
                    bc = BACKCHANNELS[(n // 4 + seed // 100) % len(BACKCHANNELS)]
                    probe = cough(seed + n) if n % 4 == 1 else _phone(bc, n)
                    rec = call.audio.record if call.audio else None
                    clears_before = len(rec.clears) if rec else 0
                    at = await call.say(probe)
                    # its turn's line is stamped when it is answered: sound + end-of-turn wait + decode, < 2 s;
                    # the next question comes after the answer's end, later than that
                    windows.append((at, at + 2.0))
                    stats.probes += 1
                    await asyncio.sleep(1.2)
                    if rec and len(rec.clears) > clears_before:
                        stats.false_barge_ins += 1
            got = _first_agent_after(call, end_voice) if n % 2 == 1 else None
            if n % 2 == 0:
                ok = await call.wait_agent_speaking(timeout=15)
                stats.answered += ok
                got = _first_agent_after(call, end_voice)
            if got is not None:
                stats.response.append(got - end_voice)
            await call.wait_agent_done(quiet=0.6, timeout=30)
        # a real interruption of a long answer
        await call.say(_phone("what do you sell", seed))
        if await call.wait_agent_speaking(timeout=15):
            await asyncio.sleep(1.5)
            index = call.say_nowait(_phone("sorry, where are you located", seed + 1))
            await asyncio.sleep(2.0)
            stop = call.audio.record.barge_in_stop(index) if call.audio else None
            if stop is not None:
                stats.barge_in_stop.append(stop)
            await call.wait_agent_done(quiet=0.6, timeout=30)
        # a message with the number read in groups, pauses between them
        await call.say(_phone("I'd like to leave a message", seed))
        await call.wait_agent_done(quiet=0.6, timeout=30)
        parts = ["my name is dana", "my number is five five five", "two one eight", "nine nine four zero"]
        pcm = b"".join(_phone(t, seed + 2) + b"\0\0" * (RATE * 6 // 10) for t in parts)
        _, last = _ticks(pcm)
        start = await call.say(pcm)
        stats.talk_over_chances += 1
        onset = _first_agent_after(call, start)
        if onset is not None and onset < start + last * 0.02:
            stats.talk_over += 1
        await call.wait_agent_done(quiet=0.6, timeout=30)
        await call.say(_phone("okay that's all, bye", seed))
        try:
            await asyncio.wait_for(done.wait(), 15)
        except TimeoutError:
            await call.hangup()
            await asyncio.wait_for(done.wait(), 10)
    finally:
        await call.close()
        await app.stop()
        await outbox.aclose()
    for out in outcomes:
        stats.spurious_replies += sum(1 for line in out.transcript if line.role == "caller"
                                      and any(a <= line.at <= b for a, b in windows))
        for t in out.latencies:
            if t.voice_to_voice is not None and t.decision_to_audio is not None:
                stats.end_of_turn.append(t.voice_to_voice - t.decision_to_audio)


FIXED = ["what do you sell", "sorry, where are you located", "I'd like to leave a message", "my name is dana",
         "my number is five five five", "two one eight", "nine nine four zero", "okay that's all, bye",
         *BACKCHANNELS]


def run_calls(limit: int = 0) -> dict[str, Any]:
    stats = CallStats()
    per_shop = 4 if limit else 8
    plan = []
    for s, path in enumerate(dataset.SHOPS[:1] if limit else dataset.SHOPS):
        shop = dataset.load_shop(path)
        qs = [u for u in dataset.english("heldout") if u.shop == shop.store
              and u.intent not in ("goodbye", "transfer", "message")][::3][:per_shop]
        plan.append((shop, qs, 100 * s))
    # synthesize (or load from the cache) everything the callers say before any call starts
    for _, qs, seed in plan:
        for n, q in enumerate(qs):
            _phone(q.text, seed + n)
        for _k, text in enumerate(FIXED):
            for off in (0, 1, 2, *range(len(qs))):
                if text in BACKCHANNELS:
                    _phone(text, off)
                else:
                    _phone(text, seed + off) if off < 3 else None

    async def go() -> None:
        for shop, qs, seed in plan:
            await one_call(shop, qs, stats, seed=seed)

    asyncio.run(go())
    return summarize(stats)


def _p(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q * (len(xs) - 1) + 0.5))] * 1000, 1)


def summarize(s: CallStats) -> dict[str, Any]:
    return {
        "questions": s.questions, "answered": s.answered,
        "response_latency_p50_ms": _p(s.response, 0.5), "response_latency_p95_ms": _p(s.response, 0.95),
        "end_of_turn_p50_ms": _p(s.end_of_turn, 0.5), "end_of_turn_p95_ms": _p(s.end_of_turn, 0.95),
        "probes": s.probes, "false_barge_in_rate": round(s.false_barge_ins / s.probes, 3) if s.probes else None,
        "spurious_reply_rate": round(s.spurious_replies / s.probes, 3) if s.probes else None,
        "barge_in_stop_p50_ms": _p(s.barge_in_stop, 0.5),
        "talk_over": s.talk_over, "talk_over_chances": s.talk_over_chances,
        "response_latency_mean_ms": round(statistics.mean(s.response) * 1000, 1) if s.response else None,
    }


def print_calls(c: dict[str, Any]) -> None:
    print("\nCalls (8 kHz loopback, caller's side of the wire)")
    for k, v in c.items():
        print(f"  {k:<28} {v}")
