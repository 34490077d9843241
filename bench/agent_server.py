"""The agent under benchmark: the real AgentApp (ESL + audio websocket servers) with scripted providers whose
delays are fixed, so the benchmark can subtract them. Runs as its own process so its CPU time is its own.

usage: python bench/agent_server.py --stt-delay S --llm-delay S --tts-delay S [--max-calls N]
prints `READY <esl_port> <http_port>` when listening; then answers one JSON line per command line on stdin:
  `window <since> <until>`  loop lag (p50/p99/max ms) over that time.monotonic() window, and the agent's own
                            per-turn records and barge-in counts of the calls that ended in it (a diagnostic:
                            the benchmark's figures are taken on the caller's side);
stops on SIGTERM or end of stdin.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

import yaml

from storeagent.agent.__main__ import warm_up
from storeagent.agent.app import AgentApp
from storeagent.agent.metrics import AgentMetrics
from storeagent.agent.pipeline.conversation import ConversationOutcome
from storeagent.agent.ports import CallControl, ProviderSet
from storeagent.agent.providers.factory import build_providers
from storeagent.agent.providers.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS
from storeagent.agent.secrets import Secrets
from storeagent.agent.settings import AgentSettings, TurnSettings
from storeagent.agent.store.tools import ShopTools
from storeagent.shop import ProviderChoice, Providers, ShopConfig, shop_config_from_manifest

ROOT = Path(__file__).resolve().parent.parent
REPLY = "We open at eight in the morning on Saturday. We close at four in the afternoon. Anything else?"


class Recorder:
    """Loop lag with a timestamp per sample, so each wave gets a window of its own (not the last minute)."""

    def __init__(self) -> None:
        self.lag_t: list[float] = []
        self.lag: list[float] = []
        self.calls: list[tuple[float, list[float | None], int]] = []  # (ended_at, decision_to_audio, barge_ins)
        self.heard: list[tuple[float, list[str]]] = []  # (ended_at, caller turns as the STT heard them)

    async def watch_lag(self) -> None:
        # A call's frames are due every 20 ms: a loop that wakes late delays every call's audio by that much.
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(0.02)
            now = loop.time()
            self.lag_t.append(now)
            self.lag.append(max(0.0, now - t - 0.02))

    async def on_finished(self, uuid: str, call: CallControl, out: ConversationOutcome, duration: float) -> None:
        self.calls.append((time.monotonic(), [lat.decision_to_audio for lat in out.latencies], out.barge_ins))
        self.heard.append((time.monotonic(), [line.text for line in out.transcript if line.role == "caller"]))

    def window(self, since: float, until: float) -> dict[str, object]:
        lo, hi = bisect.bisect_left(self.lag_t, since), bisect.bisect_right(self.lag_t, until)
        lags = sorted(self.lag[lo:hi])

        def q(p: float) -> float | None:
            return round(lags[min(len(lags) - 1, int(len(lags) * p))] * 1000, 2) if lags else None

        ended = [c for c in self.calls if since <= c[0] <= until]
        return {"lag_samples": len(lags), "lag_p50_ms": q(0.50), "lag_p99_ms": q(0.99), "lag_max_ms": q(1.0),
                "calls_ended": len(ended), "decision_to_audio": [d for c in ended for d in c[1] if d is not None],
                "barge_ins": sum(c[2] for c in ended),
                "heard": [t for at, texts in self.heard if since <= at <= until for t in texts]}


async def real_speech(shop: ShopConfig, mode: str, speech_url: str) -> ProviderSet:
    """The production chains with real engines: `offline` in this process, `service` through the speech
    service first (in-process engines as its fallback); the LLM is the offline answerer either way."""
    offline = ProviderChoice(name="offline")
    speech = ProviderChoice(name="speech") if mode == "service" else offline
    shop = shop.model_copy(update={"providers": Providers(stt=speech, llm=offline, tts=speech)})
    providers = build_providers(shop, AgentMetrics(shop.store), secrets=Secrets.from_env({}),
                                speech_url=speech_url)
    await warm_up(providers, shop.language)
    return providers


async def serve(args: argparse.Namespace) -> None:
    shop = shop_config_from_manifest(yaml.safe_load((ROOT / "examples" / "sunrise-bakery.yaml").read_text()))
    turn = TurnSettings()
    if args.real_speech:
        providers = await real_speech(shop, args.real_speech, args.speech_url)
        turn = TurnSettings(ack_after_ms=60000)  # no "One moment." filler: the first audio timed is the answer
    else:
        providers = ProviderSet(
            stt=ScriptedSTT(("what time do you open on saturday",), final_delay=args.stt_delay),
            llm=ScriptedLLM(REPLY, first_token_delay=args.llm_delay),  # whole reply at once: no hidden delay
            tts=ScriptedTTS(first_audio_delay=args.tts_delay, seconds_per_char=args.seconds_per_char,
                            chunk_ms=args.tts_chunk_ms, realtime=True),
        )
    settings = AgentSettings(host="127.0.0.1", esl_port=0, http_port=0, advertise_host="127.0.0.1",
                             max_calls=args.max_calls, data_dir=Path(tempfile.mkdtemp()), log_format="text",
                             turn=turn)
    rec = Recorder()
    app = AgentApp(settings, shop, providers, lambda call: ShopTools(shop), on_finished=rec.on_finished)
    await app.start()
    lag = asyncio.create_task(rec.watch_lag())
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    print(f"READY {app.esl_port} {app.http_port}", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    async def commands() -> None:
        while line := await stdin.readline():
            words = line.decode().split()
            if len(words) == 3 and words[0] == "window":
                print(json.dumps(rec.window(float(words[1]), float(words[2]))), flush=True)
            else:
                print(json.dumps({"error": f"unknown command {line[:40]!r}"}), flush=True)
        stop.set()

    reader = asyncio.create_task(commands())
    await stop.wait()
    reader.cancel()
    lag.cancel()
    await app.stop()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--stt-delay", type=float, default=0.1)
    p.add_argument("--llm-delay", type=float, default=0.2)
    p.add_argument("--tts-delay", type=float, default=0.15)
    p.add_argument("--seconds-per-char", type=float, default=0.06, help="length of the scripted speech")
    p.add_argument("--tts-chunk-ms", type=int, default=100, help="scripted TTS chunk, streamed in real time")
    p.add_argument("--max-calls", type=int, default=1000)
    p.add_argument("--real-speech", choices=["offline", "service"], help="real engines instead of scripted ones")
    p.add_argument("--speech-url", default="", help="the speech service, with --real-speech service")
    asyncio.run(serve(p.parse_args()))


if __name__ == "__main__":
    main()
