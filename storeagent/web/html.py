"""HTML building blocks: everything the page shows goes through `esc` (tenant and caller text is hostile)."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from urllib.parse import quote

from storeagent.web.i18n import Translate


def esc(v: object) -> str:
    return escape(str(v), quote=True)


def attrs(**kw: object) -> str:
    out = []
    for k, v in kw.items():
        name = k.rstrip("_").replace("_", "-")
        if v is True:
            out.append(f" {name}")
        elif v not in (None, False):
            out.append(f' {name}="{esc(v)}"')
    return "".join(out)


def field(label: str, name: str, value: object = "", *, type_: str = "text", hint: str = "", error: str = "",
          id_: str | None = None, **kw: object) -> str:
    """A labelled input; the hint and the error are tied to it with aria-describedby."""
    fid = id_ or "f-" + name.replace(".", "-")
    described = " ".join(x for x in (hint and fid + "-hint", error and fid + "-err") if x) or None
    a = attrs(type=type_, id=fid, name=name, value=value, aria_describedby=described,
              aria_invalid="true" if error else None, **kw)
    inp = f"<input{a}>"
    return (f'<div class="field{" has-error" if error else ""}"><label for="{fid}">{esc(label)}</label>{inp}'
            + (f'<p class="hint" id="{fid}-hint">{esc(hint)}</p>' if hint else "")
            + (f'<p class="error" id="{fid}-err">{esc(error)}</p>' if error else "") + "</div>")


def hidden(name: str, value: str) -> str:
    return f'<input type="hidden"{attrs(name=name, value=value)}>'


NAV = (("today", "nav_today", "M3 12l9-9 9 9M5 10v10h14V10"),
       ("calls", "nav_calls", "M5 4h4l2 5-3 2a11 11 0 0 0 5 5l2-3 5 2v4a2 2 0 0 1-2 2A17 17 0 0 1 3 6a2 2 0 0 1 2-2"),
       ("messages", "nav_messages", "M4 5h16v11H8l-4 4z"), ("profile", "nav_profile", "M4 7h16M4 12h16M4 17h10"),
       ("try", "nav_try", "M12 3a3 3 0 0 1 3 3v6a3 3 0 0 1-6 0V6a3 3 0 0 1 3-3M5 11a7 7 0 0 0 14 0M12 18v3"))


def icon(path: str) -> str:
    return (f'<svg aria-hidden="true" viewBox="0 0 24 24" width="22" height="22" fill="none" stroke="currentColor" '
            f'stroke-width="2" stroke-linecap="round" stroke-linejoin="round"><path d="{path}"/></svg>')


def page(t: Translate, lang: str, title: str, body: str, *, shop: str = "", shop_name: str = "", active: str = "",
         csrf: str = "", scripts: Iterable[str] = (), path: str = "/") -> str:
    other = "ko" if lang == "en" else "en"
    nav = ""
    if shop:
        items = "".join(
            f'<li><a href="/s/{esc(shop)}/{key}"{" aria-current=page" if key == active else ""}>{icon(p)}'
            f"<span>{esc(t(label))}</span></a></li>" for key, label, p in NAV)
        nav = f'<nav class="tabs" aria-label="{esc(t("app"))}"><ul>{items}</ul></nav>'
    signout = (f'<form method="post" action="/logout" class="inline">{hidden("csrf", csrf)}'
               f'<button class="link">{esc(t("sign_out"))}</button></form>') if shop else ""
    js = "".join(f'<script type="module" src="/static/{esc(s)}"></script>' for s in scripts)
    return f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light">
<title>{esc(title)} · {esc(shop_name or t("app"))}</title>
<link rel="icon" href="data:,"><link rel="stylesheet" href="/static/app.css"></head>
<body><a class="skip" href="#main">{esc(t("skip"))}</a>
<header class="top"><div class="brand"><span class="logo" aria-hidden="true">◉</span>
<span>{esc(shop_name or t("app"))}</span></div>
<div class="top-actions"><a href="/lang/{other}?next={quote(path)}" lang="{other}">{esc(t("lang_other"))}</a>
{signout}</div></header>
{nav}<main id="main" tabindex="-1"><h1>{esc(title)}</h1>{body}</main>{js}</body></html>"""


def notice(text: str, kind: str = "ok") -> str:
    role = "alert" if kind == "error" else "status"
    return f'<p class="notice {kind}" role="{role}">{esc(text)}</p>'
