"""Durable outbox: idempotent enqueue, survives reopening, state transitions, the take_message sink."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storeagent.agent.store.outbox import Outbox, OutboxMessageSink, message_key


class Clock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def box(tmp_path: Path, clock: Clock) -> AsyncIterator[Outbox]:
    b = await Outbox.open(tmp_path / "sub" / "outbox.sqlite", store="sunrise-bakery", clock=clock)
    yield b
    await b.close()


async def test_enqueue_is_idempotent_per_key(box: Outbox) -> None:
    assert await box.enqueue("message", {"message": "call me"}, "k1") is True
    assert await box.enqueue("message", {"message": "different body, same key"}, "k1") is False
    assert await box.counts() == {"pending": 1, "done": 0, "dead": 0}
    item = await box.get("k1")
    assert item is not None
    doc = json.loads(item.body)
    assert doc["data"] == {"message": "call me"}  # the first write wins
    assert doc["id"] == "k1" and doc["type"] == "message" and doc["store"] == "sunrise-bakery"
    assert doc["created_at"] == "2023-11-14T22:13:20Z"


async def test_items_survive_reopen_and_use_wal(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "outbox.sqlite"
    a = await Outbox.open(path, store="s", clock=clock)
    await a.enqueue("message", {"n": 1}, "m1")
    await a.enqueue("call_record", {"n": 2}, "c1")
    await a.close()
    b = await Outbox.open(path, store="s", clock=clock)
    try:
        assert [i.key for i in await b.pending()] == ["m1", "c1"]
        assert await b.enqueue("message", {"n": 1}, "m1") is False
    finally:
        await b.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize(
    ("kind", "payload", "key", "field"),
    [
        ("sms", {}, "k", "kind"),
        ("message", {}, "", "idempotency_key"),
        ("message", {}, "a\nb", "idempotency_key"),
        ("message", {}, "x" * 201, "idempotency_key"),
        ("message", ["not", "a", "dict"], "k", "payload"),
        ("message", {"t": object()}, "k", "payload"),
    ],
)
async def test_invalid_input_names_the_field(box: Outbox, kind: str, payload: object, key: str, field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}:"):
        await box.enqueue(kind, payload, key)  # type: ignore[arg-type]
    assert await box.pending_count() == 0


async def test_due_retry_done_dead(box: Outbox, clock: Clock) -> None:
    for k in ("a", "b", "c"):
        await box.enqueue("message", {"k": k}, k)
    a, b, c = await box.due()
    await box.mark_retry(a.id, clock.t + 10, "HTTP 500")
    await box.mark_done(b.id)
    await box.mark_dead(c.id, "HTTP 404")
    assert await box.due() == []
    assert await box.next_due_at() == clock.t + 10
    clock.t += 10
    (again,) = await box.due()
    assert again.key == "a" and again.attempts == 1 and again.last_error == "HTTP 500"
    assert await box.counts() == {"pending": 1, "done": 1, "dead": 1}
    # A finished item is never resurrected by a late mark (e.g. a stale retry after it was delivered).
    await box.mark_retry(b.id, clock.t, "late")
    assert (await box.get("b")).status == "done"  # type: ignore[union-attr]
    assert await box.requeue_dead() == 1
    assert {i.key for i in await box.due()} == {"a", "c"}


async def test_make_all_due_and_prune(box: Outbox, clock: Clock) -> None:
    await box.enqueue("message", {}, "a")
    await box.enqueue("message", {}, "b")
    a, b = await box.due()
    await box.mark_retry(a.id, clock.t + 300, "timeout")
    await box.mark_done(b.id)
    assert [i.key for i in await box.due()] == []
    assert await box.make_all_due() == 1
    assert [i.key for i in await box.due()] == ["a"]
    clock.t += 100
    assert await box.prune_done(older_than_s=200) == 0
    assert await box.prune_done(older_than_s=50) == 1
    assert await box.get("b") is None and await box.get("a") is not None


async def test_enqueue_notifies_subscribers_only_for_new_items(box: Outbox) -> None:
    seen: list[int] = []
    box.subscribe(lambda: seen.append(1))
    await box.enqueue("message", {}, "a")
    await box.enqueue("message", {}, "a")
    assert seen == [1]


async def test_message_sink_uses_tool_message_id(box: Outbox) -> None:
    sink = OutboxMessageSink(box)
    msg = {"id": "abc123", "store": "s", "caller_name": "Kim", "callback_number": "+15551230001", "message": "hi"}
    await sink.submit(msg)
    await sink.submit(dict(msg))  # the same message again (a retried tool call): stored once
    (item,) = await box.pending()
    assert item.key == "message:abc123" and item.kind == "message"
    assert json.loads(item.body)["data"] == msg


def test_message_key_without_id_is_content_derived() -> None:
    a = message_key({"caller_name": "Kim", "message": "hi"})
    assert a == message_key({"message": "hi", "caller_name": "Kim"})
    assert a != message_key({"caller_name": "Kim", "message": "hello"})
    assert message_key({"idempotency_key": "explicit", "id": "x"}) == "explicit"
