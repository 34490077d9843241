"""Profile form <-> StoreAgent spec: the form's fields are flat names (`hours.monday.0.open`), the spec is the
CRD's camelCase JSON. Parsing never validates: `shops.validate_spec` (the CRD's model) does, and its errors
are mapped back to the form's field names so the page can point at the wrong input.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from storeagent.shop import WEEKDAYS

RANGES_SHOWN = 2  # per weekday on the form; the model allows more, kept when the form did not show them
BLANK_ROWS = 1  # empty rows offered to add a holiday, menu item or FAQ entry
ROW_MAX = 300  # rows read back from a form at most (the model caps each list anyway)


def _rows(form: Mapping[str, str], prefix: str, fields: tuple[str, ...],
          flags: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """Rows `prefix.i.field` of the form; a row whose text fields are all empty is not a row (the blank row
    offered for adding keeps its default checkbox ticked)."""
    out = []
    for i in range(ROW_MAX):
        row = {f: form.get(f"{prefix}.{i}.{f}", "").strip() for f in fields}
        if not any(f"{prefix}.{i}.{f}" in form for f in fields):
            break
        if any(v for f, v in row.items() if f not in flags) and form.get(f"{prefix}.{i}.delete") != "on":
            out.append(row)
    return out


def _ranges(form: Mapping[str, str], prefix: str) -> list[dict[str, str]]:
    out = []
    for i in range(RANGES_SHOWN):
        o, c = form.get(f"{prefix}.{i}.open", "").strip(), form.get(f"{prefix}.{i}.close", "").strip()
        if o or c:
            out.append({"open": o, "close": c})
    return out


def apply_form(spec: dict[str, Any], form: Mapping[str, str]) -> dict[str, Any]:
    """A copy of `spec` with the form's profile fields put in (unvalidated)."""
    new = copy.deepcopy(spec)
    profile = new.setdefault("profile", {})
    profile["greeting"] = form.get("greeting", "").strip()
    profile["hours"] = {day: _ranges(form, f"hours.{day}") for day in WEEKDAYS}
    holidays = []
    for h in _rows(form, "holidays", ("date", "name", "open", "close")):
        hours = [{"open": h["open"], "close": h["close"]}] if h["open"] or h["close"] else []
        holidays.append({"date": h["date"], "name": h["name"], "hours": hours})
    profile["holidays"] = holidays
    old_menu = {m.get("name"): m for m in profile.get("menu", [])}
    menu = []
    for m in _rows(form, "menu", ("name", "price", "description", "available"), ("available",)):
        item = {**old_menu.get(m["name"], {}), "name": m["name"], "price": m["price"],
                "description": m["description"], "available": m["available"] == "on"}
        menu.append(item)
    profile["menu"] = menu
    old_faq = {f.get("question"): f for f in profile.get("faq", [])}
    profile["faq"] = [{**old_faq.get(f["question"], {}), "question": f["question"], "answer": f["answer"]}
                      for f in _rows(form, "faq", ("question", "answer"))]
    forward = form.get("forwardTo", "").strip()
    fallback = new.setdefault("fallback", {})
    if forward:
        fallback["forwardTo"] = forward
    else:
        fallback.pop("forwardTo", None)
    return new


def toggle_sold_out(spec: dict[str, Any], index: int) -> dict[str, Any]:
    new = copy.deepcopy(spec)
    menu = new.get("profile", {}).get("menu", [])
    if not 0 <= index < len(menu):
        raise IndexError(index)
    menu[index]["available"] = not menu[index].get("available", True)
    return new


def form_field(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location in the spec -> the form field's name (best effort: the nearest row)."""
    parts = [str(p) for p in loc]
    if parts[:1] == ["profile"]:
        parts = parts[1:]
        if parts[:1] == ["holidays"] and len(parts) >= 3 and parts[2] == "hours":
            parts = [parts[0], parts[1], *parts[4:5]] if len(parts) > 4 else parts[:2]
    elif parts[:2] == ["fallback", "forwardTo"]:
        parts = ["forwardTo"]
    return ".".join(parts)


def errors_by_field(err: ValidationError) -> dict[str, str]:
    out: dict[str, str] = {}
    for e in err.errors():
        msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        out.setdefault(form_field(tuple(e.get("loc", ()))), msg)
    return out
