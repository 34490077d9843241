"""`make bench`: N concurrent calls through the real agent server over real sockets, scripted providers.

Method (also in docs/benchmarks.md):
- The agent runs in its own process (bench/agent_server.py) with scripted STT/LLM/TTS whose delays are fixed;
  this process plays FreeSWITCH for every call with the loopback (ESL client + paced audio client).
- Latency phase, `--calls` concurrent calls (default 50): each call hears the greeting, asks two questions and
  interrupts the second answer. Pipeline overhead per turn = (first agent audio - end-of-turn decision) - the
  injected STT + LLM + TTS delays, taken from the agent's own per-turn records. Barge-in stop = caller speech
  onset frame sent -> `clear` received by the caller side.
- Capacity phase: waves of concurrent calls (50, 100, 150, ...), each call talking for `--wave-seconds`.
  A wave "slips" when any caller's playout underran after its prebuffer, or the agent's event loop ran a
  20 ms tick more than 20 ms late at p99. calls_per_core = the largest wave that did not slip, divided by the
  agent's CPU cores used (its process CPU seconds / wall seconds). With two or more cores the agent is pinned
  to core 0 and the loopback callers to core 1, so the callers' own load does not show up as the agent's lag.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import numpy as np

from storeagent.agent.loopback.caller import LoopbackCall

ROOT = Path(__file__).resolve().parent.parent
RATE = 8000
DELAYS = {"stt": 0.1, "llm": 0.2, "tts": 0.15}
PIN = (os.cpu_count() or 1) >= 2


def voiced(ms: int) -> bytes:
    t = np.arange(RATE * ms // 1000) / RATE
    sig = sum((1 / k) * np.sin(2 * np.pi * 140 * k * t) for k in range(1, 20))
    sig = sig * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    return (sig / np.abs(sig).max() * 8000).astype("<i2").tobytes() + bytes(RATE * 2 * 40 // 1000)


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]


class AgentProcess:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "agent_server.py"), "--stt-delay", str(DELAYS["stt"]),
             "--llm-delay", str(DELAYS["llm"]), "--tts-delay", str(DELAYS["tts"])],
            stdout=subprocess.PIPE, text=True, cwd="/tmp",
            # One core each: the agent's figures are its own, not the loopback callers' contention.
            preexec_fn=(lambda: os.sched_setaffinity(0, {0})) if PIN else None)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "READY":
            raise SystemExit(f"agent server did not start: {line}")
        self.esl_port, self.http_port = int(line[1]), int(line[2])

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def debug(self) -> dict[str, object]:
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{self.http_port}/v1/debug/turns") as r:
            data: dict[str, object] = await r.json()
            return data

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


async def one_call(agent: AgentProcess, questions: int, barge: bool, results: dict[str, list[float]]) -> None:
    call = LoopbackCall("127.0.0.1", agent.esl_port, stats_interval=None)
    try:
        await call.start(timeout=30)
        await call.wait_agent_done(quiet=0.6, timeout=30)
        for q in range(questions):
            await call.say(voiced(600))
            last = q == questions - 1
            if barge and last:
                await call.wait_agent_speaking(timeout=20)
                await asyncio.sleep(0.8)
                index = call.say_nowait(voiced(400))
                await asyncio.sleep(0.8)
                rec = call.audio.record if call.audio else None
                if rec and rec.clears and index < len(rec.uplink_times):
                    results["barge"].append(rec.clears[-1].received_at - rec.uplink_times[index])
            await call.wait_agent_done(quiet=0.6, timeout=30)
        if call.audio is not None:
            results["underruns"].append(float(call.audio.playout.underruns))
            results["late_ticks"].append(float(call.audio.record.late_ticks))
        await call.hangup()
        await call.wait_ended(10)
    finally:
        await call.close()


async def latency_phase(agent: AgentProcess, calls: int) -> dict[str, float | None]:
    results: dict[str, list[float]] = {"barge": [], "underruns": [], "late_ticks": []}
    before = len((await agent.debug())["turns"])  # type: ignore[arg-type]
    await asyncio.gather(*(one_call(agent, 2, True, results) for _ in range(calls)))
    turns = (await agent.debug())["turns"][before:]  # type: ignore[index]
    injected = sum(DELAYS.values())
    overhead = [t["decision_to_audio"] - injected for t in turns if t.get("decision_to_audio") is not None]
    v2v = [t["voice_to_voice"] for t in turns if t.get("voice_to_voice") is not None]
    return {
        "calls": calls,
        "turns": len(overhead),
        "overhead_p50_ms": _ms(pct(overhead, 50)),
        "overhead_p95_ms": _ms(pct(overhead, 95)),
        "voice_to_voice_p50_ms": _ms(pct(v2v, 50)),
        "barge_in_stop_p50_ms": _ms(pct(results["barge"], 50)),
        "barge_in_stop_p95_ms": _ms(pct(results["barge"], 95)),
        "barge_ins": len(results["barge"]),
        "underruns": sum(results["underruns"]),
    }


async def wave(agent: AgentProcess, calls: int, seconds: float) -> dict[str, float | int | bool | None]:
    results: dict[str, list[float]] = {"barge": [], "underruns": [], "late_ticks": []}
    cpu0, t0 = agent.cpu_seconds(), time.monotonic()
    questions = max(1, int(seconds // 6))
    await asyncio.gather(*(one_call(agent, questions, False, results) for _ in range(calls)))
    wall = time.monotonic() - t0
    cpu = agent.cpu_seconds() - cpu0
    lag = (await agent.debug())["loop_lag_ms"]
    lag_p99 = lag.get("p99") if isinstance(lag, dict) else None
    underruns = int(sum(results["underruns"]))
    slipped = underruns > 0 or (lag_p99 is not None and lag_p99 > 20)
    return {"calls": calls, "wall_s": round(wall, 1), "agent_cpu_s": round(cpu, 1),
            "agent_cores": round(cpu / wall, 2), "underruns": underruns, "loop_lag_p99_ms": lag_p99,
            "client_late_ticks": int(sum(results["late_ticks"])), "slipped": slipped,
            "cpu_s_per_call_minute": round(cpu / (calls * wall / 60), 3)}


def _ms(x: float | None) -> float | None:
    return None if x is None else round(x * 1000, 1)


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    agent = AgentProcess()
    try:
        lat = await latency_phase(agent, args.calls)
        print(f"latency phase: {json.dumps(lat)}", flush=True)
        waves = []
        best = 0
        best_cores = 1.0
        for n in args.waves:
            w = await wave(agent, n, args.wave_seconds)
            print(f"wave: {json.dumps(w)}", flush=True)
            waves.append(w)
            if w["slipped"]:
                break
            best, best_cores = n, max(float(w["agent_cores"] or 0), 0.01)
        cpu_per_min = [float(w["cpu_s_per_call_minute"] or 0) for w in waves if not w["slipped"]]
    finally:
        agent.stop()
    return {
        "overhead_p95_ms": lat["overhead_p95_ms"],
        "overhead_p50_ms": lat["overhead_p50_ms"],
        "barge_in_stop_p95_ms": lat["barge_in_stop_p95_ms"],
        "barge_in_stop_p50_ms": lat["barge_in_stop_p50_ms"],
        "latency_calls": lat["calls"],
        "max_calls_without_slip": best,
        "agent_cores_at_max": best_cores,
        "calls_per_core": round(best / max(best_cores, 1.0), 1) if best else 0,
        "cpu_s_per_call_minute": round(min(cpu_per_min), 3) if cpu_per_min else None,
        "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
    }


def main() -> None:
    p = argparse.ArgumentParser(description="StoreAgent agent benchmark")
    p.add_argument("--calls", type=int, default=50, help="concurrent calls in the latency phase")
    p.add_argument("--waves", type=int, nargs="*", default=[50, 100, 150, 200, 300], help="capacity waves")
    p.add_argument("--wave-seconds", type=float, default=15.0)
    args = p.parse_args()
    if PIN:
        os.sched_setaffinity(0, {1})
    result = asyncio.run(main_async(args))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
