"""Calls and messages of a shop, as the agent's webhook delivered them (docs/webhooks.md).

Every read and write names the shop: an id from another shop matches nothing. Delivery is at-least-once, so
items are stored under their natural key (call id, message id) and a repeat is a no-op.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from storeagent.web.db import Database, Row

PAGE = 50
TEXT_CAP = 4000  # per field: the webhook is the shop's own agent, but a record is still bounded here
OUTCOMES = ("answered", "message", "transferred", "abandoned", "failed")


class BadItem(ValueError):
    """A webhook body that is not a StoreAgent item; the message names the field."""


def mask_number(number: str) -> str:
    """+821012345678 -> +82 •••• 5678: enough to recognise a regular, not enough to dial."""
    digits = "".join(c for c in number if c.isdigit())
    if len(digits) < 6:
        return "•••" if digits else number[:20]
    return f"+{digits[:2]} •••• {digits[-4:]}" if number.startswith("+") else f"•••• {digits[-4:]}"


def _str(data: dict[str, Any], key: str, *, cap: int = TEXT_CAP, default: str | None = None) -> str:
    v = data.get(key, default)
    if v is None and default is not None:
        v = default
    if not isinstance(v, str):
        raise BadItem(f"data.{key}: expected a string")
    return v[:cap]


def _voice_to_voice(data: dict[str, Any]) -> float | None:
    lat = data.get("latency")
    if isinstance(lat, dict):
        v2v = lat.get("voice_to_voice")
        if isinstance(v2v, dict) and isinstance(v2v.get("mean"), int | float) and math.isfinite(v2v["mean"]):
            return float(v2v["mean"])
    return None


def _transcript(data: dict[str, Any]) -> list[dict[str, Any]]:
    turns = data.get("transcript", [])
    if not isinstance(turns, list):
        raise BadItem("data.transcript: expected a list")
    out = []
    for t in turns[:500]:
        if not isinstance(t, dict) or t.get("role") not in ("caller", "agent") or not isinstance(t.get("text"), str):
            raise BadItem("data.transcript[]: each turn needs role caller|agent and text")
        start = t.get("start_s", 0)
        out.append({"role": t["role"], "text": t["text"][:TEXT_CAP], "truncated": bool(t.get("truncated")),
                    "start_s": float(start) if isinstance(start, int | float) else 0.0})
    return out


@dataclass
class Repo:
    db: Database

    async def ingest(self, shop: str, item: dict[str, Any]) -> bool:
        """Store one webhook item of `shop`; True if new. Raises BadItem naming the field."""
        if item.get("store") != shop:
            raise BadItem(f"store: {str(item.get('store'))[:64]!r} is not this endpoint's shop")
        kind, data = item.get("type"), item.get("data")
        if not isinstance(data, dict):
            raise BadItem("data: expected an object")
        if kind == "message":
            return await self._message(shop, data)
        if kind == "call_record":
            msg = data.get("message")
            if isinstance(msg, dict):
                await self._message(shop, msg)
            return await self._call(shop, data)
        raise BadItem(f"type: {str(kind)[:32]!r} is not message or call_record")

    async def _message(self, shop: str, m: dict[str, Any]) -> bool:
        mid, text = _str(m, "id", cap=64), _str(m, "message")
        name, cb = _str(m, "caller_name", cap=200, default=""), _str(m, "callback_number", cap=32, default="")
        n = await self.db.execute(
            "INSERT INTO messages (shop, id, call_id, created_at, caller_name, callback, body, done, search) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?) ON CONFLICT (shop, id) DO NOTHING",
            shop, mid, _str(m, "call_id", cap=64, default=""), _str(m, "created_at", cap=40), name, cb, text,
            f"{name} {cb} {text}".lower())
        return n == 1

    async def _call(self, shop: str, d: dict[str, Any]) -> bool:
        outcome = _str(d, "outcome", cap=20)
        if outcome not in OUTCOMES:
            raise BadItem(f"data.outcome: {outcome!r} is not one of {', '.join(OUTCOMES)}")
        dur = d.get("duration_s", 0)
        if not isinstance(dur, int | float) or not math.isfinite(dur) or dur < 0:
            raise BadItem("data.duration_s: expected seconds >= 0")
        turns = _transcript(d)
        caller = d.get("caller_number") or ""
        summary = _str(d, "summary", default="")
        n = await self.db.execute(
            "INSERT INTO calls (shop, call_id, started_at, caller, outcome, duration_s, summary, transcript, "
            "latency_s, search) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (shop, call_id) DO NOTHING",
            shop, _str(d, "call_id", cap=64), _str(d, "started_at", cap=40), str(caller)[:32], outcome, float(dur),
            summary, json.dumps(turns, ensure_ascii=False), _voice_to_voice(d),
            (summary + " " + " ".join(t["text"] for t in turns) + " " + str(caller)).lower()[:20000])
        return n == 1

    async def calls(self, shop: str, *, q: str = "", outcome: str = "", span: tuple[str, str] | None = None,
                    offset: int = 0) -> list[Row]:
        sql, args = "SELECT * FROM calls WHERE shop = ?", list[Any]([shop])
        sql, args = _filters(sql, args, q, span, "started_at")
        if outcome in OUTCOMES:
            sql += " AND outcome = ?"
            args.append(outcome)
        rows = await self.db.fetch(sql + f" ORDER BY started_at DESC LIMIT {PAGE} OFFSET ?", *args, max(0, offset))
        for r in rows:
            r["transcript"] = json.loads(r["transcript"])
        return rows

    async def messages(self, shop: str, *, q: str = "", status: str = "",
                       span: tuple[str, str] | None = None) -> list[Row]:
        sql, args = "SELECT * FROM messages WHERE shop = ?", list[Any]([shop])
        sql, args = _filters(sql, args, q, span, "created_at")
        if status in ("open", "done"):
            sql += " AND done = ?"
            args.append(1 if status == "done" else 0)
        return await self.db.fetch(sql + f" ORDER BY created_at DESC LIMIT {PAGE}", *args)

    async def set_done(self, shop: str, message_id: str, done: bool) -> bool:
        """False when the shop has no such message (another shop's id included)."""
        n = await self.db.execute("UPDATE messages SET done = ? WHERE shop = ? AND id = ?",
                                  1 if done else 0, shop, message_id)
        return n == 1

    async def counts(self, shop: str, span: tuple[str, str]) -> dict[str, int]:
        calls = await self.db.fetch("SELECT COUNT(*) AS n FROM calls WHERE shop = ? AND started_at >= ? "
                                    "AND started_at < ?", shop, *span)
        open_ = await self.db.fetch("SELECT COUNT(*) AS n FROM messages WHERE shop = ? AND done = 0", shop)
        return {"calls_today": int(calls[0]["n"]), "open_messages": int(open_[0]["n"])}


def day_range(day: str, tz: str) -> tuple[str, str] | None:
    """The UTC ISO bounds of a local calendar day `YYYY-MM-DD` in the shop's timezone (records are UTC)."""
    try:
        d = date.fromisoformat(day)
        zone = ZoneInfo(tz)
    except (ValueError, KeyError):
        return None
    start = datetime.combine(d, time(0), zone).astimezone(UTC)
    end = datetime.combine(d + timedelta(days=1), time(0), zone).astimezone(UTC)
    return start.strftime("%Y-%m-%dT%H:%M:%S"), end.strftime("%Y-%m-%dT%H:%M:%S")


def _filters(sql: str, args: list[Any], q: str, span: tuple[str, str] | None, col: str) -> tuple[str, list[Any]]:
    if q.strip():
        # LIKE with the user's text escaped: % and _ are literals, not wildcards
        needle = q.strip().lower()[:100].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        sql += " AND search LIKE ? ESCAPE '\\'"
        args.append(f"%{needle}%")
    if span is not None:
        sql += f" AND {col} >= ? AND {col} < ?"
        args += list(span)
    return sql, args
