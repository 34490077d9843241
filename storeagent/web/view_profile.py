"""The profile form: hours (two ranges a day), holidays, menu with one-tap "sold out today", FAQ, greeting and
forward number. It renders from a spec dict (the stored one, or the submitted one after a refused save, so the
owner's typing is kept) and shows each validation error beside its input."""

from __future__ import annotations

from typing import Any

from storeagent.shop import WEEKDAYS
from storeagent.web.forms import BLANK_ROWS, RANGES_SHOWN
from storeagent.web.html import esc, field, hidden, notice
from storeagent.web.i18n import Translate


def _hours(t: Translate, hours: dict[str, Any], errors: dict[str, str]) -> str:
    rows = []
    for day in WEEKDAYS:
        ranges = list(hours.get(day) or [])
        cells = []
        for i in range(RANGES_SHOWN):
            r = ranges[i] if i < len(ranges) else {}
            err = errors.get(f"hours.{day}.{i}", "")
            sep = f'<span class="and">{esc(t("second_range"))}</span>' if i else ""
            cells.append(sep + field(t("opens"), f"hours.{day}.{i}.open", str(r.get("open", ""))[:5], type_="time",
                                     error=err) + field(t("closes"), f"hours.{day}.{i}.close",
                                                         str(r.get("close", ""))[:5], type_="time"))
        closed = "" if ranges else f'<span class="badge o-failed">{esc(t("closed"))}</span>'
        rows.append(f'<fieldset class="day"><legend>{esc(t(day))} {closed}</legend>'
                    f'<div class="ranges">{"".join(cells)}</div></fieldset>')
    return "".join(rows)


def _holidays(t: Translate, holidays: list[dict[str, Any]], errors: dict[str, str]) -> str:
    out = []
    for i, h in enumerate([*holidays, *({} for _ in range(BLANK_ROWS))]):
        hours = (h.get("hours") or [{}])[0] if h.get("hours") else {}
        p = f"holidays.{i}"
        err = errors.get(p, "") or errors.get(f"{p}.date", "") or errors.get(f"{p}.0", "")
        out.append(f'<fieldset class="row"><legend>{esc(h.get("name") or t("add_row"))}</legend>'
                   + field(t("date"), f"{p}.date", h.get("date", ""), type_="date", error=err)
                   + field(t("holiday_name"), f"{p}.name", h.get("name", ""))
                   + field(t("opens"), f"{p}.open", str(hours.get("open", ""))[:5], type_="time")
                   + field(t("closes"), f"{p}.close", str(hours.get("close", ""))[:5], type_="time")
                   + (_delete(t, p) if h else "") + "</fieldset>")
    return f'<p class="hint">{esc(t("holiday_hint"))}</p>' + "".join(out)


def _delete(t: Translate, prefix: str) -> str:
    fid = "f-" + prefix.replace(".", "-") + "-delete"
    return (f'<div class="check"><input type="checkbox" id="{fid}" name="{esc(prefix)}.delete">'
            f'<label for="{fid}">{esc(t("delete"))}</label></div>')


def _menu(t: Translate, shop: str, menu: list[dict[str, Any]], errors: dict[str, str]) -> str:
    taps = []
    for i, m in enumerate(menu):
        avail = m.get("available", True) is not False
        label = t("sold_out") if avail else t("back_in")
        taps.append(f'<li class="{"" if avail else "sold-out"}"><span class="item">{esc(m.get("name", ""))}</span>'
                    f'<span class="price">{esc(m.get("price", ""))}</span>'
                    + ("" if avail else f'<span class="badge o-failed">{esc(t("is_sold_out"))}</span>')
                    + f'<button class="{"danger" if avail else "secondary"}" formaction="/s/{esc(shop)}/profile/menu/'
                    f'{i}/toggle" aria-label="{esc(label)}: {esc(m.get("name", ""))}">{esc(label)}</button></li>')
    rows = []
    for i, m in enumerate([*menu, *({} for _ in range(BLANK_ROWS))]):
        p = f"menu.{i}"
        fid = f"f-{p.replace('.', '-')}-available"
        checked = " checked" if m.get("available", True) is not False else ""
        rows.append(f'<fieldset class="row"><legend>{esc(m.get("name") or t("add_row"))}</legend>'
                    + field(t("item"), f"{p}.name", m.get("name", ""), error=errors.get(f"{p}.name", ""))
                    + field(t("price"), f"{p}.price", m.get("price", ""), inputmode="decimal",
                            error=errors.get(f"{p}.price", "") or errors.get(p, ""))
                    + field(t("description"), f"{p}.description", m.get("description", ""))
                    + f'<div class="check"><input type="checkbox" id="{fid}" name="{p}.available"{checked}>'
                    f'<label for="{fid}">{esc(t("available"))}</label></div>'
                    + (_delete(t, p) if m else "") + "</fieldset>")
    return f'<ul class="taps">{"".join(taps)}</ul><details><summary>{esc(t("menu"))} ✎</summary>' \
           f'{"".join(rows)}</details>'


