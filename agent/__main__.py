"""`storeagent agent serve`: the composition root of the agent process."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

import yaml
from pydantic import ValidationError

from storeagent.agent.app import AgentApp, run_until_signalled
from storeagent.agent.logs import setup_logging
from storeagent.agent.metrics import AgentMetrics
from storeagent.agent.ports import AudioFormat, ProviderSet
from storeagent.agent.providers.smart_turn import load_turn_model
from storeagent.agent.secrets import Secrets, install_log_redaction
from storeagent.agent.settings import AgentSettings
from storeagent.agent.wiring import build_outbox, build_providers
from storeagent.shop import ShopConfig, shop_config_from_manifest

log = logging.getLogger("storeagent.agent")


def load_shop(path: Path) -> ShopConfig:
    """A ShopConfig document (the operator's ConfigMap) or a whole StoreAgent manifest (examples/)."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise SystemExit(f"storeagent agent: cannot read config {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise SystemExit(f"storeagent agent: {path} is not valid YAML: {e}") from None
    if not isinstance(doc, dict):
        raise SystemExit(f"storeagent agent: {path} must hold a mapping")
    try:
        if doc.get("kind") == "StoreAgent":
            return shop_config_from_manifest(doc)
        return ShopConfig.model_validate(doc)
    except (ValidationError, ValueError) as e:
        raise SystemExit(f"storeagent agent: invalid shop config {path}:\n{e}") from None


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="storeagent agent", description="Answer one shop's calls.")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="serve calls: ESL server + audio websocket + metrics")
    s.add_argument("--config", type=Path, help="shop config YAML (default $STOREAGENT_CONFIG)")
    s.add_argument("--host", help="bind address (default 0.0.0.0)")
    s.add_argument("--esl-port", type=int, help="ESL port (default 8084)")
    s.add_argument("--http-port", type=int, help="HTTP port (default 8080)")
    s.add_argument("--advertise-host", help="address FreeSWITCH uses for our websocket (default $POD_IP)")
    s.add_argument("--providers", choices=["config", "offline"], default="config",
                   help="config: as the shop config says (default); offline: the offline set for every stage")
    s.add_argument("--log-format", choices=["json", "text"])
    s.add_argument("--watch-config", action="store_true",
                   help="re-read the shop file when it changes (the owner web's local mode, `make demo-web`)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = AgentSettings.from_env(
            config_path=args.config, host=args.host, esl_port=args.esl_port, http_port=args.http_port,
            advertise_host=args.advertise_host, log_format=args.log_format,
        )
    except ValidationError as e:
        print(f"storeagent agent: invalid settings:\n{e}", file=sys.stderr)
        return 2
    setup_logging(settings.log_format)
    shop = load_shop(settings.config_path)
    return asyncio.run(_serve(settings, shop, args.providers, watch=args.watch_config))


async def _serve(settings: AgentSettings, shop: ShopConfig, mode: str, *, watch: bool = False) -> int:
    secrets = Secrets.from_env()
    install_log_redaction(secrets)
    metrics = AgentMetrics(shop.store)
    providers = build_providers(shop, mode, metrics, secrets, url_policy=settings.tenant_policy.urls,
                                speech_url=settings.speech_url)
    outbox = await build_outbox(settings, shop, secrets)
    await warm_up(providers, shop.language)
    app = AgentApp(settings, shop, providers, outbox.tools_factory(), on_finished=outbox.on_call_finished,
                   metrics=metrics)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watcher = None
    if watch:
        from storeagent.agent.reload import watch_shop_file

        watcher = asyncio.create_task(watch_shop_file(
            settings.config_path, app, outbox, load_shop,
            lambda s: build_providers(s, mode, metrics, secrets, url_policy=settings.tenant_policy.urls)))
    try:
        await run_until_signalled(app, stop)
    finally:
        if watcher is not None:
            watcher.cancel()
        await outbox.aclose()
    return 0


async def warm_up(providers: ProviderSet, language: str) -> None:
    """Load the speech engines before the agent listens. On a real FreeSWITCH the first call after a start lost
    its audio stream: loading the piper voice held the event loop > 2 s, mod_storeagent's websocket pings went
    unanswered and it handed the call to the dialplan fallback. Every member of a fallback chain is warmed, so a
    call moving to the in-process engines (the speech service died) does not pay their load time mid-turn.
    A failure here only costs the first call that."""
    log = logging.getLogger("storeagent.agent.warmup")
    fmt = AudioFormat(8000)
    for tts_provider in getattr(providers.tts, "providers", [providers.tts]):
        try:
            tts = await tts_provider.open(fmt, language)
            try:
                async for _ in tts.synthesize("OK."):
                    pass
            finally:
                await tts.aclose()
        except Exception as e:  # an engine that cannot load now is retried per call, as before
            log.warning("TTS %s not warmed up: %s", tts_provider.name, e)
    for stt_provider in getattr(providers.stt, "providers", [providers.stt]):
        try:
            stt = await stt_provider.open(fmt, language)
            await stt.aclose()
        except Exception as e:
            log.warning("STT %s not warmed up: %s", stt_provider.name, e)
    # The end-of-turn model (None when not installed): loaded and run once here, not on the first caller's turn.
    await asyncio.to_thread(load_turn_model)


if __name__ == "__main__":
    raise SystemExit(main())
