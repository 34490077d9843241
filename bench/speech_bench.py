"""`make bench-speech`: how many concurrent real-speech calls this box carries with the speech service, and with
the in-process engines, measured in the same run from the caller's side.

Method (also in docs/benchmarks.md, "Speech service"):
- Caller speech is real: questions synthesized once with piper (a slower voice than the agent's), resampled to
  8 kHz, played up the audio websocket in real time by bench/loadgen.py (FreeSWITCH's side of every call, one
  20 ms clock). The agent (bench/agent_server.py --real-speech) runs the production chains: `service` = speech
  service first, in-process engines as fallback; `inprocess` = the in-process engines only. The LLM is the offline
  answerer in both, the filler is off, so the first agent audio after a turn is the answer.
- Turn response = first agent audio byte received by the caller - the frame on which the turn detector ended the
  turn (the end-of-turn silence, 500 ms by default, comes before it). A rung of N calls (each: greeting, `--questions`
  questions, hang up) slips when the response p95 > 1.5 s, any playout underrun, a failed call, or an unanswered
  turn. The ladder stops at the first slip; the figure is the last rung that held.
- CPU from /proc (utime+stime): the agent process; the speech service's I/O process plus its workers; per
  call-minute of that rung. Memory: each worker's RSS at the rung's end. Real-time factor: the service's own
  histogram (processing s per audio s). /proc/pressure/cpu is printed per rung: the box is shared.
- The service's TTS cache is on at its default (64 MB per worker) unless `--tts-cache-mb 0`. Every call here
  asks from the same five questions, so answers repeat more than in a real shop's day: report both settings, with
  the hit ratio each rung prints.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from agent_bench import cpu_pressure, ms, pct

ROOT = Path(__file__).resolve().parent
QUESTIONS = ("What time do you open on Saturday?", "Do you have sourdough bread?", "Where are you located?",
             "Are you open on Sunday?", "How much are the croissants?")
LIMIT_S = 1.5


def make_speech(out: Path) -> None:
    sys.path.insert(0, str(ROOT.parent / "tests"))
    from support.speech_service import caller_speech

    for i, q in enumerate(QUESTIONS):
        (out / f"{i:02d}.raw").write_bytes(caller_speech(q))


def proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(x) for x in out.stdout.split()]


def rss_mb(pid: int) -> float:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


class Started:
    def __init__(self, cmd: list[str]) -> None:
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd="/tmp")
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "READY":
            raise SystemExit(f"{cmd[1]} did not start: {line}")
        self.ports = [int(x) for x in line[1:]]

    def cpu(self) -> float:
        return proc_cpu(self.proc.pid) + sum(proc_cpu(c) for c in children(self.proc.pid))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def service_metrics(port: int) -> dict[str, float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[str, float] = {}
    for line in body.splitlines():
        if line.startswith("storeagent_speech_") and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def rtf(before: dict[str, float], after: dict[str, float], kind: str) -> float | None:
    def key(part: str) -> str:
        return f'storeagent_speech_real_time_factor_{part}{{kind="{kind}"}}'

    n = after.get(key("count"), 0) - before.get(key("count"), 0)
    s = after.get(key("sum"), 0) - before.get(key("sum"), 0)
    return round(s / n, 3) if n else None


def cache_hits(before: dict[str, float], after: dict[str, float]) -> float | None:
    def n(result: str) -> float:
        key = f'storeagent_speech_tts_cache_total{{result="{result}"}}'
        return after.get(key, 0) - before.get(key, 0)

    total = n("hit") + n("miss")
    return round(n("hit") / total, 3) if total else None


def word_recall(heard: list[str]) -> float | None:
    """Share of the asked questions' words found in what the agent heard (a rough recognition figure)."""
    if not heard:
        return None
    asked = [set(q.lower().rstrip("?").split()) for q in QUESTIONS]
    scores = [max(len(a & set(h.lower().split())) / len(a) for a in asked) for h in heard]
    return round(sum(scores) / len(scores), 2)


