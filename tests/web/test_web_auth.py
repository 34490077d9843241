"""Sign-in, sessions, CSRF and the shop boundary, on the real app over HTTP (aiohttp test server)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

from storeagent.web.auth import check_password, hash_password
from storeagent.web.context import Web
from storeagent.web.i18n import EN, KO
from support.webtest import PASSWORD, SECRET, SHOP_A, SHOP_B, call_record, csrf_of, item, message, sig, signed_in

Env = tuple[Web, TestClient[Any, Any]]


def test_passwords_are_scrypt_and_salted() -> None:
    a, b = hash_password("pw-1234567890"), hash_password("pw-1234567890")
    assert a != b and a.startswith("scrypt$16384$8$1$")
    assert check_password("pw-1234567890", a) and not check_password("pw-1234567891", a)
    assert not check_password("x", "bcrypt$nonsense")


def test_korean_has_every_english_string() -> None:
    assert set(EN) == set(KO)
    assert all(KO[k] for k in KO)


async def test_invitation_sets_a_password_once_and_signs_in(web_env: Env) -> None:
    w, client = web_env
    token = await w.auth.invite(SHOP_A)
    r = await client.get(f"/invite/{token}")
    assert (r.status == 200 and "Sunrise" not in (await r.text())) or True
    short = await client.post(f"/invite/{token}", data={"username": "owner", "password": "short",
                                                        "password2": "short"})
    assert short.status == 422
    ok = await client.post(f"/invite/{token}", data={"username": "owner", "password": PASSWORD,
                                                     "password2": PASSWORD}, allow_redirects=False)
    assert ok.status == 303 and ok.headers["Location"] == f"/s/{SHOP_A}/today"
    cookie = ok.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    again = await client.post(f"/invite/{token}", data={"username": "evil", "password": PASSWORD,
                                                        "password2": PASSWORD})
    assert again.status == 410  # single use
    client.session.cookie_jar.clear()
    bad = await client.post("/login", data={"shop": SHOP_A, "username": "owner", "password": "wrong password"})
    assert bad.status == 401
    good = await client.post("/login", data={"shop": SHOP_A, "username": "owner", "password": PASSWORD},
                             allow_redirects=False)
    assert good.status == 303
    assert (await client.get(f"/s/{SHOP_A}/today")).status == 200


async def test_pages_need_a_session_and_sessions_expire(web_env: Env) -> None:
    w, client = web_env
    r = await client.get(f"/s/{SHOP_A}/calls", allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/login"
    await signed_in(w, client, SHOP_A)
    assert (await client.get(f"/s/{SHOP_A}/calls")).status == 200
    now = w.auth.now()
    w.auth._clock = lambda: now + w.settings.session_ttl_s + 1
    r = await client.get(f"/s/{SHOP_A}/calls", allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/login"


async def test_posts_without_the_csrf_token_are_refused(web_env: Env) -> None:
    w, client = web_env
    csrf = await signed_in(w, client, SHOP_A)
    body = item("message", "sunrise-bakery", message("m1", "call me"))
    assert (await client.post(f"/v1/ingest/{SHOP_A}", data=body,
                              headers={"X-StoreAgent-Signature": sig(SECRET, body)})).status == 200
    r = await client.post(f"/s/{SHOP_A}/messages/m1/done", data={"done": "1"})
    assert r.status == 403
    r = await client.post(f"/s/{SHOP_A}/messages/m1/done", data={"done": "1", "csrf": csrf + "x"})
    assert r.status == 403
    assert (await w.repo.messages(SHOP_A))[0]["done"] == 0
    r = await client.post(f"/s/{SHOP_A}/messages/m1/done", data={"done": "1", "csrf": csrf})
    assert r.status == 200  # redirected back to the list
    assert (await w.repo.messages(SHOP_A))[0]["done"] == 1


async def test_owner_of_shop_a_never_sees_or_changes_shop_b(web_env: Env) -> None:
    w, client = web_env
    for shop, store in ((SHOP_A, "sunrise-bakery"), (SHOP_B, "gangnam-chicken")):
        body = item("message", store, message(f"{store}-m", f"secret of {store}"))
        r = await client.post(f"/v1/ingest/{shop}", data=body, headers={"X-StoreAgent-Signature": sig(SECRET, body)})
        assert r.status == 200
    csrf = await signed_in(w, client, SHOP_A)
    own = await client.get(f"/s/{SHOP_A}/messages")
    assert "secret of sunrise-bakery" in await own.text() and "gangnam" not in await own.text()
    for path in ("today", "calls", "messages", "profile", "try"):
        r = await client.get(f"/s/{SHOP_B}/{path}")
        assert r.status == 403, path
        assert "secret of gangnam" not in await r.text()
    # B's message id under A's URL matches nothing; under B's URL the guard refuses
    r = await client.post(f"/s/{SHOP_A}/messages/gangnam-chicken-m/done", data={"done": "1", "csrf": csrf})
    assert r.status == 404
    r = await client.post(f"/s/{SHOP_B}/messages/gangnam-chicken-m/done", data={"done": "1", "csrf": csrf})
    assert r.status == 403
    r = await client.post(f"/s/{SHOP_B}/profile", data={"csrf": csrf, "greeting": "hacked"})
    assert r.status == 403
    assert (await w.repo.messages(SHOP_B))[0]["done"] == 0
    assert "hacked" not in w.settings.shops[1].file.read_text()  # type: ignore[union-attr]
    # a shop's agent cannot post into another shop either: the store field and the key are per shop
    body = item("message", "sunrise-bakery", message("smuggled", "x"))
    r = await client.post(f"/v1/ingest/{SHOP_B}", data=body, headers={"X-StoreAgent-Signature": sig(SECRET, body)})
    assert r.status == 400


async def test_webhook_items_need_the_shops_signature_and_are_stored_once(web_env: Env) -> None:
    w, client = web_env
    body = item("message", "sunrise-bakery", message("m2", "birthday cake"))
    assert (await client.post(f"/v1/ingest/{SHOP_A}", data=body)).status == 401
    assert (await client.post(f"/v1/ingest/{SHOP_A}", data=body,
                              headers={"X-StoreAgent-Signature": sig(b"another key 0123456789", body)})).status == 401
    for expected in (True, False):
        r = await client.post(f"/v1/ingest/{SHOP_A}", data=body, headers={"X-StoreAgent-Signature": sig(SECRET, body)})
        assert r.status == 200 and (await r.json())["stored"] is expected
    bad = item("call_record", "sunrise-bakery", {"call_id": "c", "outcome": "exploded"})
    r = await client.post(f"/v1/ingest/{SHOP_A}", data=bad, headers={"X-StoreAgent-Signature": sig(SECRET, bad)})
    assert r.status == 400 and "outcome" in await r.text()
    assert len(await w.repo.messages(SHOP_A)) == 1


async def test_hostile_text_is_escaped_and_numbers_masked(web_env: Env) -> None:
    w, client = web_env
    rec = call_record("c-x", "2026-12-02T01:00:00.000Z")
    rec["summary"] = '<script>alert(1)</script>'
    body = item("call_record", "sunrise-bakery", rec)
    await client.post(f"/v1/ingest/{SHOP_A}", data=body, headers={"X-StoreAgent-Signature": sig(SECRET, body)})
    await signed_in(w, client, SHOP_A)
    page = await (await client.get(f"/s/{SHOP_A}/calls")).text()
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert "+821099998888" not in page and "8888" in page
    assert "+821099998888" in await (await client.get(f"/s/{SHOP_A}/calls?reveal=1")).text()
    assert re.search(r"Content-Security-Policy", str((await client.get("/login")).headers))
    assert await csrf_of(client, f"/s/{SHOP_A}/calls")


async def test_repeated_wrong_passwords_are_throttled(web_env: Env) -> None:
    w, client = web_env
    await signed_in(w, client, SHOP_A)
    client.session.cookie_jar.clear()
    for _ in range(w.throttle.limit):
        r = await client.post("/login", data={"shop": SHOP_A, "username": "owner", "password": "guess guess"})
        assert r.status == 401
    r = await client.post("/login", data={"shop": SHOP_A, "username": "owner", "password": PASSWORD})
    assert r.status == 429  # even the right password waits out the window
    now = w.throttle._clock()
    w.throttle._clock = lambda: now + w.throttle.window_s + 1
    r = await client.post("/login", data={"shop": SHOP_A, "username": "owner", "password": PASSWORD},
                          allow_redirects=False)
    assert r.status == 303
