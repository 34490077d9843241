"""Durable outbox: messages and call records wait here (sqlite, WAL) until the shop's webhook accepts them.

A row is written, and committed with `synchronous=FULL`, before `enqueue` returns, so an item survives a crash
or a SIGKILL right after. Each row keeps the exact JSON body it will POST: every attempt (and every process
that retries it) sends the same bytes, so the receiver's signature check and de-duplication see one item.
All sqlite calls run on one private worker thread: the event loop never blocks on disk, and the connection is
only ever used from the thread that opened it.

One deliverer per file (one per process: each agent pod mounts its own volume).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

Kind = Literal["message", "call_record"]
Status = Literal["pending", "done", "dead"]
KINDS: tuple[str, ...] = get_args(Kind)
MAX_KEY_LEN = 200
DEFAULT_PATH = Path("./data/outbox.sqlite")  # local runs; the pod uses <data_dir>/outbox.sqlite on its volume

_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('message', 'call_record')),
    body TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    next_attempt_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_attempt_at);
"""
_COLUMNS = "id, idempotency_key, kind, body, status, attempts, created_at, next_attempt_at, last_error"


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    key: str
    kind: Kind
    body: str  # the JSON envelope POSTed as is (docs/webhooks.md)
    status: Status
    attempts: int
    created_at: float  # unix seconds (wall clock: it must mean the same after a restart)
    next_attempt_at: float
    last_error: str | None

    @classmethod
    def _from_row(cls, row: tuple[Any, ...]) -> OutboxItem:
        return cls(*row)


