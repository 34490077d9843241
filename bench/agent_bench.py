"""`make bench`: concurrent calls through the real agent server over real sockets, timed on the caller's side.

Method (also in docs/benchmarks.md):
- Three processes. The agent (bench/agent_server.py: the real AgentApp, scripted STT/LLM/TTS with fixed
  delays, the TTS streaming in real time) pinned to core 0 with taskset; the load generator (bench/loadgen.py:
  FreeSWITCH's side of every call on one shared 20 ms clock) pinned to core 1; this orchestrator, which only
  starts them and does arithmetic, also on core 1. On one core nothing is pinned (and the figures say less).
- Latency phase, `--calls` concurrent calls (default 50); then the capacity ladder, `--ladder` rungs of
  concurrent calls, each a fresh generator run of the same script (greeting, two questions, the second answer
  interrupted), stopping at the first rung that slips. A rung slips, and the reason is printed, when any of:
  a call failed; a turn got no reply; a barge-in got no clear; the caller's playout underran; overhead
  p95 > 10 ms; barge-in stop p95 > 100 ms; the agent's loop lag p99 > 20 ms over that rung's own window; or
  the generator itself fell behind (over 1 % of its ticks > 20 ms late: then the figures are not the agent's).
- Figures (definitions in bench/loadgen.py): overhead = first agent audio byte received by the caller -
  scheduled time of the frame that ended the turn - the injected provider delays (STT final + LLM first token +
  TTS first audio); barge-in stop = scheduled time of the interruption's first frame -> first playout tick with
  no more agent audio; barge-in clear = same onset -> `clear` received.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
DELAYS = {"stt": 0.1, "llm": 0.2, "tts": 0.15}
INJECTED = sum(DELAYS.values())
PIN = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
TARGETS = {"overhead_p95_ms": 10.0, "barge_in_stop_p95_ms": 100.0, "loop_lag_p99_ms": 20.0}
GENERATOR_LATE_SHARE = 0.01


def pinned(cmd: list[str], core: int) -> list[str]:
    return ["taskset", "-c", str(core), *cmd] if PIN else cmd


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]


def ms(x: float | None) -> float | None:
    return None if x is None else round(x * 1000, 1)


class AgentProcess:
    def __init__(self, args: argparse.Namespace) -> None:
        cmd = [sys.executable, str(ROOT / "agent_server.py"), "--stt-delay", str(DELAYS["stt"]),
               "--llm-delay", str(DELAYS["llm"]), "--tts-delay", str(DELAYS["tts"]),
               "--seconds-per-char", str(args.seconds_per_char)]
        self.proc = subprocess.Popen(pinned(cmd, 0), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     cwd="/tmp")
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "READY":
            raise SystemExit(f"agent server did not start: {line}")
        self.esl_port = int(line[1])

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def window(self, since: float, until: float) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"window {since} {until}\n")
        self.proc.stdin.flush()
        data: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return data

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def run_calls(agent: AgentProcess, calls: int, args: argparse.Namespace) -> dict[str, Any]:
    """One generator run of `calls` concurrent calls; the rung's figures and why it slipped (if it did)."""
    cmd = [sys.executable, str(ROOT / "loadgen.py"), "--esl-port", str(agent.esl_port), "--calls", str(calls),
           "--questions", str(args.questions), "--ramp", str(min(args.ramp, 0.02 * calls)),
           "--injected", str(INJECTED)]
    cpu0, wall0 = agent.cpu_seconds(), time.monotonic()
    out = subprocess.run(pinned(cmd, 1), capture_output=True, text=True, timeout=600, check=False)
    cpu, wall = agent.cpu_seconds() - cpu0, time.monotonic() - wall0
    if out.returncode != 0 or not out.stdout.strip():
        raise SystemExit(f"load generator failed ({out.returncode}): {out.stderr[-2000:]}")
    gen: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    win = agent.window(gen["t_first"], gen["t_end"] + 0.5)
    over, stop, clear = gen["overhead_s"], gen["barge_stop_s"], gen["barge_clear_s"]
    agent_over = [d - INJECTED for d in win["decision_to_audio"]]
    span = max(gen["t_end"] - gen["t_first"], 1e-9)
    rung: dict[str, Any] = {
        "calls": calls,
        "turns": len(over),
        "turns_unanswered": gen["turns_unanswered"],
        "overhead_p50_ms": ms(pct(over, 50)),
        "overhead_p95_ms": ms(pct(over, 95)),
        "overhead_max_ms": ms(max(over) if over else None),
        # diagnostic: from when the deciding frame was written, i.e. without the generator's own send lateness
        "overhead_from_send_p95_ms": ms(pct(gen["overhead_from_send_s"], 95)),
        "barge_ins": gen["barge_ins"],
        "barge_in_missed": gen["barge_in_missed"],
        "barge_in_stop_p50_ms": ms(pct(stop, 50)),
        "barge_in_stop_p95_ms": ms(pct(stop, 95)),
        "barge_in_clear_p50_ms": ms(pct(clear, 50)),
        "barge_in_clear_p95_ms": ms(pct(clear, 95)),
        "barge_in_late": sum(1 for x in stop if x * 1000 > TARGETS["barge_in_stop_p95_ms"]),
        "underruns": gen["underruns"],
        "loop_lag_p99_ms": win["lag_p99_ms"],
        "loop_lag_max_ms": win["lag_max_ms"],
        "agent_overhead_p95_ms": ms(pct(agent_over, 95)),  # in-process diagnostic (old definition)
        "agent_cores": round(cpu / wall, 3),
        "generator_cores": round(gen["cpu_s"] / wall, 3),
        "generator_late_ticks": gen["late_ticks"],
        "generator_tick_lateness_p99_ms": gen["tick_lateness_p99_ms"],
        "errors": len(gen["errors"]),
        "cpu_s_per_call_minute": round(cpu / (calls * span / 60), 4),
        "wall_s": round(wall, 1),
        "cpu_pressure_avg10_pct": cpu_pressure(),
    }
    rung["generator_behind"] = generator_behind(gen)
    rung["slip_reasons"] = slip_reasons(rung, gen)
    return rung


