"""The web service's database: SQLite embedded by default, PostgreSQL when a `postgresql://` URL is configured.

One small SQL dialect serves both: `?` placeholders (rewritten to `$n` for PostgreSQL), `ON CONFLICT ... DO
NOTHING`, integers for booleans, text for JSON. SQLite runs on one private thread (the event loop never blocks
on disk, the connection stays on the thread that opened it); PostgreSQL through asyncpg's pool.
Every query that reads tenant data takes the shop as a parameter: the repository (`repo.py`) never offers a
lookup by id alone.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

_T = TypeVar("_T")
Row = dict[str, Any]

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS owners (
        id TEXT PRIMARY KEY, shop TEXT NOT NULL, username TEXT NOT NULL, password_hash TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL, UNIQUE (shop, username))""",
    """CREATE TABLE IF NOT EXISTS invites (
        token_hash TEXT PRIMARY KEY, shop TEXT NOT NULL, expires_at DOUBLE PRECISION NOT NULL,
        used_at DOUBLE PRECISION)""",
    """CREATE TABLE IF NOT EXISTS sessions (
        id_hash TEXT PRIMARY KEY, owner_id TEXT NOT NULL, shop TEXT NOT NULL, csrf TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS calls (
        shop TEXT NOT NULL, call_id TEXT NOT NULL, started_at TEXT NOT NULL, caller TEXT NOT NULL,
        outcome TEXT NOT NULL, duration_s DOUBLE PRECISION NOT NULL, summary TEXT NOT NULL,
        transcript TEXT NOT NULL, latency_s DOUBLE PRECISION, search TEXT NOT NULL, PRIMARY KEY (shop, call_id))""",
    """CREATE TABLE IF NOT EXISTS messages (
        shop TEXT NOT NULL, id TEXT NOT NULL, call_id TEXT NOT NULL, created_at TEXT NOT NULL,
        caller_name TEXT NOT NULL, callback TEXT NOT NULL, body TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0,
        search TEXT NOT NULL, PRIMARY KEY (shop, id))""",
    "CREATE INDEX IF NOT EXISTS calls_by_time ON calls (shop, started_at)",
    "CREATE INDEX IF NOT EXISTS messages_by_time ON messages (shop, created_at)",
]


class Database(Protocol):
    async def execute(self, sql: str, *args: Any) -> int:
        """Run one statement; returns the number of rows it changed."""
        ...

    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...

    async def close(self) -> None: ...


class SqliteDatabase:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webdb")
        self._conn: sqlite3.Connection | None = None

    async def _run(self, fn: Callable[[], _T]) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def open(self) -> SqliteDatabase:
        def _open() -> None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=10000")
            conn.row_factory = sqlite3.Row
            for stmt in SCHEMA:
                conn.execute(stmt)
            self._conn = conn

        await self._run(_open)
        return self

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("database is closed")
        return self._conn

    async def execute(self, sql: str, *args: Any) -> int:
        return await self._run(lambda: self._db().execute(sql, args).rowcount)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return await self._run(lambda: [dict(r) for r in self._db().execute(sql, args).fetchall()])

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await self._run(conn.close)
        self._executor.shutdown(wait=True)


_PLACEHOLDER = re.compile(r"\?")


def to_dollar(sql: str) -> str:
    """`?` placeholders to PostgreSQL's `$1, $2, ...` (our SQL never has a literal `?`)."""
    n = 0

    def repl(_: re.Match[str]) -> str:
        nonlocal n
        n += 1
        return f"${n}"

    return _PLACEHOLDER.sub(repl, sql)


class PostgresDatabase:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._pool: Any = None

    async def open(self) -> PostgresDatabase:
        import asyncpg  # type: ignore[import-untyped]  # imported here: the SQLite default does not need the driver

        self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=5)
        async with self._pool.acquire() as conn:
            for stmt in SCHEMA:
                await conn.execute(stmt)
        return self

    async def execute(self, sql: str, *args: Any) -> int:
        status: str = await self._pool.execute(to_dollar(sql), *args)
        tail = status.rsplit(" ", 1)[-1]  # "UPDATE 1", "INSERT 0 1"
        return int(tail) if tail.isdigit() else 0

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        rows: Sequence[Any] = await self._pool.fetch(to_dollar(sql), *args)
        return [dict(r) for r in rows]

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


async def open_database(url: str) -> Database:
    """`sqlite:///path/web.sqlite` (or a plain path) or `postgresql://user@host:port/db`."""
    if url.startswith(("postgresql://", "postgres://")):
        return await PostgresDatabase(url).open()
    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
    return await SqliteDatabase(Path(path)).open()
