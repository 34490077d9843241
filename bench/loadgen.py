"""The benchmark's load generator: FreeSWITCH's side of N concurrent calls, one process, one 20 ms clock.

Why this shape: the first bench ran two asyncio clocks per call in the benchmark process and saturated its
own core at 150-300 calls, so what it timed was its own lateness. Here one ticker serves every call: at tick k
(scheduled at T(k) = t0 + k * 20 ms, like FreeSWITCH's shared soft timer) each call sends its uplink frame,
plays one 20 ms frame out of its playout buffer (`PlayoutBuffer`, sa_playout.c's rules: 40 ms prebuffer, marks,
clear) and advances its script. Downlink frames are parsed in the socket callback as they arrive (bench/
wsclient.py); the ESL side is the loopback's `LoopbackEslClient`. Ticks are served in order; a tick served more
than 20 ms after T(k) is counted late (the generator fell behind and its figures are suspect).

Script per call: hear the greeting; ask `--questions` questions (600 ms of a voiced signal), hearing each
answer out; the last answer is interrupted 0.8 s after it began to play (1 s: longer than a backchannel, so the
agent's interruption judge clears it); hear the reply; hang up.

What is measured (time.monotonic(), system-wide, so the orchestrator can line it up with the agent's clock):
- overhead per turn = first agent audio byte *received* after the turn ended - T(decision tick) - the injected
  provider delays. The decision tick is the uplink frame on which the agent's turn detector ends the turn:
  the same detector (`TurnDetector`, `WebRtcVad`, the agent's default settings) runs here on the same frames.
  So the figure holds the uplink websocket, the agent, the downlink websocket and this process's read, and
  also this process's own lateness in sending that frame; `overhead_from_send` starts when it was written.
- barge-in: onset = T(tick of the interruption's first frame).
  clear = `clear` received - onset.
  stop = T(first playout tick from which no more agent audio is played) - onset: the first tick at or after
  the arrival of the first `pause` (the agent pauses at the onset, then clears) or `clear`, when speech was
  still queued then, else the tick after the last agent audio played (the reply was in a pause). A barge-in
  with no clear by the end of the call is `missed`; none is dropped.
- underruns: playout ran dry mid-utterance (`PlayoutBuffer.underruns`).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import resource
import sys
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
from wsclient import WsClient

from storeagent.agent.loopback.esl_client import LoopbackEslClient
from storeagent.agent.loopback.playout import PlayoutBuffer
from storeagent.agent.pipeline.turn import TurnDetector, TurnEnd
from storeagent.agent.pipeline.vad import WebRtcVad
from storeagent.agent.settings import TurnSettings

RATE = 8000
FRAME_S = 0.020
FRAME_BYTES = RATE * 2 // 50
SILENCE = bytes(FRAME_BYTES)
QUIET_TICKS = 30  # 0.6 s without agent audio: the agent is done
BARGE_AFTER_TICKS = 40  # interrupt 0.8 s into the answer
STATE_TIMEOUT_TICKS = 1500  # 30 s in one script step: the call is stuck
TURN = TurnSettings()


def voiced(ms: int) -> bytes:
    """A voiced signal WebRTC's VAD calls speech (140 Hz harmonics, 4 Hz envelope), then 40 ms of silence."""
    t = np.arange(RATE * ms // 1000) / RATE
    sig = sum((1 / k) * np.sin(2 * np.pi * 140 * k * t) for k in range(1, 20))
    sig = sig * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    pcm: bytes = (sig / np.abs(sig).max() * 8000).astype("<i2").tobytes()
    return pcm + bytes(RATE * 2 * 40 // 1000)


def frames(pcm: bytes) -> list[bytes]:
    pcm += bytes(-len(pcm) % FRAME_BYTES)
    return [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES)]


QUESTION = frames(voiced(600))
INTERRUPTION = frames(voiced(1000))


class Step(Enum):
    CONNECTING = "connecting"
    LISTENING = "listening"  # until the agent has spoken and then been quiet
    BARGE_WAIT = "barge_wait"  # the last answer: interrupt it once it has played a while
    AFTER_BARGE = "after_barge"  # until the reply to the interruption has been heard
    HANGING_UP = "hanging_up"
    DONE = "done"


@dataclass
class BargeIn:
    onset_tick: int
    onset_at: float
    clear_at: float | None = None
    stop_at: float | None = None  # the first pause or clear after the onset: playout stopped there
    last_active_before_clear: int | None = None  # before stop_at
    dropped: int = 0  # bytes of agent speech still queued at stop_at


@dataclass
class CallResult:
    overheads: list[tuple[float, float]] = field(default_factory=list)  # from tick, from send; s, with delays
    barge: BargeIn | None = None
    underruns: int = 0
    unanswered: int = 0  # turns (as the agent's detector ends them) that no agent audio followed
    error: str | None = None
    started_at: float = 0.0
    ended_at: float = 0.0


class Call:
    def __init__(self, gen: Generator, host: str, port: int, questions: int, barge: bool) -> None:
        self.gen = gen
        self.esl = LoopbackEslClient(host, port, store="sunrise-bakery", read_rate=RATE, on_api=self._on_api)
        self.ws: WsClient | None = None
        self.playout = PlayoutBuffer(RATE)
        self.up: deque[bytes] = deque()
        self.vad = WebRtcVad(RATE, TURN.vad_aggressiveness)
        self.turns = TurnDetector(TURN.speech_start_ms, TURN.end_of_turn_ms)
        self.questions_left = questions
        self.barge = barge
        self.step = Step.CONNECTING
        self.step_since = 0
        self.heard = False
        self.quiet = 0
        self.playing_since: int | None = None
        self.last_active = -1
        # (T(decision tick), when that frame was written) of a turn whose reply has not arrived yet
        self.turn_ended_at: tuple[float, float] | None = None
        # Spoke and no reply yet: audio now is the rest of what the agent said before (a stalled agent's greeting
        # can resume after the caller thought it over), not the answer to wait for.
        self.awaiting_reply = False
        self.result = CallResult()
        self.ws_closed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ the module's API over ESL
    def _on_api(self, line: str) -> str | None:
        words = line.split()
        if not words or words[0] != "uuid_storeagent":
            return None
        if len(words) >= 3 and words[2] == "start" and len(words) == 6:
            self._spawn(self._connect(words[3], words[5]))
            return "+OK\n"
        if len(words) >= 3 and words[2] == "stop" and self.ws is not None:
            self.ws.close()
            return "+OK\n"
        if len(words) == 3 and words[2] in ("pause", "resume"):
            self._pause(words[2] == "pause", asyncio.get_running_loop().time())
            return "+OK\n"
        if len(words) >= 3 and words[2] == "clear":
            self._clear(asyncio.get_running_loop().time())
            return "+OK\n"
        return "-ERR usage\n"

    async def _connect(self, url: str, token: str) -> None:
        ws = WsClient(self._on_binary, self._on_text, self.ws_closed.set)
        try:
            await ws.connect(url, {"Authorization": f"Bearer {token}"})
        except (OSError, TimeoutError) as e:
            self.fail(f"audio connect: {e}")
            return
        ws.send_text(json.dumps({"type": "start", "uuid": self.esl.uuid, "sample_rate": RATE, "encoding": "L16",
                                 "channels": 1}))
        self.ws = ws
        self.enter(Step.LISTENING)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ downlink (socket callback)
    def _on_binary(self, data: bytes, now: float) -> None:
        if self.turn_ended_at is not None:
            self.result.overheads.append((now - self.turn_ended_at[0], now - self.turn_ended_at[1]))
            self.turn_ended_at = None
            self.awaiting_reply = False
        self.playout.write(data)

    def _on_text(self, text: str, now: float) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            return
        kind = msg.get("type") if isinstance(msg, dict) else None
        if kind == "clear":
            self._clear(now)
        elif kind in ("pause", "resume"):
            self._pause(kind == "pause", now)
        elif kind == "mark" and isinstance(msg.get("name"), str):
            self.playout.mark(msg["name"])

    def _stopped(self, now: float, queued: int) -> None:
        b = self.result.barge
        if b is not None and b.stop_at is None and now >= b.onset_at:
            b.stop_at, b.last_active_before_clear, b.dropped = now, self.last_active, queued

    def _pause(self, pause: bool, now: float) -> None:
        if pause:
            self._stopped(now, self.playout.buffered_bytes)
            self.playout.pause()
        else:
            self.playout.resume()

    def _clear(self, now: float) -> None:
        queued = self.playout.buffered_bytes
        _, cleared = self.playout.clear()
        self._stopped(now, queued)
        b = self.result.barge
        if b is not None and b.clear_at is None and now >= b.onset_at:
            b.clear_at = now
        self._marks(cleared, "cleared")
        if self.step is Step.AFTER_BARGE:  # from here on, audio is the reply to the interruption
            self.heard, self.quiet = False, 0

    def _marks(self, names: list[str] | tuple[str, ...], event: str) -> None:
        if self.ws is not None:
            for name in names:
                self.ws.send_text(json.dumps({"type": "mark", "name": name, "event": event}))

    # ------------------------------------------------------------------ one 20 ms tick
    def tick(self, k: int, scheduled: float) -> None:
        ws = self.ws
        if ws is None or ws.closed:
            if self.step is Step.CONNECTING and k - self.step_since > STATE_TIMEOUT_TICKS:
                self.fail("audio never connected")
            return
        self._script(k, scheduled)
        frame = self.up.popleft() if self.up else SILENCE
        ws.send_binary(frame)
        if isinstance(self.turns.feed(self.vad.is_speech(frame), scheduled), TurnEnd):
            if self.turn_ended_at is not None:  # the previous turn never got a reply
                self.result.unanswered += 1
            self.turn_ended_at = (scheduled, asyncio.get_running_loop().time())  # the frame just went out
        t = self.playout.next_frame()
        if t.active:
            self.last_active = k
        if t.played_marks:
            self._marks(t.played_marks, "played")
        active = t.active or self.playout.buffered_bytes > 0
        self.heard = self.heard or (active and not self.awaiting_reply)
        self.quiet = 0 if active else self.quiet + 1
        if t.active and self.playing_since is None and not self.awaiting_reply:
            self.playing_since = k

    def enter(self, step: Step, k: int | None = None) -> None:
        self.step, self.heard, self.quiet, self.playing_since = step, False, 0, None
        self.step_since = self.gen.k if k is None else k

    def _script(self, k: int, scheduled: float) -> None:
        if k - self.step_since > STATE_TIMEOUT_TICKS and self.step in (Step.LISTENING, Step.BARGE_WAIT,
                                                                        Step.AFTER_BARGE):
            self.fail(f"stuck {self.step.value}")
            return
        done_listening = self.heard and self.quiet >= QUIET_TICKS
        if self.step is Step.LISTENING and done_listening:
            if self.questions_left > 0:
                self.questions_left -= 1
                self.up.extend(self.gen.question())
                self.awaiting_reply = True
                self.enter(Step.BARGE_WAIT if self.barge and self.questions_left == 0 else Step.LISTENING, k)
            else:
                self.hang_up()
        elif self.step is Step.BARGE_WAIT:
            # Interrupt while the answer is audibly playing (the last tick played agent audio), so a stall of the
            # agent does not turn the barge-in into one over silence; an answer that never plays is an error.
            started = self.playing_since is not None and k - self.playing_since >= BARGE_AFTER_TICKS
            if started and self.last_active == k - 1:
                self.result.barge = BargeIn(onset_tick=k, onset_at=scheduled)
                self.up.extend(INTERRUPTION)  # its first frame goes up on this tick
                self.awaiting_reply = True
                self.enter(Step.AFTER_BARGE, k)
        elif self.step is Step.AFTER_BARGE:
            b = self.result.barge
            assert b is not None
            # Audio heard before the clear is the interrupted reply; the reply to the interruption comes after.
            if b.clear_at is None:
                self.heard = False
            elif done_listening:
                self.hang_up()

    def hang_up(self) -> None:
        self.enter(Step.HANGING_UP)
        self._spawn(self._finish())

    def fail(self, why: str) -> None:
        if self.result.error is None:
            self.result.error = why
        if self.step not in (Step.HANGING_UP, Step.DONE):
            self.hang_up()

    async def _finish(self) -> None:
        self.result.underruns = self.playout.underruns
        if self.turn_ended_at is not None:
            self.result.unanswered += 1
            self.turn_ended_at = None
        with contextlib.suppress(Exception):
            await self.esl.caller_hangup()
            await asyncio.wait_for(self.esl.wait_closed(), 10)
        if self.ws is not None:
            self.ws.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.ws_closed.wait(), 5)
        await self.esl.close()
        self.result.ended_at = asyncio.get_running_loop().time()
        self.step = Step.DONE
        self.gen.call_done()

    async def start(self) -> None:
        self.result.started_at = asyncio.get_running_loop().time()
        self.step_since = self.gen.k
        try:
            await self.esl.start()
        except OSError as e:
            self.fail(f"esl connect: {e}")