def envelope(kind: str, payload: Mapping[str, Any], key: str, store: str, created_at: float) -> str:
    """The body POSTed for one item; compact, key-sorted JSON so it is stable across retries."""
    doc = {
        "id": key,
        "type": kind,
        "store": store,
        "created_at": datetime.fromtimestamp(created_at, UTC).isoformat().replace("+00:00", "Z"),
        "data": dict(payload),
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


class Outbox:
    """Open with `await Outbox.open(path, store=...)`; close with `await outbox.close()`."""

    def __init__(self, path: Path, store: str, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.store = store
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self._conn: sqlite3.Connection | None = None
        self._listeners: list[Callable[[], None]] = []

    @classmethod
    async def open(
        cls, path: Path | str = DEFAULT_PATH, *, store: str, clock: Callable[[], float] = time.time
    ) -> Outbox:
        box = cls(Path(path), store, clock=clock)
        await box._run(box._open_sync)
        return box

    def _open_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit (isolation_level=None): each statement is its own transaction, committed on return.
        conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # a message a caller left must survive a node crash too
        conn.execute("PRAGMA busy_timeout=10000")
        conn.executescript(_SCHEMA)
        self._conn = conn

    async def close(self) -> None:
        if self._conn is not None:
            await self._run(self._close_sync)
        self._executor.shutdown(wait=True)

    def _close_sync(self) -> None:
        assert self._conn is not None
        self._conn.close()
        self._conn = None

    async def _run(self, fn: Callable[[], _T]) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("outbox is closed")
        return self._conn

    def now(self) -> float:
        """The outbox's clock (unix seconds); schedule retries with it, not with time.time() directly."""
        return self._clock()

    def subscribe(self, callback: Callable[[], None]) -> None:
        """Call `callback` (on the event loop) after each new item; the deliverer uses it to wake up."""
        self._listeners.append(callback)

    # ------------------------------------------------------------------------------------------ writes
    async def enqueue(self, kind: str, payload: Mapping[str, Any], idempotency_key: str) -> bool:
        """Store one item for delivery. True if new; False if the key was already there (a no-op)."""
        if kind not in KINDS:
            raise ValueError(f"kind: must be one of {', '.join(KINDS)}, got {kind!r}")
        if not isinstance(idempotency_key, str) or not idempotency_key.strip():
            raise ValueError("idempotency_key: must be a non-empty string")
        if len(idempotency_key) > MAX_KEY_LEN or not idempotency_key.isprintable():
            raise ValueError(f"idempotency_key: at most {MAX_KEY_LEN} printable characters (it is an HTTP header)")
        if not isinstance(payload, Mapping):
            raise ValueError(f"payload: must be a mapping, got {type(payload).__name__}")
        now = self._clock()
        try:
            body = envelope(kind, payload, idempotency_key, self.store, now)
        except (TypeError, ValueError) as err:
            raise ValueError(f"payload: not JSON-serializable: {err}") from None

        def insert() -> bool:
            cur = self._db().execute(
                "INSERT OR IGNORE INTO outbox (idempotency_key, kind, body, created_at, next_attempt_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (idempotency_key, kind, body, now, now, now),
            )
            return cur.rowcount == 1

        added = await self._run(insert)
        if added:
            for cb in self._listeners:
                cb()
        return added

    async def mark_done(self, item_id: int) -> None:
        await self._update(item_id, "status = 'done', attempts = attempts + 1, last_error = NULL")

    async def mark_retry(self, item_id: int, next_attempt_at: float, error: str) -> None:
        await self._update(
            item_id, "attempts = attempts + 1, next_attempt_at = ?, last_error = ?", next_attempt_at, error[:500]
        )

    async def mark_dead(self, item_id: int, error: str) -> None:
        """Permanent failure: kept (not deleted) for inspection and `requeue_dead`, never retried on its own."""
        await self._update(item_id, "status = 'dead', attempts = attempts + 1, last_error = ?", error[:500])

    async def _update(self, item_id: int, assignments: str, *params: object) -> None:
        now = self._clock()
        sql = f"UPDATE outbox SET {assignments}, updated_at = ? WHERE id = ? AND status = 'pending'"
        await self._run(lambda: self._db().execute(sql, (*params, now, item_id)))

    async def make_all_due(self) -> int:
        """Make every pending item due now (the webhook recovered: do not wait out each item's backoff)."""
        now = self._clock()
        sql = "UPDATE outbox SET next_attempt_at = ? WHERE status = 'pending' AND next_attempt_at > ?"
        return await self._run(lambda: self._db().execute(sql, (now, now)).rowcount)

    async def requeue_dead(self) -> int:
        """Move dead items back to pending (after the shop fixed its webhook); returns how many."""
        now = self._clock()
        sql = "UPDATE outbox SET status = 'pending', next_attempt_at = ?, updated_at = ? WHERE status = 'dead'"
        n = await self._run(lambda: self._db().execute(sql, (now, now)).rowcount)
        if n:
            for cb in self._listeners:
                cb()
        return n

    async def prune_done(self, older_than_s: float) -> int:
        """Delete delivered items last touched more than `older_than_s` ago; returns how many."""
        cutoff = self._clock() - older_than_s
        sql = "DELETE FROM outbox WHERE status = 'done' AND updated_at < ?"
        return await self._run(lambda: self._db().execute(sql, (cutoff,)).rowcount)

    # ------------------------------------------------------------------------------------------- reads
    async def due(self, limit: int = 50, now: float | None = None) -> list[OutboxItem]:
        """Pending items whose next attempt is due, soonest first (then oldest)."""
        t = self._clock() if now is None else now
        sql = (
            f"SELECT {_COLUMNS} FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?"
            " ORDER BY next_attempt_at, id LIMIT ?"
        )
        rows = await self._run(lambda: self._db().execute(sql, (t, limit)).fetchall())
        return [OutboxItem._from_row(r) for r in rows]

    async def pending(self, limit: int = 1000) -> list[OutboxItem]:
        """All pending items, oldest first, due or not (the shutdown drain tries them once more)."""
        sql = f"SELECT {_COLUMNS} FROM outbox WHERE status = 'pending' ORDER BY id LIMIT ?"
        rows = await self._run(lambda: self._db().execute(sql, (limit,)).fetchall())
        return [OutboxItem._from_row(r) for r in rows]

    async def next_due_at(self) -> float | None:
        sql = "SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'pending'"
        row = await self._run(lambda: self._db().execute(sql).fetchone())
        return None if row is None or row[0] is None else float(row[0])

    async def get(self, idempotency_key: str) -> OutboxItem | None:
        sql = f"SELECT {_COLUMNS} FROM outbox WHERE idempotency_key = ?"
        row = await self._run(lambda: self._db().execute(sql, (idempotency_key,)).fetchone())
        return None if row is None else OutboxItem._from_row(row)

    async def counts(self) -> dict[str, int]:
        """Items per status, every status present (0 when none)."""
        sql = "SELECT status, COUNT(*) FROM outbox GROUP BY status"
        rows = await self._run(lambda: self._db().execute(sql).fetchall())
        out = {"pending": 0, "done": 0, "dead": 0}
        out.update({str(s): int(n) for s, n in rows})
        return out

    async def pending_count(self) -> int:
        return (await self.counts())["pending"]


class OutboxMessageSink:
    """The `take_message` tool's MessageSink (agent/store/tools.py): `submit` stores the message durably.

    The idempotency key is `message:<id>` from the message's `id` (tools.py mints one per message), or
    `idempotency_key` when set; without either, it is derived from the content, so an identical resubmission
    is stored once.
    """

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    async def submit(self, message: dict[str, Any]) -> None:
        await self._outbox.enqueue("message", message, message_key(message))


def message_key(message: Mapping[str, Any]) -> str:
    explicit = message.get("idempotency_key")
    if isinstance(explicit, str) and explicit.strip():
        return explicit
    ident = message.get("id")
    if isinstance(ident, str) and ident.strip():
        return f"message:{ident}"
    canon = json.dumps(message, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))
    return f"message:sha256-{hashlib.sha256(canon.encode()).hexdigest()[:32]}"
