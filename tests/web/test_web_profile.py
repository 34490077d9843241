"""Profile edits on the local shop file (FileShops, `make demo-web`): validated with the CRD's model, errors
shown at the field, the written file loads in the agent as it is."""

from __future__ import annotations

from typing import Any

import yaml
from aiohttp.test_utils import TestClient

from storeagent.agent.__main__ import load_shop
from storeagent.operator.model import StoreAgentSpec
from storeagent.web.context import Web
from support.webtest import SHOP_A, form_of, signed_in

Env = tuple[Web, TestClient[Any, Any]]


async def test_the_unchanged_form_saves_and_an_edit_reaches_the_agents_file(web_env: Env) -> None:
    w, client = web_env
    await signed_in(w, client, SHOP_A)
    path = w.settings.shops[0].file
    assert path is not None
    before = yaml.safe_load(path.read_text())["spec"]
    form = form_of(await (await client.get(f"/s/{SHOP_A}/profile")).text())
    form["hours.saturday.0.close"] = "17:30"
    form["menu.5.name"], form["menu.5.price"] = "rye loaf", "7.25"  # the blank row adds an item
    form["faq.0.delete"] = "on"
    form["forwardTo"] = "+15551230002"
    r = await client.post(f"/s/{SHOP_A}/profile", data=form, allow_redirects=False)
    assert r.status == 303, await r.text()
    spec = yaml.safe_load(path.read_text())["spec"]
    StoreAgentSpec.model_validate(spec)
    assert spec["profile"]["hours"]["saturday"] == [{"open": "08:00", "close": "17:30"}]
    assert [m["name"] for m in spec["profile"]["menu"]][-1] == "rye loaf"
    assert spec["profile"]["menu"][1]["aliases"] == ["croissants"]  # fields the form does not show are kept
    assert len(spec["profile"]["faq"]) == len(before["profile"]["faq"]) - 1
    assert spec["fallback"]["forwardTo"] == "+15551230002"
    assert spec["scaling"] == before["scaling"]  # the rest of the spec is untouched
    shop = load_shop(path)
    assert shop.profile.hours.saturday[0].close.strftime("%H:%M") == "17:30"


async def test_invalid_edits_are_refused_at_the_field_and_nothing_is_written(web_env: Env) -> None:
    w, client = web_env
    csrf = await signed_in(w, client, SHOP_A)
    path = w.settings.shops[0].file
    assert path is not None
    text = path.read_text()
    form = form_of(await (await client.get(f"/s/{SHOP_A}/profile")).text())
    for field, value, says in (("hours.monday.0.close", "06:00", "must be after open"),
                               ("menu.0.price", "six", "is not an amount"),
                               ("forwardTo", "010-1234", "E.164")):
        r = await client.post(f"/s/{SHOP_A}/profile", data={**form, field: value})
        page = await r.text()
        assert r.status == 422 and says in page, field
        assert 'aria-invalid="true"' in page or "has-error" in page
        assert path.read_text() == text
    r = await client.post(f"/s/{SHOP_A}/profile", data={**form, "version": "stale"})
    assert r.status == 409 and path.read_text() == text
    r = await client.post(f"/s/{SHOP_A}/profile/menu/0/toggle", data={"csrf": csrf, "version": form["version"]},
                          allow_redirects=False)
    assert r.status == 303
    assert yaml.safe_load(path.read_text())["spec"]["profile"]["menu"][0]["available"] is False
