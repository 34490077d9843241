"""The owner's page in a real headless Chromium (Debian's, driven by Playwright) against `storeagent web serve`
on a real kube-apiserver, with a real agent (offline providers) for the browser call.

Covers: invitation -> password -> signed in; a message delivered by the signed webhook marked done; hours edited
and seen on the StoreAgent on the API server; one-tap sold out; a cross-shop page refused; the web's
ServiceAccount can touch StoreAgents only; a browser call with Chromium's fake microphone (a spoken question
from a WAV) answered with the shop's fact, the live transcript on the page and the agent's marks played.
Screenshots of the main screens (desktop and phone width) go to $STOREAGENT_WEB_SCREENSHOTS (docs/web/ when
regenerating them) or the test's temp dir.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from support.controlplane import ControlPlane
from support.operator_env import install
from support.webstack import (
    NS,
    WEB_SA,
    WebProcess,
    agent_for_browser_calls,
    apply_shops,
    dump,
    get_storeagent,
    launch_chromium,
    web_rbac,
)
from support.webtest import PASSWORD, SECRET, call_record, item, message, sig

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SHOP = "shops.sunrise-bakery"
OTHER = "shops.gangnam-chicken"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ControlPlane, WebProcess]]:
    work = tmp_path_factory.mktemp("webstack")
    key = work / "stream-token.key"
    key.write_bytes(os.urandom(32).hex().encode())
    with ControlPlane(work / "cp") as cp:
        install(cp)  # the CRD (and the operator's RBAC, unused here)
        kubeconfig = web_rbac(cp)
        apply_shops(cp)
        with agent_for_browser_calls(work / "agent", key) as agent:
            web = WebProcess(work, kubeconfig, f"http://{agent.stats_address}", key).start()
            try:
                yield cp, web
            finally:
                web.stop()
                print(f"web log: {web.log}\nagent log: {agent.log_path}")


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = Path(os.environ.get("STOREAGENT_WEB_SCREENSHOTS") or tmp_path_factory.mktemp("shots"))
    out.mkdir(parents=True, exist_ok=True)
    return out


def _seed(web: WebProcess, timezone: str) -> None:
    now = datetime.now(UTC)
    calls = [("Do you have sourdough today?", "Yes, a sourdough loaf is 6.50.", "answered", 95,
              'Caller asked: "Do you have sourdough today?".'),
             ("Can I order a birthday cake for Saturday?", "Custom cakes need two days notice. May I take a message?",
              "message", 180, "Message from Kim Minji, callback +821012345678: cake order."),
             ("Are you open on Christmas Eve?", "On Christmas Eve we are open 7 AM to 12 PM.", "answered", 40,
              'Caller asked: "Are you open on Christmas Eve?".'),
             ("", "", "abandoned", 6, "Caller hung up before asking anything.")]
    # All four within the shop's today (in its timezone), as the page counts them: 35 min apart, closer
    # together just after the shop's midnight (a fixed spacing failed the count between 00:00 and 01:48 there).
    local = now.astimezone(ZoneInfo(timezone))
    since_midnight = local - local.replace(hour=0, minute=0, second=0, microsecond=0)
    step = min(timedelta(minutes=35), since_midnight / (len(calls) + 1))
    for i, (q, a, outcome, dur, summary) in enumerate(calls):
        rec = call_record(f"call-{i}", (now - step * (i + 0.5)).isoformat().replace("+00:00", "Z"), outcome)
        rec.update(duration_s=dur, summary=summary, caller_number=f"+1555010{i:04d}")
        if q:
            rec["transcript"][0]["text"], rec["transcript"][1]["text"] = q, a
        else:
            rec["transcript"] = []
        body = item("call_record", "sunrise-bakery", rec)
        assert web.post_item(SHOP, body, sig(SECRET, body)) == 200
    for mid, name, text in (("m-cake", "Kim Minji", "Birthday cake for Saturday, chocolate, 20 people."),
                            ("m-bread", "Dan Park", "Please keep two sourdough loaves for 5 pm.")):
        m = message(mid, text, (now - timedelta(minutes=20)).isoformat())
        m["caller_name"] = name
        body = item("message", "sunrise-bakery", m)
        assert web.post_item(SHOP, body, sig(SECRET, body)) == 200
    other = item("message", "gangnam-chicken", message("m-other", "another shop's secret"))
    assert web.post_item(OTHER, other, sig(SECRET, other)) == 200


def _sign_in(page: Any, web: WebProcess) -> None:
    page.goto(web.invite(SHOP))
    page.get_by_label("User name").fill("minji")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.get_by_role("button", name="Save and sign in").click()
    page.wait_for_url(re.compile(r"/s/shops\.sunrise-bakery/today$"))


def _shot(page: Any, shots: Path, name: str) -> None:
    page.screenshot(path=str(shots / f"{name}-desktop.png"), full_page=False)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(shots / f"{name}-phone.png"), full_page=False)
    page.set_viewport_size({"width": 1280, "height": 860})


def test_owner_signs_in_marks_done_edits_hours_and_cannot_reach_another_shop(
        stack: tuple[ControlPlane, WebProcess], shots: Path, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    cp, web = stack
    _seed(web, get_storeagent(cp, "sunrise-bakery")["spec"]["profile"]["timezone"])
    with sync_playwright() as pw:
        ctx = launch_chromium(pw, tmp_path / "profile")
        page = ctx.new_page()
        _sign_in(page, web)
        expect(page.locator(".stat .n").first).to_have_text("4")
        _shot(page, shots, "today")

        page.goto(f"{web.url}/s/{SHOP}/calls")
        expect(page.locator("article.call")).to_have_count(4)
        page.locator("article.call details summary").first.click()
        _shot(page, shots, "calls")
        page.get_by_label("Search").fill("birthday")
        page.get_by_role("button", name="Filter").click()
        expect(page.locator("article.call")).to_have_count(1)

        page.goto(f"{web.url}/s/{SHOP}/messages")
        card = page.locator("article.message", has_text="Birthday cake")
        card.get_by_role("button", name="Mark done").click()
        expect(page.locator("article.message", has_text="Birthday cake").locator(".badge")).to_have_text("Done")
        _shot(page, shots, "messages")
        page.goto(f"{web.url}/s/{SHOP}/messages?status=open")
        expect(page.locator("article.message")).to_have_count(1)

        page.goto(f"{web.url}/s/{SHOP}/profile")
        page.locator("#f-hours-saturday-0-close").fill("17:30")
        page.get_by_role("button", name="Save changes").click()
        expect(page.locator(".notice").first).to_contain_text("Saved")
        spec = get_storeagent(cp, "sunrise-bakery")["spec"]
        assert spec["profile"]["hours"]["saturday"][0]["close"] in ("17:30", "17:30:00"), dump(spec)
        assert spec["phoneNumbers"] == ["+15551230001"]  # the rest of the spec is untouched

        page.get_by_role("button", name="Sold out today: croissant").click()
        expect(page.locator(".notice").first).to_contain_text("Saved")
        menu = {m["name"]: m for m in get_storeagent(cp, "sunrise-bakery")["spec"]["profile"]["menu"]}
        assert menu["croissant"]["available"] is False
        _shot(page, shots, "profile")

        page.locator("#f-hours-monday-0-close").fill("06:00")  # before the 07:00 opening: the model refuses
        page.get_by_role("button", name="Save changes").click()
        expect(page.locator(".notice.error").first).to_contain_text("Nothing was saved")
        expect(page.locator(".has-error").first).to_contain_text("must be after open")
        assert get_storeagent(cp, "sunrise-bakery")["spec"]["profile"]["hours"]["monday"][0]["close"] != "06:00"

        resp = page.goto(f"{web.url}/s/{OTHER}/messages")
        assert resp is not None and resp.status == 403
        expect(page.locator("main")).to_contain_text("belongs to another shop")
        assert "another shop's secret" not in page.content()

        page.goto(f"{web.url}/lang/ko?next=/s/{SHOP}/today")
        expect(page.locator("h1")).to_have_text("오늘")
        _shot(page, shots, "today-ko")
        ctx.close()


def test_the_web_service_account_may_touch_storeagents_only(stack: tuple[ControlPlane, WebProcess]) -> None:
    cp, _ = stack
    who = f"--as=system:serviceaccount:{NS}:{WEB_SA}"
    for verb, res, allowed in (("get", "storeagents.storeagent.dev", "yes"), ("update", "storeagents.storeagent.dev",
                               "yes"), ("create", "storeagents.storeagent.dev", "no"),
                               ("delete", "storeagents.storeagent.dev", "no"), ("get", "secrets", "no"),
                               ("get", "configmaps", "no"), ("create", "pods", "no")):
        out = cp.kubectl("auth", "can-i", verb, res, "-n", NS, who, check=False)
        assert out.stdout.strip() == allowed, (verb, res, out.stdout, out.stderr)


def _question_wav(path: Path) -> Path:
    """The caller's question, spoken by espeak-ng (not the agent's voice), 16 kHz, with silence around it."""
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), "What time do you open on Saturday?"],
                   check=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(path), "pad", "8", "25"], check=True)
    return path


def test_browser_call_with_a_fake_microphone_gets_the_shops_fact(
        stack: tuple[ControlPlane, WebProcess], shots: Path, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    cp, web = stack
    with sync_playwright() as pw:
        ctx = launch_chromium(pw, tmp_path / "profile", fake_audio=_question_wav(tmp_path / "question.wav"))
        page = ctx.new_page()
        page.goto(f"{web.url}/login")
        page.get_by_label("Shop").fill(SHOP)
        page.get_by_label("User name").fill("minji")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.goto(f"{web.url}/s/{SHOP}/try")
        page.get_by_role("button", name="Start call").click()
        expect(page.locator("#try")).to_have_attribute("data-state", "live", timeout=30_000)
        # The Saturday hours as the StoreAgent holds them now (the other test may have changed the closing).
        sat = get_storeagent(cp, "sunrise-bakery")["spec"]["profile"]["hours"]["saturday"][0]
        opens = str(int(sat["open"][:2]) % 12 or 12)
        agent_lines = page.locator("#try-transcript .turn.agent")
        expect(agent_lines.filter(has_text=re.compile(rf"\b{opens}\b"))).not_to_have_count(0, timeout=150_000)
        expect(page.locator("#try-transcript .turn.caller")).not_to_have_count(0)
        assert int(page.locator("#try").get_attribute("data-played-ms") or 0) > 500  # speech really played out
        _shot(page, shots, "try")
        page.get_by_role("button", name="Hang up").click()
        expect(page.locator("#try")).to_have_attribute("data-state", "ended")
        ctx.close()
