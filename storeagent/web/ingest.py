"""`POST /v1/ingest/<shop>`: the shop's agent delivers its webhook items here (docs/webhooks.md).

The signature (`X-StoreAgent-Signature: sha256=<HMAC of the raw body>`, the shop's own key) is checked on the
exact bytes before parsing; 401 for a bad or missing one (the deliverer keeps such items as dead, visible in
its metrics). A repeat of a delivered item answers 200 without storing again (Idempotency-Key semantics).
"""

from __future__ import annotations

import hashlib
import hmac
import json

from aiohttp import web

from storeagent.web.context import ctx
from storeagent.web.repo import BadItem

routes = web.RouteTableDef()
MAX_BODY = 1024 * 1024  # a call record with a long transcript is tens of KB


def signature_ok(secret: bytes, body: bytes, header: str | None) -> bool:
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    return header is not None and hmac.compare_digest(expected.encode(), header.encode("utf-8", "replace"))


@routes.post("/v1/ingest/{shop}")
async def ingest(request: web.Request) -> web.StreamResponse:
    w = ctx(request)
    entry = w.settings.shop(request.match_info["shop"])
    if entry is None:
        w.metrics.ingested.labels("unknown_shop").inc()
        raise web.HTTPNotFound(text="unknown shop\n")
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=request.content_length)
    body = await request.content.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=len(body))
    sig = request.headers.get("X-StoreAgent-Signature")
    if entry.webhook_secret is not None:
        if not signature_ok(entry.webhook_secret, body, sig):
            w.metrics.ingested.labels("bad_signature").inc()
            raise web.HTTPUnauthorized(text="bad signature\n")
    elif not w.settings.allow_unsigned_webhooks:
        w.metrics.ingested.labels("no_secret").inc()
        raise web.HTTPUnauthorized(text="no webhook secret configured for this shop\n")
    try:
        item = json.loads(body)
        if not isinstance(item, dict):
            raise BadItem("body: expected a JSON object")
        new = await _store(request, entry.ref.id, entry.ref.name, item)
    except (ValueError, BadItem) as e:
        w.metrics.ingested.labels("bad_item").inc()
        raise web.HTTPBadRequest(text=f"{e}\n") from None
    w.metrics.ingested.labels("new" if new else "repeat").inc()
    return web.json_response({"stored": new})


async def _store(request: web.Request, shop_id: str, store_name: str, item: dict[str, object]) -> bool:
    # Items name the StoreAgent (`store`); the database keys rows by the web's shop id (namespace.name).
    if item.get("store") != store_name:
        raise BadItem(f"store: {str(item.get('store'))[:64]!r} is not this endpoint's shop")
    return await ctx(request).repo.ingest(shop_id, {**item, "store": shop_id})