def cpu_pressure() -> float | None:
    """Share of the last 10 s in which some runnable task waited for a CPU (PSI): how busy the neighbours were."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    fields = dict(f.split("=", 1) for f in line.split()[1:])
    return float(fields["avg10"]) if "avg10" in fields else None


def generator_behind(gen: dict[str, Any]) -> bool:
    return bool(gen["ticks"]) and gen["late_ticks"] > GENERATOR_LATE_SHARE * gen["ticks"]


def slip_reasons(r: dict[str, Any], gen: dict[str, Any]) -> list[str]:
    why: list[str] = []
    if generator_behind(gen):
        why.append(f"load generator fell behind ({gen['late_ticks']} of {gen['ticks']} ticks > 20 ms late): "
                   "these figures are not the agent's")
    if r["errors"]:
        why.append(f"{r['errors']} calls failed (first: {gen['errors'][0]})")
    if r["turns_unanswered"]:
        why.append(f"{r['turns_unanswered']} turns got no reply")
    if r["barge_in_missed"]:
        why.append(f"{r['barge_in_missed']} of {r['barge_ins']} barge-ins got no clear")
    if r["underruns"]:
        why.append(f"{r['underruns']} playout underruns (agent audio late by more than the TTS lead)")
    for key, limit in TARGETS.items():
        if r[key] is not None and r[key] > limit:
            why.append(f"{key} {r[key]} > {limit:g}")
    return why


def main() -> None:
    p = argparse.ArgumentParser(description="StoreAgent agent benchmark")
    p.add_argument("--calls", type=int, default=50, help="concurrent calls in the latency phase")
    p.add_argument("--ladder", type=int, nargs="*", default=[10, 25, 50, 75, 100, 150, 200, 300],
                   help="capacity rungs (concurrent calls); stops at the first slip")
    p.add_argument("--questions", type=int, default=2, help="questions per call; the last answer is interrupted")
    p.add_argument("--ramp", type=float, default=3.0, help="calls arrive over up to this many seconds")
    p.add_argument("--overhead-target-ms", type=float, default=TARGETS["overhead_p95_ms"],
                   help="overhead p95 that slips a rung (raise it to find where the audio itself breaks)")
    p.add_argument("--retries", type=int, default=2,
                   help="runs again a rung on which the generator itself fell behind (a noisy machine)")
    p.add_argument("--seconds-per-char", type=float, default=0.06, help="scripted speech length")
    args = p.parse_args()
    TARGETS["overhead_p95_ms"] = args.overhead_target_ms
    if PIN:
        os.sched_setaffinity(0, {1})
    load_before, pressure_before = os.getloadavg(), cpu_pressure()
    agent = AgentProcess(args)
    try:
        lat = run_calls(agent, args.calls, args)
        print(f"latency phase: {json.dumps(lat)}", flush=True)
        best, best_cores, slip_reason = 0, 1.0, None
        cpu_per_min: list[float] = []
        for n in args.ladder:
            for _ in range(1 + args.retries):
                rung = run_calls(agent, n, args)
                print(f"rung: {json.dumps(rung)}", flush=True)
                if not rung["generator_behind"]:
                    break  # a valid measurement; a rung the generator could not drive is measured again
            if rung["slip_reasons"]:
                slip_reason = f"at {n} calls: " + "; ".join(rung["slip_reasons"])
                break
            best, best_cores = n, max(float(rung["agent_cores"]), 0.01)
            cpu_per_min.append(float(rung["cpu_s_per_call_minute"]))
        if slip_reason is None:
            slip_reason = f"none up to {args.ladder[-1]} calls (the ladder's top)" if args.ladder else "no ladder run"
    finally:
        agent.stop()
    result = {
        "overhead_p95_ms": lat["overhead_p95_ms"],
        "overhead_p50_ms": lat["overhead_p50_ms"],
        "barge_in_stop_p95_ms": lat["barge_in_stop_p95_ms"],
        "barge_in_stop_p50_ms": lat["barge_in_stop_p50_ms"],
        "latency_calls": lat["calls"],
        "max_calls_without_slip": best,
        "agent_cores_at_max": best_cores if best else None,
        "calls_per_core": round(best / max(best_cores, 1.0), 1) if best else 0,
        "cpu_s_per_call_minute": round(min(cpu_per_min), 4) if cpu_per_min else None,
        "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "barge_ins": lat["barge_ins"],
        "barge_in_missed": lat["barge_in_missed"],
        "slip_reason": slip_reason,
        "barge_in_clear_p95_ms": lat["barge_in_clear_p95_ms"],
        "barge_in_late": lat["barge_in_late"],
        "underruns": lat["underruns"],
        "turns": lat["turns"],
        "turns_unanswered": lat["turns_unanswered"],
        "pinned": PIN,
        "load_avg_1m": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "cpu_pressure_avg10_pct": [pressure_before, cpu_pressure()],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
