"""The agent under benchmark: the real AgentApp (ESL + audio websocket servers) with scripted providers whose
delays are fixed, so the benchmark can subtract them. Runs as its own process so its CPU time is its own.

usage: python bench/agent_server.py --stt-delay S --llm-delay S --tts-delay S --max-calls N
prints `READY <esl_port> <http_port>` when listening; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import tempfile
from pathlib import Path

import yaml

from storeagent.agent.app import AgentApp
from storeagent.agent.ports import ProviderSet
from storeagent.agent.providers.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS
from storeagent.agent.settings import AgentSettings
from storeagent.agent.store.tools import ShopTools
from storeagent.shop import shop_config_from_manifest

ROOT = Path(__file__).resolve().parent.parent
REPLY = "We open at eight in the morning on Saturday. We close at four in the afternoon. Anything else?"


async def serve(args: argparse.Namespace) -> None:
    shop = shop_config_from_manifest(yaml.safe_load((ROOT / "examples" / "sunrise-bakery.yaml").read_text()))
    providers = ProviderSet(
        stt=ScriptedSTT(("what time do you open on saturday",), final_delay=args.stt_delay),
        llm=ScriptedLLM(REPLY, first_token_delay=args.llm_delay),  # whole reply at once: no hidden token delay
        tts=ScriptedTTS(first_audio_delay=args.tts_delay, seconds_per_char=0.06),
    )
    settings = AgentSettings(host="127.0.0.1", esl_port=0, http_port=0, advertise_host="127.0.0.1",
                             max_calls=args.max_calls, data_dir=Path(tempfile.mkdtemp()), log_format="text")
    app = AgentApp(settings, shop, providers, lambda call: ShopTools(shop))
    await app.start()
    print(f"READY {app.esl_port} {app.http_port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await app.stop()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--stt-delay", type=float, default=0.1)
    p.add_argument("--llm-delay", type=float, default=0.2)
    p.add_argument("--tts-delay", type=float, default=0.15)
    p.add_argument("--max-calls", type=int, default=1000)
    asyncio.run(serve(p.parse_args()))


if __name__ == "__main__":
    main()
