"""The web application: routes, the guard middleware (session, shop boundary, CSRF), security headers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from storeagent.web import handlers_auth, handlers_shop, handlers_try, ingest
from storeagent.web.auth import csrf_ok
from storeagent.web.context import LANG_COOKIE, SESSION_COOKIE, WEB_KEY, Web, ctx
from storeagent.web.html import notice, page
from storeagent.web.i18n import pick_lang, translator
from storeagent.web.shops import ShopGone

STATIC = Path(__file__).parent / "static"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# No inline script or style anywhere, so the policy can forbid them; the agent's audio goes over our own origin.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "media-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def _route_class(path: str) -> str:
    return path.split("/")[3] if path.startswith("/s/") and path.count("/") >= 3 else path.split("/")[1] or "root"


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    w = ctx(request)
    request["lang"] = pick_lang(request.cookies.get(LANG_COOKIE), request.headers.get("Accept-Language", ""))
    t = request["t"] = translator(request["lang"])
    request["session"] = session = await w.auth.session(request.cookies.get(SESSION_COOKIE))
    path = request.path
    if path.startswith("/s/") or path == "/logout":
        if session is None:
            if request.method == "GET":
                raise web.HTTPSeeOther("/login")
            w.metrics.denied.labels("no_session").inc()
            raise web.HTTPUnauthorized(text="sign in first\n")
        shop = path.split("/")[2] if path.startswith("/s/") else session.shop
        if shop != session.shop:
            w.metrics.denied.labels("other_shop").inc()
            text = page(t, request["lang"], t("forbidden"), notice(t("forbidden"), "error"), shop=session.shop,
                        csrf=session.csrf)
            return web.Response(text=text, content_type="text/html", status=403)
        if request.method != "GET":
            presented = request.headers.get("X-CSRF-Token")
            if presented is None and request.content_type in ("application/x-www-form-urlencoded",
                                                               "multipart/form-data"):
                presented = str((await request.post()).get("csrf", "")) or None
            if not csrf_ok(session, presented):
                w.metrics.denied.labels("csrf").inc()
                return web.Response(text=page(t, request["lang"], t("csrf"), notice(t("csrf"), "error")),
                                    content_type="text/html", status=403)
    try:
        return await handler(request)
    except ShopGone:
        raise web.HTTPNotFound(text="no such shop\n") from None


@web.middleware
async def headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    status = 500
    try:
        resp = await handler(request)
        status = resp.status
    except web.HTTPException as e:
        status = e.status
        e.headers.update(_security_headers(request))
        raise
    finally:
        ctx(request).metrics.requests.labels(_route_class(request.path), f"{status // 100}xx").inc()
    resp.headers.update(_security_headers(request))
    return resp


def _security_headers(request: web.Request) -> dict[str, str]:
    h = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "Content-Security-Policy": CSP,
         "Permissions-Policy": "microphone=(self), camera=(), geolocation=()"}
    if not request.path.startswith("/static/"):
        h["Cache-Control"] = "no-store"  # pages hold callers' data
    return h


async def _metrics(request: web.Request) -> web.Response:
    body = generate_latest(ctx(request).metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _healthz(_: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def build_app(w: Web) -> web.Application:
    app = web.Application(middlewares=[headers, guard], client_max_size=2 * 1024 * 1024)
    app[WEB_KEY] = w
    app.add_routes(handlers_auth.routes)
    app.add_routes(handlers_shop.routes)
    app.add_routes(handlers_try.routes)
    app.add_routes(ingest.routes)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    app.router.add_static("/static/", STATIC)
    return app
