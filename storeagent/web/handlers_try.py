""""Try it": a browser test call to the shop's agent.

The browser never talks to the agent: it opens `/s/<shop>/try/ws` on this origin (session cookie, Origin
checked: a websocket is not covered by SameSite or a CSRF field), and this service opens the agent's audio
websocket for it, `ws://<agent>/v1/calls/web-<random>/audio`, with a stream token it mints with the agents' key
(the same `sa1` HMAC scheme as FreeSWITCH's, agent/transport/tokens.py). The agent runs a websocket-only
session for `web-` uuids (no ESL). Frames are relayed as they come, both ways: 20 ms L16 uplink, speech,
`clear` and marks downlink, mark reports uplink.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from urllib.parse import urlsplit

import aiohttp
from aiohttp import WSMsgType, web

from storeagent.agent.transport.tokens import StreamTokens
from storeagent.web.context import ctx, lang_of, session_of, tr
from storeagent.web.html import esc, notice, page
from storeagent.web.shops import ShopRef

routes = web.RouteTableDef()
SAMPLE_RATE = 16000
MAX_MSG = 64 * 1024
WEB_UUID_PREFIX = "web-"



@routes.get("/s/{shop}/try")
async def try_page(request: web.Request) -> web.StreamResponse:
    t, w = tr(request), ctx(request)
    s = session_of(request)
    assert s is not None
    entry = w.settings.shop(s.shop)
    doc = await w.shops.read(ShopRef.parse(s.shop))
    name = str(doc.spec.get("profile", {}).get("name", s.shop))
    ready = entry is not None and bool(entry.agent_url) and w.settings.stream_token_key is not None
    strings = {k: t(k) for k in ("try_start", "try_stop", "try_idle", "try_connecting", "try_live", "try_ended",
                                 "try_nomic", "role_caller", "role_agent")}
    body = f"""<p>{esc(t("try_intro"))}</p>
{"" if ready else notice(t("try_unavailable"), "error")}
<section class="card try" id="try" data-ws="/s/{esc(s.shop)}/try/ws" data-strings="{esc(json.dumps(strings))}"
 data-calls="/s/{esc(s.shop)}/calls">
<div class="call-controls"><button class="primary big" id="try-start"{"" if ready else " disabled"}>
{esc(t("try_start"))}</button><button class="danger big" id="try-stop" disabled>{esc(t("try_stop"))}</button></div>
<p id="try-state" role="status" aria-live="polite">{esc(t("try_idle"))}</p>
<div class="meter" aria-hidden="true"><span id="try-level"></span></div></section>
<section aria-labelledby="h-live"><h2 id="h-live">{esc(t("live_transcript"))}</h2>
<ol id="try-transcript" class="transcript" aria-live="polite"></ol></section>"""
    html = page(t, lang_of(request), t("try_title"), body, shop=s.shop, shop_name=name, active="try",
                csrf=s.csrf, scripts=("try.js",), path=request.path)
    return web.Response(text=html, content_type="text/html")


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin", "")
    o = urlsplit(origin)
    return bool(origin) and o.netloc == request.host


@routes.get("/s/{shop}/try/ws")
async def try_ws(request: web.Request) -> web.StreamResponse:
    w = ctx(request)
    s = session_of(request)
    assert s is not None
    if not _same_origin(request):
        w.metrics.denied.labels("ws_origin").inc()
        raise web.HTTPForbidden(text="cross-origin websocket refused\n")
    entry = w.settings.shop(s.shop)
    if entry is None or not entry.agent_url or w.settings.stream_token_key is None:
        raise web.HTTPServiceUnavailable(text="test calls are not configured for this shop\n")
    uuid = WEB_UUID_PREFIX + secrets.token_hex(16)
    token = StreamTokens(w.settings.stream_token_key).mint(uuid)
    url = entry.agent_url.rstrip("/").replace("http", "ws", 1) + f"/v1/calls/{uuid}/audio"
    browser = web.WebSocketResponse(max_msg_size=MAX_MSG, heartbeat=20)
    await browser.prepare(request)
    async with aiohttp.ClientSession() as http:
        try:
            agent = await http.ws_connect(url, headers={"Authorization": f"Bearer {token}"},
                                          max_msg_size=MAX_MSG, timeout=aiohttp.ClientWSTimeout(ws_close=2))
        except (aiohttp.ClientError, OSError) as e:
            await browser.send_json({"type": "error", "detail": f"agent unreachable: {type(e).__name__}"})
            await browser.close()
            return browser
        await agent.send_json({"type": "start", "uuid": uuid, "sample_rate": SAMPLE_RATE, "encoding": "L16",
                               "channels": 1})
        await browser.send_json({"type": "started", "call_id": uuid, "sample_rate": SAMPLE_RATE})
        await _relay(browser, agent)
    return browser


async def _relay(browser: web.WebSocketResponse, agent: aiohttp.ClientWebSocketResponse) -> None:
    async def up() -> None:
        async for msg in browser:
            if msg.type is WSMsgType.BINARY:
                await agent.send_bytes(msg.data)
            elif msg.type is WSMsgType.TEXT:
                await agent.send_str(msg.data)

    async def down() -> None:
        async for msg in agent:
            if msg.type is WSMsgType.BINARY:
                await browser.send_bytes(msg.data)
            elif msg.type is WSMsgType.TEXT:
                await browser.send_str(msg.data)

    tasks = [asyncio.create_task(up()), asyncio.create_task(down())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await agent.close()
        with contextlib.suppress(Exception):
            await browser.close()