def rung(mode: str, agent: Started, service: Started | None, calls: int, args: argparse.Namespace,
         speech_dir: Path) -> dict[str, Any]:
    cmd = [sys.executable, str(ROOT / "loadgen.py"), "--esl-port", str(agent.ports[0]), "--calls", str(calls),
           "--questions", str(args.questions), "--ramp", str(min(args.ramp, 0.25 * calls)), "--no-barge",
           "--injected", "0", "--speech", str(speech_dir)]
    m0 = service_metrics(service.ports[0]) if service else {}
    a0, s0, w0 = agent.cpu(), service.cpu() if service else 0.0, time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    a_cpu, wall = agent.cpu() - a0, time.monotonic() - w0
    s_cpu = (service.cpu() - s0) if service else 0.0
    if out.returncode != 0 or not out.stdout.strip():
        raise SystemExit(f"load generator failed ({out.returncode}): {out.stderr[-2000:]}")
    gen: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    assert agent.proc.stdin is not None and agent.proc.stdout is not None
    for _ in range(20):  # the agent records a call when it has let go of it, a moment after the caller hung up
        agent.proc.stdin.write(f"window {gen['t_first']} {time.monotonic()}\n")
        agent.proc.stdin.flush()
        win = json.loads(agent.proc.stdout.readline())
        if win["calls_ended"] >= calls:
            break
        time.sleep(0.5)
    resp = gen["overhead_s"]
    call_min = calls * max(gen["t_end"] - gen["t_first"], 1e-9) / 60
    r: dict[str, Any] = {
        "mode": mode, "calls": calls, "turns": len(resp), "turns_unanswered": gen["turns_unanswered"],
        "response_p50_ms": ms(pct(resp, 50)), "response_p95_ms": ms(pct(resp, 95)),
        "response_max_ms": ms(max(resp) if resp else None), "responses_ms": [ms(x) for x in resp],
        "underruns": gen["underruns"],
        "errors": len(gen["errors"]), "agent_cores": round(a_cpu / wall, 3),
        "agent_cpu_s_per_call_minute": round(a_cpu / call_min, 2),
        "agent_loop_lag_p99_ms": win["lag_p99_ms"], "word_recall": word_recall(win["heard"]),
        "generator_late_ticks": gen["late_ticks"], "wall_s": round(wall, 1), "cpu_pressure_avg10_pct": cpu_pressure(),
    }
    if service:
        m1 = service_metrics(service.ports[0])
        r |= {"speech_cores": round(s_cpu / wall, 3), "speech_cpu_s_per_call_minute": round(s_cpu / call_min, 2),
              "rtf_stt": rtf(m0, m1, "stt"), "rtf_tts": rtf(m0, m1, "tts"),
              "refusals": sum(v - m0.get(k, 0) for k, v in m1.items() if k.startswith(
                  "storeagent_speech_refusals_total")),
              "tts_cache_hit_ratio": cache_hits(m0, m1),
              "worker_rss_mb": [round(rss_mb(c), 1) for c in children(service.proc.pid)]}
    why = []
    if r["errors"]:
        why.append(f"{r['errors']} calls failed (first: {gen['errors'][0]})")
    if r["turns_unanswered"]:
        why.append(f"{r['turns_unanswered']} turns unanswered")
    if r["underruns"]:
        why.append(f"{r['underruns']} playout underruns")
    if r["response_p95_ms"] is None or r["response_p95_ms"] > LIMIT_S * 1000:
        why.append(f"response p95 {r['response_p95_ms']} ms > {LIMIT_S * 1000:g}")
    r["slip_reasons"] = why
    return r


def ladder(mode: str, args: argparse.Namespace, speech_dir: Path) -> dict[str, Any]:
    service = None
    if mode == "service":
        service = Started([sys.executable, "-m", "storeagent.speech", "serve", "--host", "127.0.0.1", "--port", "0",
                           "--workers", str(args.workers), "--saturation-s", str(args.saturation_s),
                           "--tts-cache-mb", str(args.tts_cache_mb)])
    agent_cmd = [sys.executable, str(ROOT / "agent_server.py"), "--real-speech", mode]
    if service:
        agent_cmd += ["--speech-url", f"ws://127.0.0.1:{service.ports[0]}"]
    agent = Started(agent_cmd)
    rungs, best, slip = [], 0, None
    try:
        for n in args.ladder:
            r = rung(mode, agent, service, n, args, speech_dir)
            print(f"rung: {json.dumps(r)}", flush=True)
            rungs.append(r)
            if r["slip_reasons"]:
                slip = f"at {n} calls: " + "; ".join(r["slip_reasons"])
                break
            best = n
    finally:
        agent.stop()
        if service:
            service.stop()
    held = [r for r in rungs if not r["slip_reasons"]]
    top = held[-1] if held else None
    return {"mode": mode, "max_calls": best, "slip": slip or f"none up to {args.ladder[-1]}", "at_max": top,
            "rungs": len(rungs)}


def main() -> None:
    p = argparse.ArgumentParser(description="speech service capacity with real speech")
    p.add_argument("--ladder", type=int, nargs="*", default=[2, 4, 8, 12, 16, 24, 32, 48, 64])
    p.add_argument("--modes", nargs="*", default=["service", "inprocess"], choices=["service", "inprocess"])
    p.add_argument("--questions", type=int, default=2)
    p.add_argument("--ramp", type=float, default=4.0)
    p.add_argument("--workers", type=int, default=0, help="speech workers (0: one per CPU)")
    p.add_argument("--saturation-s", type=float, default=1.0, help="the service's load-based refusal (its default)")
    p.add_argument("--tts-cache-mb", type=int, default=64,
                   help="the service's TTS cache per worker (its default; 0: off, every utterance synthesized)")
    args = p.parse_args()
    pressure_before = cpu_pressure()
    with tempfile.TemporaryDirectory() as tmp:
        speech_dir = Path(tmp)
        make_speech(speech_dir)
        results = [ladder("offline" if m == "inprocess" else "service", args, speech_dir) for m in args.modes]
    print(json.dumps({"results": results, "machine": f"{os.cpu_count()} cores",
                      "cpu_pressure_avg10_pct": [pressure_before, cpu_pressure()],
                      "load_avg_1m": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
