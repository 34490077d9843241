"""`storeagent web serve|invite`: the owner's web page (composition root)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from aiohttp import web
from pydantic import ValidationError

from storeagent.web.app import build_app
from storeagent.web.auth import Auth
from storeagent.web.context import Web, WebMetrics
from storeagent.web.db import open_database
from storeagent.web.repo import Repo
from storeagent.web.settings import ShopEntry, WebSettings
from storeagent.web.shops import FileShops, KubeShops, ShopRef, Shops

log = logging.getLogger("storeagent.web")


def _pairs(values: list[str], what: str) -> dict[str, str]:
    out = {}
    for v in values:
        key, sep, val = v.partition("=")
        if not sep or not val:
            raise SystemExit(f"storeagent web: {what} {v!r}: expected SHOP=VALUE")
        out[key] = val
    return out


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="storeagent web", description="The shop owner's web page.")
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("serve", "invite"):
        s = sub.add_parser(name)
        s.add_argument("--db", default=os.environ.get("STOREAGENT_WEB_DATABASE", "data/web.sqlite"),
                       help="SQLite path or postgresql:// URL ($STOREAGENT_WEB_DATABASE)")
        s.add_argument("--shop", action="append", default=[], metavar="NAMESPACE.NAME[=FILE]",
                       help="a shop this service serves; =FILE: its StoreAgent manifest on disk (no cluster)")
        s.add_argument("--public-url", default=os.environ.get("STOREAGENT_WEB_PUBLIC_URL", "http://127.0.0.1:8090"))
    serve = sub.choices["serve"]
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8090)
    serve.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG", ""),
                       help="for StoreAgents on an API server; empty: the in-cluster ServiceAccount")
    serve.add_argument("--webhook-secret-file", action="append", default=[], metavar="SHOP=FILE")
    serve.add_argument("--agent", action="append", default=[], metavar="SHOP=URL",
                       help="the shop's agent (http://host:port) for browser test calls")
    serve.add_argument("--stream-token-key-file", type=Path,
                       default=os.environ.get("STOREAGENT_STREAM_TOKEN_KEY_FILE") or None)
    serve.add_argument("--insecure-cookies", action="store_true", help="plain-http local runs only")
    serve.add_argument("--allow-unsigned-webhooks", action="store_true", help="demo only")
    return p.parse_args(argv)


def settings_from(args: argparse.Namespace) -> WebSettings:
    shops = _pairs([s if "=" in s else s + "=-" for s in args.shop], "--shop")
    secrets = _pairs(getattr(args, "webhook_secret_file", []), "--webhook-secret-file")
    agents = _pairs(getattr(args, "agent", []), "--agent")
    entries = []
    for shop_id, file in shops.items():
        secret = Path(secrets[shop_id]).read_bytes().strip() if shop_id in secrets else None
        entries.append(ShopEntry(ref=ShopRef.parse(shop_id), file=None if file == "-" else Path(file),
                                 webhook_secret=secret, agent_url=agents.get(shop_id, "")))
    key_file = getattr(args, "stream_token_key_file", None)
    return WebSettings(
        host=getattr(args, "host", "0.0.0.0"), port=getattr(args, "port", 8090), database=args.db,
        kubeconfig=getattr(args, "kubeconfig", ""), shops=tuple(entries), public_url=args.public_url.rstrip("/"),
        secure_cookies=not getattr(args, "insecure_cookies", False),
        allow_unsigned_webhooks=getattr(args, "allow_unsigned_webhooks", False),
        stream_token_key=Path(key_file).read_bytes().strip() if key_file else None)


def build_shops(settings: WebSettings) -> Shops:
    files = {s.ref.id: s.file for s in settings.shops if s.file is not None}
    if files and len(files) == len(settings.shops):
        return FileShops(files)
    if files:
        raise SystemExit("storeagent web: either every --shop has a FILE or none has (one backend per process)")
    return KubeShops(settings.kubeconfig)


async def build_web(settings: WebSettings) -> Web:
    db = await open_database(settings.database)
    auth = Auth(db, session_ttl_s=settings.session_ttl_s, invite_ttl_s=settings.invite_ttl_s)
    return Web(settings, db, auth, Repo(db), build_shops(settings), WebMetrics())


async def _serve(settings: WebSettings) -> int:
    w = await build_web(settings)
    runner = web.AppRunner(build_app(w), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.port).start()
    log.info("owner web on %s:%d for %d shops", settings.host, settings.port, len(settings.shops))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    await w.db.close()
    return 0


async def _invite(settings: WebSettings, shop: str) -> int:
    db = await open_database(settings.database)
    try:
        token = await Auth(db, session_ttl_s=settings.session_ttl_s, invite_ttl_s=settings.invite_ttl_s).invite(shop)
    finally:
        await db.close()
    print(f"{settings.public_url}/invite/{token}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = settings_from(args)
    except (ValidationError, ValueError, OSError) as e:
        print(f"storeagent web: invalid settings: {e}", file=sys.stderr)
        return 2
    if args.cmd == "invite":
        if len(settings.shops) != 1:
            print("storeagent web invite: name exactly one --shop", file=sys.stderr)
            return 2
        return asyncio.run(_invite(settings, settings.shops[0].ref.id))
    return asyncio.run(_serve(settings))


if __name__ == "__main__":
    raise SystemExit(main())
