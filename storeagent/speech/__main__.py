"""`storeagent speech serve`: the composition root of the speech service."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Mapping

from pydantic import ValidationError

from storeagent.speech.server import SpeechService, SpeechSettings

log = logging.getLogger("storeagent.speech")
ENV = {"STOREAGENT_SPEECH_HOST": "host", "STOREAGENT_SPEECH_PORT": "port", "STOREAGENT_SPEECH_WORKERS": "workers",
       "STOREAGENT_SPEECH_MAX_STREAMS_PER_WORKER": "max_streams_per_worker",
       "STOREAGENT_SPEECH_SATURATION_S": "saturation_s", "STOREAGENT_SPEECH_DRAIN_SECONDS": "drain_seconds",
       "STOREAGENT_SPEECH_TTS_CACHE_MB": "tts_cache_mb"}


def settings_from(args: argparse.Namespace, env: Mapping[str, str]) -> SpeechSettings:
    data: dict[str, object] = {field: env[var] for var, field in ENV.items() if var in env}
    data.update({k: v for k, v in vars(args).items() if k in SpeechSettings.model_fields and v is not None})
    return SpeechSettings.model_validate(data)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="storeagent speech", description="Shared streaming STT and TTS.")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="serve /v1/stt and /v1/tts websockets (docs/speech-protocol.md)")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--workers", type=int, help="worker processes (default: the pod's CPUs)")
    s.add_argument("--max-streams-per-worker", type=int)
    s.add_argument("--saturation-s", type=float)
    s.add_argument("--drain-seconds", type=float)
    s.add_argument("--tts-cache-mb", type=int, help="per worker; 0: off (default 64)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=os.environ.get("STOREAGENT_SPEECH_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        settings = settings_from(args, os.environ)
    except ValidationError as e:
        print(f"storeagent speech: invalid settings:\n{e}", file=sys.stderr)
        return 2
    return asyncio.run(_serve(settings))


async def _serve(settings: SpeechSettings) -> int:
    service = SpeechService(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await service.start()
    print(f"READY {service.port}", flush=True)  # tests and the benchmark wait for this line
    try:
        await stop.wait()
        await service.drain()
    finally:
        await service.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
