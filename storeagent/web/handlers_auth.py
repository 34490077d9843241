"""Sign-in, invitations, sign-out and the language switch."""

from __future__ import annotations

import re

from aiohttp import web

from storeagent.web.auth import PASSWORD_MAX, PASSWORD_MIN, USERNAME_RE
from storeagent.web.context import LANG_COOKIE, SESSION_COOKIE, ctx, lang_of, session_of, tr
from storeagent.web.html import esc, field, notice, page
from storeagent.web.i18n import LANGS

routes = web.RouteTableDef()

def _set_session(request: web.Request, resp: web.StreamResponse, sid: str) -> None:
    s = ctx(request).settings
    resp.set_cookie(SESSION_COOKIE, sid, max_age=int(s.session_ttl_s), httponly=True, samesite="Lax",
                    secure=s.secure_cookies, path="/")

def _login_page(request: web.Request, error: str = "", shop: str = "", username: str = "",
                status: int | None = None) -> web.Response:
    t = tr(request)
    body = (notice(error, "error") if error else "") + f"""<form method="post" action="/login" class="card narrow">
{field(t("shop_id"), "shop", shop, required=True, autocomplete="organization", autocapitalize="none")}
{field(t("username"), "username", username, required=True, autocomplete="username", autocapitalize="none")}
{field(t("password"), "password", type_="password", required=True, autocomplete="current-password")}
<button class="primary">{esc(t("signin"))}</button></form>"""
    status = status or (401 if error else 200)
    return web.Response(text=page(t, lang_of(request), t("signin_title"), body, path="/login"),
                        content_type="text/html", status=status)

@routes.get("/")
async def root(request: web.Request) -> web.StreamResponse:
    s = session_of(request)
    raise web.HTTPSeeOther(f"/s/{s.shop}/today" if s else "/login")

@routes.get("/login")
async def login_form(request: web.Request) -> web.StreamResponse:
    return _login_page(request)

@routes.post("/login")
async def login(request: web.Request) -> web.StreamResponse:
    w, t = ctx(request), tr(request)
    form = await request.post()
    shop, user, pw = (str(form.get(k, ""))[:PASSWORD_MAX] for k in ("shop", "username", "password"))
    keys = (f"user:{shop.strip()}/{user.strip()}"[:200], f"addr:{request.remote}")
    if w.throttle.blocked(*keys):
        w.metrics.signins.labels("throttled").inc()
        return _login_page(request, t("signin_throttled"), shop, user, status=429)
    owner = await w.auth.sign_in(shop.strip(), user.strip(), pw) if w.settings.shop(shop.strip()) else None
    w.metrics.signins.labels("ok" if owner else "refused").inc()
    if owner is None:
        w.throttle.failed(*keys)
        return _login_page(request, t("signin_failed"), shop, user)
    w.throttle.succeeded(keys[0])
    resp = web.HTTPSeeOther(f"/s/{shop.strip()}/today")
    _set_session(request, resp, await w.auth.start_session(owner))
    raise resp

@routes.post("/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    sid = request.cookies.get(SESSION_COOKIE)
    if sid:
        await ctx(request).auth.end_session(sid)
    resp = web.HTTPSeeOther("/login")
    resp.del_cookie(SESSION_COOKIE, path="/")
    raise resp

def _invite_page(request: web.Request, token: str, shop: str, errors: dict[str, str], username: str = "",
                 status: int = 200) -> web.Response:
    t = tr(request)
    body = f"""<p>{esc(t("invite_intro", shop=shop))}</p>
<form method="post" action="/invite/{esc(token)}" class="card narrow">
{field(t("username"), "username", username, required=True, autocomplete="username", hint=t("username_bad"),
       error=errors.get("username", ""), autocapitalize="none")}
{field(t("password"), "password", type_="password", required=True, autocomplete="new-password",
       hint=t("password_rule"), error=errors.get("password", ""), minlength=PASSWORD_MIN)}
{field(t("password_again"), "password2", type_="password", required=True, autocomplete="new-password",
       error=errors.get("password2", ""))}
<button class="primary">{esc(t("save_password"))}</button></form>"""
    return web.Response(text=page(t, lang_of(request), t("invite_title"), body, path=request.path),
                        content_type="text/html", status=status)

def _bad_invite(request: web.Request) -> web.Response:
    t = tr(request)
    return web.Response(text=page(t, lang_of(request), t("invite_title"), notice(t("invite_bad"), "error")),
                        content_type="text/html", status=410)

@routes.get("/invite/{token}")
async def invite_form(request: web.Request) -> web.StreamResponse:
    token = request.match_info["token"][:100]
    shop = await ctx(request).auth.invite_shop(token)
    return _invite_page(request, token, shop, {}) if shop else _bad_invite(request)

@routes.post("/invite/{token}")
async def invite_accept(request: web.Request) -> web.StreamResponse:
    w, t = ctx(request), tr(request)
    token = request.match_info["token"][:100]
    shop = await w.auth.invite_shop(token)
    if shop is None:
        return _bad_invite(request)
    form = await request.post()
    user = str(form.get("username", "")).strip()[:64]
    pw, pw2 = str(form.get("password", ""))[:PASSWORD_MAX], str(form.get("password2", ""))[:PASSWORD_MAX]
    errors = {}
    if not re.fullmatch(USERNAME_RE, user):
        errors["username"] = t("username_bad")
    if len(pw) < PASSWORD_MIN:
        errors["password"] = t("pw_short")
    elif pw != pw2:
        errors["password2"] = t("pw_mismatch")
    if errors:
        return _invite_page(request, token, shop, errors, user, status=422)
    owner = await w.auth.accept_invite(token, user, pw)
    if owner is None:
        return _bad_invite(request)
    resp = web.HTTPSeeOther(f"/s/{shop}/today")
    _set_session(request, resp, await w.auth.start_session(owner))
    raise resp

@routes.get("/lang/{lang}")
async def set_lang(request: web.Request) -> web.StreamResponse:
    lang = request.match_info["lang"]
    nxt = request.query.get("next", "/")
    if not nxt.startswith("/") or nxt.startswith("//") or "\\" in nxt:  # no open redirect
        nxt = "/"
    resp = web.HTTPSeeOther(nxt)
    if lang in LANGS:
        resp.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="Lax", path="/")
    raise resp