class Generator:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.calls: list[Call] = []
        self.k = 0
        self.t0 = 0.0
        self.lateness: list[float] = []
        self.remaining = args.calls
        self.all_done = asyncio.Event()
        # --speech: real utterances (L16 8 kHz .raw files), asked in turn; otherwise the voiced signal
        self.utterances = [frames(p.read_bytes() + bytes(RATE * 2 * 40 // 1000))
                           for p in sorted(Path(args.speech).glob("*.raw"))] if args.speech else [QUESTION]
        self._asked = 0

    def question(self) -> list[bytes]:
        q = self.utterances[self._asked % len(self.utterances)]
        self._asked += 1
        return q

    def call_done(self) -> None:
        self.remaining -= 1
        if self.remaining <= 0:
            self.all_done.set()

    async def _ticker(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.all_done.is_set():
            scheduled = self.t0 + self.k * FRAME_S
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self.lateness.append(loop.time() - scheduled)
            for call in self.calls:
                if call.step is not Step.DONE:
                    call.tick(self.k, scheduled)
            self.k += 1

    async def run(self) -> dict[str, object]:
        a = self.args
        loop = asyncio.get_running_loop()
        self.t0 = loop.time() + FRAME_S
        ticker = asyncio.create_task(self._ticker())
        rng = random.Random(a.seed)  # call arrivals spread over the ramp, the same every run
        offsets = sorted(rng.uniform(0, a.ramp) for _ in range(a.calls))
        t_start = loop.time()
        for off in offsets:
            await asyncio.sleep(max(0.0, t_start + off - loop.time()))
            call = Call(self, "127.0.0.1", a.esl_port, a.questions, barge=not a.no_barge)
            self.calls.append(call)
            await call.start()
        timeout = a.ramp + 60 + 15 * a.questions
        try:
            await asyncio.wait_for(self.all_done.wait(), timeout)
        except TimeoutError:
            pass
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        return self._summary(self.calls[0].result.started_at if self.calls else t_start, loop.time())

    def _summary(self, t_first: float, t_end: float) -> dict[str, object]:
        injected = self.args.injected
        overhead: list[float] = []
        overhead_send: list[float] = []
        stop: list[float] = []
        clear: list[float] = []
        barges = missed = 0
        errors: list[str] = []
        for c in self.calls:
            r = c.result
            if c.step is not Step.DONE and r.error is None:
                r.error = f"unfinished ({c.step.value})"
            if r.error:
                errors.append(r.error)
            overhead += [x - injected for x, _ in r.overheads]
            overhead_send += [x - injected for _, x in r.overheads]
            b = r.barge
            if b is None:
                continue
            barges += 1
            if b.clear_at is None:
                missed += 1
                continue
            clear.append(b.clear_at - b.onset_at)
            stop_at = b.stop_at if b.stop_at is not None else b.clear_at
            first_after_clear = max(b.onset_tick, math.ceil((stop_at - self.t0) / FRAME_S - 1e-9))
            last = b.last_active_before_clear if b.last_active_before_clear is not None else -1
            # Speech still queued: it played on every tick due before the clear came (also a tick this process
            # had not served yet). Nothing queued: the reply was in a pause and stopped after its last frame.
            stop_tick = first_after_clear if b.dropped else min(first_after_clear, last + 1)
            stop_tick = max(b.onset_tick, stop_tick)
            stop.append(stop_tick * FRAME_S + self.t0 - b.onset_at)
        late = [x for x in self.lateness if x > FRAME_S]
        lat = sorted(self.lateness)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "calls": len(self.calls),
            "errors": errors,
            "t_first": t_first,
            "t_end": t_end,
            "overhead_s": overhead,
            "overhead_from_send_s": overhead_send,
            "barge_stop_s": stop,
            "barge_clear_s": clear,
            "barge_ins": barges,
            "barge_in_missed": missed,
            "underruns": sum(c.result.underruns for c in self.calls),
            "turns_unanswered": sum(c.result.unanswered for c in self.calls),
            "ticks": len(self.lateness),
            "late_ticks": len(late),
            "tick_lateness_p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 2) if lat else None,
            "tick_lateness_max_ms": round(lat[-1] * 1000, 2) if lat else None,
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        }


def main() -> None:
    p = argparse.ArgumentParser(description="StoreAgent bench load generator (FreeSWITCH's side of N calls)")
    p.add_argument("--esl-port", type=int, required=True)
    p.add_argument("--calls", type=int, required=True)
    p.add_argument("--questions", type=int, default=2)
    p.add_argument("--no-barge", action="store_true")
    p.add_argument("--ramp", type=float, default=2.0, help="seconds over which the calls arrive")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--injected", type=float, required=True, help="scripted STT+LLM+TTS first-audio delay, s")
    p.add_argument("--speech", default="", help="directory of real caller utterances (*.raw, L16 8 kHz mono)")
    args = p.parse_args()
    summary = asyncio.run(Generator(args).run())
    sys.stdout.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
