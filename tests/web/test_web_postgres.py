"""The same repository and sign-in code on a real PostgreSQL (Debian's server, started by the fixture)."""

from __future__ import annotations

import pytest

from storeagent.web.auth import Auth
from storeagent.web.db import PostgresDatabase, to_dollar
from storeagent.web.repo import Repo, day_range
from support.webtest import SHOP_A, SHOP_B, call_record, message

pytestmark = pytest.mark.integration


def test_placeholders_become_numbered() -> None:
    assert to_dollar("SELECT ? , ? WHERE a = ?") == "SELECT $1 , $2 WHERE a = $3"


async def test_repo_and_auth_on_postgresql(postgres: str) -> None:
    db = await PostgresDatabase(postgres).open()
    try:
        await db.execute("DELETE FROM messages")
        await db.execute("DELETE FROM calls")
        repo = Repo(db)
        rec = call_record("pg-call", "2026-12-02T01:00:00.000Z")
        rec["message"] = message("pg-m", "100% sure_thing", "2026-12-02T01:00:01+00:00")
        item = {"type": "call_record", "store": SHOP_A, "data": rec}
        assert await repo.ingest(SHOP_A, item) is True
        assert await repo.ingest(SHOP_A, item) is False  # at-least-once delivery: stored once
        await repo.ingest(SHOP_B, {"type": "message", "store": SHOP_B, "data": message("b-m", "other shop")})
        assert [m["id"] for m in await repo.messages(SHOP_A)] == ["pg-m"]
        assert [m["id"] for m in await repo.messages(SHOP_A, q="100%")] == ["pg-m"]
        assert await repo.messages(SHOP_A, q="1_0") == []  # LIKE wildcards are literals
        assert await repo.set_done(SHOP_A, "b-m", True) is False  # another shop's id changes nothing
        assert await repo.set_done(SHOP_A, "pg-m", True) is True
        assert await repo.messages(SHOP_A, status="open") == []
        seoul = day_range("2026-12-02", "Asia/Seoul")  # 2026-12-01T15:00Z .. 2026-12-02T15:00Z
        calls = await repo.calls(SHOP_A, span=seoul, q="saturday")
        assert [c["call_id"] for c in calls] == ["pg-call"] and calls[0]["transcript"][1]["role"] == "agent"
        assert await repo.calls(SHOP_A, span=day_range("2026-12-03", "Asia/Seoul")) == []
        auth = Auth(db, session_ttl_s=60, invite_ttl_s=60)
        token = await auth.invite(SHOP_A)
        owner = await auth.accept_invite(token, "pg-owner", "a long enough password")
        assert owner and await auth.accept_invite(token, "again", "a long enough password") is None
        assert await auth.sign_in(SHOP_A, "pg-owner", "a long enough password") == owner
        assert await auth.sign_in(SHOP_B, "pg-owner", "a long enough password") is None
        sid = await auth.start_session(owner)
        s = await auth.session(sid)
        assert s is not None and s.shop == SHOP_A
    finally:
        await db.close()
