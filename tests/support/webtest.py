"""Small helpers shared by the web tests: sign an owner in, post webhook items, read CSRF tokens."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import shutil
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from storeagent.web.context import Web
from storeagent.web.settings import ShopEntry, WebSettings
from storeagent.web.shops import ShopRef

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "sunrise-bakery.yaml"
KO_EXAMPLE = ROOT / "examples" / "gangnam-chicken.yaml"
SHOP_A, SHOP_B = "shops.sunrise-bakery", "shops.gangnam-chicken"
SECRET = b"test-webhook-secret-0123456789"
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def file_settings(tmp: Path, database: str | None = None) -> WebSettings:
    a, b = tmp / "sunrise-bakery.yaml", tmp / "gangnam-chicken.yaml"
    shutil.copy(EXAMPLE, a)
    shutil.copy(KO_EXAMPLE, b)
    return WebSettings(
        database=database or str(tmp / "web.sqlite"), secure_cookies=False, public_url="http://127.0.0.1",
        shops=(ShopEntry(ref=ShopRef.parse(SHOP_A), file=a, webhook_secret=SECRET),
               ShopEntry(ref=ShopRef.parse(SHOP_B), file=b, webhook_secret=SECRET)))


PASSWORD = "correct horse battery"


async def signed_in(w: Web, client: TestClient[Any, Any], shop: str, username: str = "owner") -> str:
    """Accept an invitation for `shop` as `username`; returns the page's CSRF token."""
    token = await w.auth.invite(shop)
    r = await client.post(f"/invite/{token}", data={"username": username, "password": PASSWORD,
                                                    "password2": PASSWORD}, allow_redirects=False)
    assert r.status == 303, await r.text()
    return await csrf_of(client, f"/s/{shop}/today")


async def csrf_of(client: TestClient[Any, Any], path: str) -> str:
    r = await client.get(path)
    assert r.status == 200, await r.text()
    m = re.search(r'name="csrf" value="([^"]+)"', await r.text())
    assert m, "no csrf field on the page"
    return m.group(1)


def item(kind: str, store: str, data: dict[str, Any]) -> bytes:
    key = f"{kind}:{data.get('id') or data.get('call_id')}"
    return json.dumps({"id": key, "type": kind, "store": store, "created_at": "2026-12-02T00:00:00Z",
                       "data": data}, separators=(",", ":"), sort_keys=True).encode()


def sig(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def message(mid: str, text: str, when: str = "2026-12-02T01:00:00+00:00") -> dict[str, Any]:
    return {"id": mid, "store": "x", "caller_name": "Kim Minji", "callback_number": "+821012345678",
            "message": text, "created_at": when, "call_id": "c-" + mid}


def call_record(call_id: str, when: str, outcome: str = "answered") -> dict[str, Any]:
    return {"call_id": call_id, "caller_number": "+821099998888", "started_at": when, "ended_at": when,
            "duration_s": 42.5, "outcome": outcome, "summary": "Caller asked: \"When do you close?\".",
            "transcript": [{"role": "caller", "text": "When do you close on Saturday?", "start_s": 1.0},
                           {"role": "agent", "text": "We close at 4 PM on Saturday.", "start_s": 2.0,
                            "truncated": False}],
            "latency": {"voice_to_voice": {"count": 1, "mean": 0.72, "max": 0.72}}}


def form_of(page: str) -> dict[str, str]:
    """The fields a browser would submit from the profile form (inputs, ticked checkboxes, textareas)."""
    import html
    import re

    form: dict[str, str] = {}
    for m in re.finditer(r"<input([^>]*)>", page):
        a = dict(re.findall(r'(\w[\w-]*)="([^"]*)"', m.group(1)))
        if "name" not in a:
            continue
        if a.get("type") == "checkbox":
            if re.search(r"\schecked\b", m.group(1)):
                form[a["name"]] = "on"
        else:
            form[a["name"]] = html.unescape(a.get("value", ""))
    for m in re.finditer(r'<textarea[^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', page, re.S):
        form[m.group(1)] = html.unescape(m.group(2)).removeprefix("\n")
    return form
