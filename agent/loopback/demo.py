"""`storeagent demo` (`make demo`): call the example shop end to end, offline, through real sockets.

The agent runs as it does in production (ESL server + audio websocket, offline providers: Whisper base — or
pocketsphinx without the offline-whisper extra — the shop answerer, piper). The loopback plays FreeSWITCH on both
wires; the caller's questions are synthesized with espeak-ng (a different voice from the agent's), so every word
goes through real speech recognition. One long answer is interrupted. The demo prints the transcript with per-turn
latencies and the barge-in stop time, writes a stereo WAV (caller left, agent right), checks the answers state the
facts from the manifest, and exits non-zero when anything fails.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sys
import tempfile
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from storeagent.agent.__main__ import warm_up
from storeagent.agent.app import AgentApp
from storeagent.agent.loopback.caller import LoopbackCall
from storeagent.agent.loopback.demo_ko import CALLER_VOICE, CALLER_WPM, korean_script
from storeagent.agent.metrics import AgentMetrics
from storeagent.agent.pipeline.conversation import ConversationOutcome, TurnLatency
from storeagent.agent.ports import AudioFormat, CallControl
from storeagent.agent.providers.offline_tts import EspeakTTS
from storeagent.agent.settings import AgentSettings
from storeagent.agent.wiring import build_outbox, build_providers
from storeagent.shop import ShopConfig, shop_config_from_manifest

# Wideband (G.722-class) calls: pocketsphinx's model is 16 kHz, and at 8 kHz it misheard most of espeak's
# robotic caller voice in our trials; `--rate 8000` runs the narrowband path.
DEFAULT_RATE = 16000


@dataclass(frozen=True)
class Question:
    text: str  # what the caller says
    expect: tuple[str, ...]  # regexes the agent's answer must match (facts from the manifest)
    interrupt_after: float | None = None  # seconds of agent speech before the next question barges in


def _hour(t: object) -> str:
    h = int(getattr(t, "hour", 0))
    return str(h % 12 or 12)


def script_for(shop: ShopConfig) -> list[Question]:
    """Questions with the facts the answers must carry, derived from the manifest (not from the agent's code)."""
    if shop.language.lower().startswith("ko"):
        return [Question(text, expect, cut) for text, expect, cut in korean_script(shop)]
    p = shop.profile
    sat = p.hours.saturday
    hours = (rf"\b{_hour(sat[0].open)}\b", rf"\b{_hour(sat[-1].close)}\b") if sat else (r"closed",)
    item = next(m for m in p.menu if m.available)
    street = p.address.split(",")[0]
    # Worded unlike any sentence of `knowledge.caller_phrases` (the offline STT's shop vocabulary), so passing
    # shows the agent understood everyday speech, not that it matched a phrase it was given
    # (tests/unit/test_bench_quality.py keeps it so).
    return [
        Question("Hi, how early can I come in on Saturday?", hours),
        Question(f"I'd like some {item.name}s. What do they cost?", (re.escape(f"{item.price}"),)),
        Question("So what kinds of things do you sell?", (), interrupt_after=2.5),
        Question("And where can I find your shop?", (re.escape(street),)),
        Question("Great, thanks a lot, bye.", ()),
    ]


async def synthesize(tts: EspeakTTS, text: str, rate: int, language: str = "en-US") -> bytes:
    session = await tts.open(AudioFormat(rate), language)
    pcm = bytearray()
    async for chunk in session.synthesize(text):
        pcm += chunk
    return bytes(pcm)


async def run_demo(manifest: Path, wav: Path, rate: int, providers_mode: str) -> int:
    shop = shop_config_from_manifest(yaml.safe_load(manifest.read_text(encoding="utf-8")))  # noqa: ASYNC240
    data = Path(tempfile.mkdtemp(prefix="storeagent-demo-"))
    settings = AgentSettings(host="127.0.0.1", esl_port=0, http_port=0, advertise_host="127.0.0.1", data_dir=data)
    print(f"Calling {shop.profile.name} ({manifest}) through the loopback at {rate} Hz, "
          f"{providers_mode} providers...", flush=True)
    metrics = AgentMetrics(shop.store)
    providers = build_providers(shop, providers_mode, metrics)
    await warm_up(providers, shop.language)  # as `storeagent agent serve` does: engines loaded before the call
    outbox = await build_outbox(settings, shop)
    outcomes: dict[str, ConversationOutcome] = {}
    done = asyncio.Event()

    async def finished(uuid: str, call: CallControl, outcome: ConversationOutcome, duration: float) -> None:
        await outbox.on_call_finished(uuid, call, outcome, duration)
        outcomes[uuid] = outcome
        done.set()

    app = AgentApp(settings, shop, providers, outbox.tools_factory(), on_finished=finished, metrics=metrics)
    await app.start()
    korean = shop.language.lower().startswith("ko")  # the caller in another voice than the agent's espeak ko
    caller_voice = EspeakTTS(words_per_minute=CALLER_WPM, voice=CALLER_VOICE) if korean else EspeakTTS(
        words_per_minute=150)
    script = script_for(shop)
    call = LoopbackCall("127.0.0.1", app.esl_port, store=shop.store, caller_number="+15555550123", rate=rate)
    problems: list[str] = []
    barge_ms: float | None = None
    try:
        audio = [await synthesize(caller_voice, q.text, rate, shop.language) for q in script]
        await call.start(timeout=30)
        if not await call.wait_agent_done(quiet=0.8, timeout=30):
            problems.append("no greeting")
        i = 0
        while i < len(script):
            q = script[i]
            if done.is_set():  # the agent hung up early (a question heard as goodbye): nothing left to ask
                problems.append(f"the agent ended the call before {q.text!r}")
                break
            await _unless(done, call.say(audio[i]))
            if q.interrupt_after is not None and i + 1 < len(script):
                if not await call.wait_agent_speaking(timeout=20):
                    problems.append(f"no answer to {q.text!r}")
                await asyncio.sleep(q.interrupt_after)
                index = call.say_nowait(audio[i + 1])
                rec = call.audio.record if call.audio else None
                clears = len(rec.clears) if rec else 0
                # the pause comes at the onset; the clear once the caller's words come (voice alone waits for
                # them), so within the question's length plus its end of turn and decode
                ticks = int((len(audio[i + 1]) / (2 * rate) + 3.0) / 0.02)
                for _ in range(ticks):
                    if rec is None or len(rec.clears) > clears:
                        break
                    await asyncio.sleep(0.02)
                stop = rec.barge_in_stop(index) if rec and len(rec.clears) > clears else None
                if stop is not None:
                    barge_ms = stop * 1000
                else:
                    problems.append("the agent did not stop speaking when interrupted")
                i += 1
                await _unless(done, call.audio.wait_uplink_idle()) if call.audio else None
            if i == len(script) - 1:
                break
            if not await call.wait_agent_done(quiet=0.8, timeout=30):
                problems.append(f"no answer to {script[i].text!r}")
            i += 1
        try:
            await asyncio.wait_for(done.wait(), 15)  # "goodbye": the agent ends the call itself
        except TimeoutError:
            problems.append("the agent did not end the call after goodbye")
            await call.hangup()
            await asyncio.wait_for(done.wait(), 10)
    finally:
        await call.close()
        await app.stop()
        await outbox.aclose()
    if call.audio is not None:
        call.audio.record.write_wav(wav)
    out = next(iter(outcomes.values()), None)
    if out is None:
        print("FAILED: the call never reached the agent", file=sys.stderr)
        return 1
    problems += check_answers(script, out)
    report(out, barge_ms, wav)
    if problems:
        print("\nFAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print("\nDemo passed: every answer stated the shop's facts; barge-in stopped the agent.")
    return 0


async def _unless(done: asyncio.Event, aw: Coroutine[Any, Any, object]) -> None:
    """Await `aw` unless the call ends first: the uplink of a call the agent hung up never drains."""
    task, ended = asyncio.ensure_future(aw), asyncio.ensure_future(done.wait())
    await asyncio.wait({task, ended}, return_when=asyncio.FIRST_COMPLETED)
    for t in (task, ended):
        t.cancel()


def check_answers(script: list[Question], out: ConversationOutcome) -> list[str]:
    """Each question's answer is what the agent said between the caller line the question became and the next
    caller line: on a slow machine the dead-air watchdog's short filler ("One moment.") comes first, and it states
    no fact, so the facts must be in the lines that follow it."""
    problems: list[str] = []
    lines = out.transcript
    callers = [k for k, line in enumerate(lines) if line.role == "caller"]
    if len(callers) < len(script):
        problems.append(f"the agent heard {len(callers)} of {len(script)} questions")
    ends = [*callers[1:], len(lines)]
    for q, k, end in zip(script, callers, ends, strict=False):
        answer = " ".join(line.text for line in lines[k + 1 : end] if line.role == "agent" and line.text)
        for pattern in q.expect:
            if not re.search(pattern, answer, re.IGNORECASE):
                problems.append(f"answer to {q.text!r} lacks /{pattern}/: {answer!r}")
    return problems


def _ms(x: float | None) -> str:
    return "   -  " if x is None else f"{x * 1000:5.0f}"


def report(out: ConversationOutcome, barge_ms: float | None, wav: Path) -> None:
    print("\nTranscript (caller lines are what speech recognition heard)")
    lat: list[TurnLatency] = list(out.latencies)
    for line in out.transcript:
        if line.role == "caller":
            print(f"  caller: {line.text}")
            continue
        heard = line.heard if line.heard is not None else line.text
        cut = "" if heard == line.text else f"   [interrupted; heard: {heard!r}]"
        print(f"  agent : {line.text}{cut}")
    print("\nPer-turn latency (ms): STT final | LLM first token | TTS first audio | voice-to-voice")
    for n, t in enumerate(lat, 1):
        print(f"  turn {n}: {_ms(t.stt_final)} | {_ms(t.llm_first_token)} | {_ms(t.tts_first_audio)} | "
              f"{_ms(t.voice_to_voice)}")
    print("  (voice-to-voice runs from the caller's last voiced frame, so it includes the 500 ms end-of-turn wait)")
    if barge_ms is not None:
        print(f"\nBarge-in: caller speech onset -> agent's playout stopped (pause, then clear): {barge_ms:.0f} ms")
    print(f"Outcome: {out.outcome} ({out.reason}); {out.barge_ins} barge-in(s)")
    print(f"Stereo recording (caller left, agent right): {wav}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="storeagent demo", description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--manifest", type=Path, default=Path("examples/sunrise-bakery.yaml"))
    p.add_argument("--out", type=Path, default=Path("out/demo-call.wav"))
    p.add_argument("--rate", type=int, choices=[8000, 16000], default=DEFAULT_RATE, help="call audio rate (Hz)")
    p.add_argument("--providers", choices=["offline", "config"], default="offline",
                   help="offline (default, no keys) or config: the manifest's providers (cloud keys from env)")
    p.add_argument("-v", "--verbose", action="store_true", help="agent logs on stderr")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    return asyncio.run(run_demo(args.manifest, args.out, args.rate, args.providers))
