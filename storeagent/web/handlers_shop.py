"""The owner's pages of one shop: /s/<shop>/today|calls|messages|profile. The middleware has already checked
the session, that it is this shop's, and the CSRF token of every POST (app.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import ValidationError

from storeagent.web import view_calls, view_profile
from storeagent.web.context import ctx, lang_of, session_of, tr
from storeagent.web.forms import apply_form, errors_by_field, toggle_sold_out
from storeagent.web.html import notice, page
from storeagent.web.repo import day_range
from storeagent.web.shops import Conflict, ShopDoc, ShopRef

routes = web.RouteTableDef()


async def _doc(request: web.Request) -> tuple[ShopRef, ShopDoc]:
    ref = ShopRef.parse(request.match_info["shop"])
    return ref, await ctx(request).shops.read(ref)


def _tz(doc: ShopDoc) -> str:
    tz = doc.spec.get("profile", {}).get("timezone", "UTC")
    try:
        ZoneInfo(tz)
    except (ValueError, KeyError):
        return "UTC"
    return str(tz)


def _render(request: web.Request, doc: ShopDoc, title: str, body: str, active: str, status: int = 200,
            scripts: tuple[str, ...] = ()) -> web.Response:
    s = session_of(request)
    assert s is not None
    html = page(tr(request), lang_of(request), title, body, shop=s.shop, active=active, csrf=s.csrf,
                shop_name=str(doc.spec.get("profile", {}).get("name", s.shop)), scripts=scripts,
                path=request.path_qs)
    return web.Response(text=html, content_type="text/html", status=status)


@routes.get("/s/{shop}/today")
async def today(request: web.Request) -> web.StreamResponse:
    w, t = ctx(request), tr(request)
    ref, doc = await _doc(request)
    tz = _tz(doc)
    span = day_range(datetime.now(ZoneInfo(tz)).date().isoformat(), tz)
    assert span is not None
    counts = await w.repo.counts(ref.id, span)
    calls = await w.repo.calls(ref.id, span=span)
    msgs = await w.repo.messages(ref.id, status="open")
    s = session_of(request)
    assert s is not None
    body = view_calls.today(t, ref.id, counts, calls[:10], msgs[:10], tz, s.csrf)
    return _render(request, doc, t("today_title"), body, "today")


@routes.get("/s/{shop}/calls")
async def calls(request: web.Request) -> web.StreamResponse:
    w, t = ctx(request), tr(request)
    ref, doc = await _doc(request)
    q, day, outcome = (request.query.get(k, "")[:100] for k in ("q", "day", "outcome"))
    tz = _tz(doc)
    rows = await w.repo.calls(ref.id, q=q, outcome=outcome, span=day_range(day, tz) if day else None)
    reveal = request.query.get("reveal") == "1"
    body = view_calls.filters(t, request.path, q, day, view_calls.outcome_select(t, outcome)) \
        + view_calls.calls_list(t, rows, tz, reveal)
    return _render(request, doc, t("calls_title"), body, "calls")


@routes.get("/s/{shop}/messages")
async def messages(request: web.Request) -> web.StreamResponse:
    w, t = ctx(request), tr(request)
    ref, doc = await _doc(request)
    q, day, status = (request.query.get(k, "")[:100] for k in ("q", "day", "status"))
    tz = _tz(doc)
    rows = await w.repo.messages(ref.id, q=q, status=status, span=day_range(day, tz) if day else None)
    s = session_of(request)
    assert s is not None
    body = view_calls.filters(t, request.path, q, day, view_calls.status_select(t, status)) \
        + view_calls.messages_list(t, ref.id, rows, tz, s.csrf)
    return _render(request, doc, t("messages_title"), body, "messages")


@routes.post("/s/{shop}/messages/{id}/done")
async def mark_done(request: web.Request) -> web.StreamResponse:
    w = ctx(request)
    ref = ShopRef.parse(request.match_info["shop"])
    form = await request.post()
    if not await w.repo.set_done(ref.id, request.match_info["id"][:64], form.get("done") == "1"):
        raise web.HTTPNotFound(text="no such message\n")
    back = request.headers.get("Referer", "")
    raise web.HTTPSeeOther(back if back.startswith(w.settings.public_url) else f"/s/{ref.id}/messages")


def _status(request: web.Request, doc: ShopDoc) -> str:
    t = tr(request)
    kind = "error" if doc.live == "failed" else "ok"
    return notice(t(f"live_{doc.live}", detail=doc.detail or "?"), kind)


def _profile_page(request: web.Request, doc: ShopDoc, spec: dict[str, Any], errors: dict[str, str],
                  head: str, status: int = 200) -> web.Response:
    s = session_of(request)
    assert s is not None
    t = tr(request)
    body = view_profile.profile_form(t, s.shop, spec, doc.version, s.csrf, errors, head)
    return _render(request, doc, t("profile_title"), body, "profile", status)


@routes.get("/s/{shop}/profile")
async def profile(request: web.Request) -> web.StreamResponse:
    _, doc = await _doc(request)
    saved = request.query.get("saved") == "1"
    # After a save the live state says "Saved — ..." itself; the local file has no state to show otherwise.
    head = _status(request, doc) if saved or doc.live != "local" else ""
    return _profile_page(request, doc, doc.spec, {}, head)


async def _save(request: web.Request, new_spec: dict[str, Any], version: str) -> web.StreamResponse:
    w, t = ctx(request), tr(request)
    ref, doc = await _doc(request)
    try:
        await w.shops.write(ref, new_spec, version)
    except ValidationError as e:
        w.metrics.profile_writes.labels("invalid").inc()
        return _profile_page(request, doc, new_spec, errors_by_field(e), "", status=422)
    except Conflict:
        w.metrics.profile_writes.labels("conflict").inc()
        _, fresh = await _doc(request)
        return _profile_page(request, fresh, fresh.spec, {}, notice(t("conflict"), "error"), status=409)
    w.metrics.profile_writes.labels("ok").inc()
    raise web.HTTPSeeOther(f"/s/{ref.id}/profile?saved=1")


@routes.post("/s/{shop}/profile")
async def save_profile(request: web.Request) -> web.StreamResponse:
    form = {k: str(v) for k, v in (await request.post()).items()}
    _, doc = await _doc(request)
    return await _save(request, apply_form(doc.spec, form), form.get("version", ""))


@routes.post("/s/{shop}/profile/menu/{index:[0-9]{1,3}}/toggle")
async def toggle(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    _, doc = await _doc(request)
    try:
        new = toggle_sold_out(doc.spec, int(request.match_info["index"]))
    except IndexError:
        raise web.HTTPNotFound(text="no such menu item\n") from None
    return await _save(request, new, str(form.get("version", "")))
