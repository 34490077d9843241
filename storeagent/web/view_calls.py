"""Today, call history and messages: server-rendered, readable on a phone first (cards), a table-like grid on
wide screens (CSS only). Times are shown in the shop's timezone; caller numbers masked unless asked."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from storeagent.web.html import esc, hidden
from storeagent.web.i18n import Translate
from storeagent.web.repo import OUTCOMES, mask_number


def local_time(iso: str, tz: str, fmt: str = "%H:%M") -> str:
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(ZoneInfo(tz)).strftime(fmt)
    except (ValueError, KeyError):
        return iso[:16]


def duration(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 60}:{s % 60:02d}"


def call_card(t: Translate, c: dict[str, Any], tz: str, reveal: bool) -> str:
    number = str(c["caller"]) if reveal else mask_number(str(c["caller"])) if c["caller"] else "—"
    lines = "".join(
        f'<li class="turn {esc(turn["role"])}"><span class="who">{esc(t("role_" + turn["role"]))}</span> '
        f'{esc(turn["text"])}{" <em>" + esc(t("cut_off")) + "</em>" if turn.get("truncated") else ""}</li>'
        for turn in c["transcript"])
    lat = f'{c["latency_s"]:.1f} s' if c.get("latency_s") is not None else "—"
    return f"""<article class="card call" aria-labelledby="c-{esc(c["call_id"])}">
<header><h3 id="c-{esc(c["call_id"])}"><time datetime="{esc(c["started_at"])}">
{esc(local_time(c["started_at"], tz, "%m-%d %H:%M"))}</time> · <span class="num">{esc(number)}</span></h3>
<span class="badge o-{esc(c["outcome"])}">{esc(t("o_" + c["outcome"]))}</span></header>
<dl class="facts"><div><dt>{esc(t("duration"))}</dt><dd>{duration(float(c["duration_s"]))}</dd></div>
<div><dt>{esc(t("latency"))}</dt><dd>{esc(lat)}</dd></div></dl>
<p class="summary">{esc(c["summary"])}</p>
<details><summary>{esc(t("transcript"))}</summary><ol class="transcript">{lines}</ol></details></article>"""


def filters(t: Translate, action: str, q: str, day: str, select: str) -> str:
    return f"""<form class="filters" method="get" action="{esc(action)}" role="search">
<div class="field"><label for="q">{esc(t("search"))}</label>
<input id="q" name="q" type="search" value="{esc(q)}"></div>
<div class="field"><label for="day">{esc(t("date"))}</label>
<input id="day" name="day" type="date" value="{esc(day)}"></div>
{select}<button class="secondary">{esc(t("filter"))}</button></form>"""


def outcome_select(t: Translate, outcome: str) -> str:
    opts = f'<option value="">{esc(t("any"))}</option>' + "".join(
        f'<option value="{o}"{" selected" if o == outcome else ""}>{esc(t("o_" + o))}</option>' for o in OUTCOMES)
    return f'<div class="field"><label for="outcome">{esc(t("outcome"))}</label>' \
           f'<select id="outcome" name="outcome">{opts}</select></div>'


def status_select(t: Translate, status: str) -> str:
    opts = "".join(f'<option value="{v}"{" selected" if v == status else ""}>{esc(t(k))}</option>'
                   for v, k in (("", "any"), ("open", "open"), ("done", "done")))
    return f'<div class="field"><label for="status">{esc(t("status"))}</label>' \
           f'<select id="status" name="status">{opts}</select></div>'


def calls_list(t: Translate, calls: list[dict[str, Any]], tz: str, reveal: bool) -> str:
    if not calls:
        return f'<p class="empty">{esc(t("no_calls"))}</p>'
    return '<div class="cards">' + "".join(call_card(t, c, tz, reveal) for c in calls) + "</div>"


def message_card(t: Translate, shop: str, m: dict[str, Any], tz: str, csrf: str) -> str:
    done = bool(m["done"])
    label = t("reopen") if done else t("mark_done")
    cb = str(m["callback"])
    tel = f'<a href="tel:{esc(cb)}">{esc(cb)}</a>' if cb else "—"
    return f"""<article class="card message{" is-done" if done else ""}" aria-labelledby="m-{esc(m["id"])}">
<header><h3 id="m-{esc(m["id"])}">{esc(m["caller_name"] or "—")}</h3>
<span class="badge {"o-answered" if done else "o-message"}">{esc(t("done") if done else t("open"))}</span></header>
<p class="body">{esc(m["body"])}</p>
<dl class="facts"><div><dt>{esc(t("callback"))}</dt><dd>{tel}</dd></div>
<div><dt>{esc(t("time"))}</dt><dd>{esc(local_time(m["created_at"], tz, "%m-%d %H:%M"))}</dd></div></dl>
<form method="post" action="/s/{esc(shop)}/messages/{esc(m["id"])}/done">{hidden("csrf", csrf)}
{hidden("done", "0" if done else "1")}<button class="{"secondary" if done else "primary"}">{esc(label)}</button>
</form></article>"""


def messages_list(t: Translate, shop: str, msgs: list[dict[str, Any]], tz: str, csrf: str) -> str:
    if not msgs:
        return f'<p class="empty">{esc(t("no_messages"))}</p>'
    return '<div class="cards">' + "".join(message_card(t, shop, m, tz, csrf) for m in msgs) + "</div>"


def today(t: Translate, shop: str, counts: dict[str, int], calls: list[dict[str, Any]],
          msgs: list[dict[str, Any]], tz: str, csrf: str) -> str:
    stats = f"""<section class="stats" aria-label="{esc(t("today_title"))}">
<a class="stat" href="/s/{esc(shop)}/calls"><span class="n">{counts["calls_today"]}</span>{esc(t("calls_today"))}</a>
<a class="stat" href="/s/{esc(shop)}/messages?status=open"><span class="n">{counts["open_messages"]}</span>
{esc(t("open_messages"))}</a></section>"""
    return (stats + f'<h2>{esc(t("open_messages"))}</h2>' + messages_list(t, shop, msgs, tz, csrf)
            + f'<h2>{esc(t("calls_today"))}</h2>' + calls_list(t, calls, tz, False))