def _faq(t: Translate, faq: list[dict[str, Any]], errors: dict[str, str]) -> str:
    rows = []
    for i, f in enumerate([*faq, *({} for _ in range(BLANK_ROWS))]):
        p = f"faq.{i}"
        qid, aid = f"f-{p.replace('.', '-')}-q", f"f-{p.replace('.', '-')}-a"
        err = errors.get(f"{p}.question", "") or errors.get(f"{p}.answer", "")
        rows.append(f'<fieldset class="row faq"><legend>{esc(f.get("question") or t("add_row"))}</legend>'
                    f'<div class="field"><label for="{qid}">{esc(t("question"))}</label>'
                    f'<input id="{qid}" name="{p}.question" value="{esc(f.get("question", ""))}"></div>'
                    f'<div class="field{" has-error" if err else ""}"><label for="{aid}">{esc(t("answer"))}</label>'
                    f'<textarea id="{aid}" name="{p}.answer" rows="2">{esc(f.get("answer", ""))}</textarea>'
                    + (f'<p class="error">{esc(err)}</p>' if err else "") + "</div>"
                    + (_delete(t, p) if f else "") + "</fieldset>")
    return "".join(rows)


def profile_form(t: Translate, shop: str, spec: dict[str, Any], version: str, csrf: str,
                 errors: dict[str, str], status: str) -> str:
    prof = spec.get("profile", {})
    forward = (spec.get("fallback") or {}).get("forwardTo", "")
    unplaced = [f"{k}: {v}" for k, v in errors.items() if not k.startswith(("hours", "holidays", "menu", "faq",
                                                                              "forwardTo", "greeting"))]
    head = status + (notice(t("fix_errors"), "error") if errors else "") + "".join(
        notice(u, "error") for u in unplaced)
    greeting_err = errors.get("greeting", "")
    return f"""{head}<form method="post" action="/s/{esc(shop)}/profile" class="profile" novalidate>
{hidden("csrf", csrf)}{hidden("version", version)}
<section aria-labelledby="h-menu"><h2 id="h-menu">{esc(t("menu"))}</h2>{_menu(t, shop, prof.get("menu", []), errors)}
</section>
<section aria-labelledby="h-hours"><h2 id="h-hours">{esc(t("hours"))}</h2>{_hours(t, prof.get("hours", {}), errors)}
</section>
<section aria-labelledby="h-hol"><h2 id="h-hol">{esc(t("holidays"))}</h2>
{_holidays(t, prof.get("holidays", []), errors)}</section>
<section aria-labelledby="h-faq"><h2 id="h-faq">{esc(t("faq"))}</h2>{_faq(t, prof.get("faq", []), errors)}</section>
<section aria-labelledby="h-greet"><h2 id="h-greet">{esc(t("greeting"))}</h2>
<div class="field{" has-error" if greeting_err else ""}"><label for="f-greeting">{esc(t("greeting"))}</label>
<textarea id="f-greeting" name="greeting" rows="2" aria-describedby="f-greeting-hint">
{esc(prof.get("greeting", ""))}</textarea>
<p class="hint" id="f-greeting-hint">{esc(t("greeting_hint"))}</p>
{f'<p class="error">{esc(greeting_err)}</p>' if greeting_err else ""}</div>
{field(t("forward"), "forwardTo", forward, type_="tel", hint=t("forward_hint"), error=errors.get("forwardTo", ""),
       autocomplete="tel")}</section>
<div class="savebar"><button class="primary" name="save" value="1">{esc(t("save"))}</button></div></form>"""
