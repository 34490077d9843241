"""`make demo-web`: the owner's page for the example shop on the embedded defaults, no keys.

- No cluster (default): SQLite, the shop file `out/demo-web/sunrise-bakery.yaml` (a copy of the example), and a
  local agent on offline providers that reads that file and reloads it (`--watch-config`) — an edit on the
  page is what the next call hears. "Try it" calls that agent; its call records and messages come back over
  the signed webhook.
- With `make cluster` running (out/cluster/admin.kubeconfig answers): edits go to the StoreAgent
  `default/sunrise-bakery` on the local control plane instead (kwok pods run nothing, so "Try it" still calls
  the local agent, which keeps reading the local file).
Ports 18080 (agent http), 18084 (agent ESL) and 18090 (the page) on 127.0.0.1; `--port` moves the page.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from storeagent.web.__main__ import _serve, build_web
from storeagent.web.settings import ShopEntry, WebSettings
from storeagent.web.shops import ShopRef

REPO = Path(__file__).resolve().parents[2]


def _cluster_kubeconfig() -> Path | None:
    kc = REPO / "out" / "cluster" / "admin.kubeconfig"
    if not kc.exists():
        return None
    try:
        doc = yaml.safe_load(kc.read_text())
        server = doc["clusters"][0]["cluster"]["server"]
        import ssl

        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # only asking "is it up?"
        urllib.request.urlopen(server + "/livez", timeout=2, context=ctx).close()
    except Exception:
        return None
    return kc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="storeagent web demo")
    p.add_argument("--manifest", type=Path, default=REPO / "examples" / "sunrise-bakery.yaml")
    p.add_argument("--port", type=int, default=18090)
    p.add_argument("--agent-port", type=int, default=18080)
    a = p.parse_args(argv)
    out = REPO / "out" / "demo-web"
    out.mkdir(parents=True, exist_ok=True)
    shop_file = out / a.manifest.name
    key, hook = out / "stream-token.key", out / "webhook.secret"
    for f in (key, hook):
        if not f.exists():
            f.write_text(secrets.token_hex(32))
    doc = yaml.safe_load((shop_file if shop_file.exists() else a.manifest).read_text())
    name = doc["metadata"]["name"]
    kube = _cluster_kubeconfig()
    shop_id = f"default.{name}" if kube else f"local.{name}"
    page = f"http://127.0.0.1:{a.port}"
    doc["spec"]["webhook"] = {"url": f"{page}/v1/ingest/{shop_id}"}
    shop_file.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
    env = {**os.environ, "STOREAGENT_WEB_SESSIONS": "1", "STOREAGENT_STREAM_TOKEN_KEY_FILE": str(key),
           "STOREAGENT_WEBHOOK_SECRET_FILE": str(hook), "STOREAGENT_DATA_DIR": str(out / "agent-data"),
           "STOREAGENT_TENANT_POLICY": json.dumps({"urls": {"allowHttp": True, "allowCidrs": ["127.0.0.0/8"]}})}
    agent_log = open(out / "agent.log", "ab")
    agent = subprocess.Popen([str(Path(sys.executable).parent / "storeagent"), "agent", "serve", "--config",
                              str(shop_file), "--host", "127.0.0.1", "--http-port", str(a.agent_port),
                              "--esl-port", str(a.agent_port + 4), "--providers", "offline", "--log-format", "text",
                              "--watch-config"], env=env, stdout=agent_log, stderr=subprocess.STDOUT)
    settings = WebSettings(
        host="127.0.0.1", port=a.port, database=str(out / "web.sqlite"), kubeconfig=str(kube or ""),
        secure_cookies=False, public_url=page, stream_token_key=key.read_bytes().strip(),
        shops=(ShopEntry(ref=ShopRef.parse(shop_id), file=None if kube else shop_file,
                         webhook_secret=hook.read_bytes().strip(), agent_url=f"http://127.0.0.1:{a.agent_port}"),))
    try:
        link = asyncio.run(_invite_link(settings, shop_id))
        where = f"the StoreAgent default/{name} on the local control plane" if kube else str(shop_file)
        print(f"""
StoreAgent owner page for {name}: {page}
  set your password (one-time link): {link}
  sign in afterwards with shop {shop_id}
  profile edits go to {where}
  agent log: {out / 'agent.log'}   Ctrl-C stops both.
""", flush=True)
        return asyncio.run(_serve(settings))
    finally:
        agent.terminate()
        try:
            agent.wait(15)
        except subprocess.TimeoutExpired:
            agent.kill()
        time.sleep(0)


async def _invite_link(settings: WebSettings, shop_id: str) -> str:
    w = await build_web(settings)
    try:
        return f"{settings.public_url}/invite/{await w.auth.invite(shop_id)}"
    finally:
        await w.db.close()


if __name__ == "__main__":
    raise SystemExit(main())
