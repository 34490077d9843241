"""Webhook delivery against a real local HTTP server: durable across SIGKILL, retried, de-duplicated, drained.

Everything runs on 127.0.0.1 with backoffs of tens of milliseconds, so the whole file takes a few seconds.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from storeagent.agent.secrets import Secret
from storeagent.agent.store.callrecord import enqueue_call_record
from storeagent.agent.store.outbox import Outbox
from storeagent.agent.store.webhook import DeliveryPolicy, WebhookDeliverer, classify
from support.outbox_agent import sample_call, sample_message
from support.webhook_receiver import WebhookReceiver, free_port

AGENT_SCRIPT = Path(__file__).resolve().parent.parent / "support" / "outbox_agent.py"
SECRET = "whsec_test-signing-secret-0123456789"
FAST = DeliveryPolicy(base_delay_s=0.02, max_delay_s=0.2, request_timeout_s=2.0, drain_timeout_s=3.0)


class Recorder:
    def __init__(self) -> None:
        self.results: Counter[str] = Counter()
        self.pending: list[int] = []

    def webhook_delivery(self, result: str) -> None:
        self.results[result] += 1

    def outbox_pending(self, count: int) -> None:
        self.pending.append(count)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    """Poll `check`; the bound is generous (a loaded 2-core machine), the test normally passes in well under 1 s."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.02)


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[Outbox]:
    box = await Outbox.open(tmp_path / "outbox.sqlite", store="sunrise-bakery")
    yield box
    await box.close()


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    r = WebhookReceiver(free_port())  # tests that sign set `secret`
    await r.start()
    yield r
    await r.stop()


async def _read_agent(proc: asyncio.subprocess.Process, min_retries: int) -> list[str]:
    assert proc.stdout is not None
    keys: list[str] = []
    retries = 0
    while not keys or retries < min_retries:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line, "agent process exited early"
        doc = json.loads(line)
        keys = doc.get("enqueued", keys)
        retries += doc.get("result") == "retry"
    return keys


async def test_every_item_delivered_once_per_key_across_sigkill_and_outage(tmp_path: Path) -> None:
    db = tmp_path / "outbox.sqlite"
    # Connection refused at first: nothing listens on the port yet.
    hook = WebhookReceiver(free_port(), secret=SECRET.encode(), faults=["500", "drop", "500", "500"])
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-P", str(AGENT_SCRIPT), str(db), hook.url, SECRET, "5", "3",
        stdout=asyncio.subprocess.PIPE, cwd=tmp_path,
    )  # fmt: skip
    try:
        keys = await _read_agent(proc, min_retries=3)
    finally:
        proc.send_signal(signal.SIGKILL)  # the agent dies without any shutdown path
        assert await proc.wait() == -signal.SIGKILL
    assert len(keys) == 8 and len(set(keys)) == 8

    # "Restart": a fresh outbox and deliverer on the same file.
    outbox = await Outbox.open(db, store="sunrise-bakery")
    try:
        assert await outbox.counts() == {"pending": 8, "done": 0, "dead": 0}
        assert sum(i.attempts for i in await outbox.pending()) >= 3  # the dead process's failures were recorded
        assert await enqueue_call_record(outbox, sample_call(0)) is False  # re-enqueued after restart: no-op
        await hook.start()
        metrics = Recorder()
        deliverer = WebhookDeliverer(outbox, hook.url, secret=Secret(SECRET), policy=FAST, metrics=metrics)
        await deliverer.start()

        async def all_delivered() -> bool:
            return await outbox.pending_count() == 0

        await eventually(all_delivered)
        await deliverer.stop()
        assert await outbox.counts() == {"pending": 0, "done": 8, "dead": 0}
    finally:
        await outbox.close()
        await hook.stop()

    # No loss, each key stored exactly once, and duplicates really happened on the wire.
    assert set(hook.stored) == set(keys)
    assert set(hook.store_count.values()) == {1}
    dropped = next(r.key for r in hook.wire if r.fault == "drop")
    assert dropped is not None and hook.wire_count(dropped) >= 2
    assert len(hook.wire) > len(keys)
    assert hook.bad_signatures == 0 and all(r.signature for r in hook.wire)
    assert metrics.results["delivered"] == 8 and metrics.results["retry"] >= 4 and metrics.results["dead"] == 0
    assert metrics.pending[-1] == 0
    # What arrived is what was enqueued.
    for i in range(5):
        env = hook.stored[f"message:msg{i:03d}"]
        assert env["type"] == "message" and env["store"] == "sunrise-bakery" and env["data"] == sample_message(i)
    for i in range(3):
        env = hook.stored[f"call_record:call-{i:04d}"]
        assert env["type"] == "call_record"
        assert env["data"]["caller_number"] == f"+1555987{i:04d}" and env["data"]["outcome"] == "message"
        assert f"order {i}" in env["data"]["summary"]


@pytest.mark.parametrize(
    ("status", "result"),
    [(200, "delivered"), (204, "delivered"), (302, "dead"), (400, "dead"), (401, "dead"), (404, "dead"),
     (408, "retry"), (429, "retry"), (500, "retry"), (502, "retry"), (503, "retry")],
)  # fmt: skip
def test_classify(status: int, result: str) -> None:
    assert classify(status) == result


async def test_permanent_failure_is_kept_dead_and_not_retried(outbox: Outbox, receiver: WebhookReceiver) -> None:
    receiver.faults = ["404"]
    receiver.secret = SECRET.encode()
    metrics = Recorder()
    d = WebhookDeliverer(outbox, receiver.url, secret=Secret(SECRET), policy=FAST, metrics=metrics)
    await d.start()
    await outbox.enqueue("message", {"message": "hi"}, "m1")
    await outbox.enqueue("message", {"message": "second"}, "m2")

    async def settled() -> bool:
        return (await outbox.counts())["pending"] == 0

    await eventually(settled)
    await asyncio.sleep(0.2)  # several backoff periods: a dead item must not be tried again
    await d.stop()
    dead = await outbox.get("m1")
    assert dead is not None and dead.status == "dead" and dead.last_error == "HTTP 404"
    assert receiver.wire_count("m1") == 1 and "m2" in receiver.stored
    assert metrics.results == Counter({"dead": 1, "delivered": 1})
    assert await outbox.requeue_dead() == 1  # the shop fixed its endpoint: revive and deliver
    d2 = WebhookDeliverer(outbox, receiver.url, secret=Secret(SECRET), policy=FAST)
    await d2.start()
    await eventually(settled)
    await d2.stop()
    assert "m1" in receiver.stored


async def test_timeout_and_rate_limit_are_retried(outbox: Outbox, receiver: WebhookReceiver) -> None:
    receiver.faults = ["slow", "429"]
    receiver.retry_after = "0.3"
    receiver.slow_s = 1.0
    policy = DeliveryPolicy(base_delay_s=0.01, max_delay_s=1.0, request_timeout_s=0.2)
    metrics = Recorder()
    d = WebhookDeliverer(outbox, receiver.url, policy=policy, metrics=metrics)  # no secret: no signature
    await d.start()
    await outbox.enqueue("call_record", {"call_id": "c1"}, "call_record:c1")

    async def delivered() -> bool:
        item = await outbox.get("call_record:c1")
        return item is not None and item.status == "done"

    await eventually(delivered)
    await d.stop()
    assert [r.fault for r in receiver.wire] == ["slow", "429", None]
    assert receiver.wire[2].at - receiver.wire[1].at >= 0.25  # Retry-After (0.3 s) outranks the 10 ms backoff
    assert all(r.signature is None for r in receiver.wire)
    assert metrics.results == Counter({"retry": 2, "delivered": 1})


async def test_stop_drains_pending_items_once_more(outbox: Outbox, tmp_path: Path) -> None:
    hook = WebhookReceiver(free_port())
    slow = DeliveryPolicy(base_delay_s=60.0, max_delay_s=60.0, drain_timeout_s=5.0)  # no retry before stop
    d = WebhookDeliverer(outbox, hook.url, policy=slow)
    await d.start()
    await outbox.enqueue("message", {"message": "late"}, "m1")

    async def attempted() -> bool:
        item = await outbox.get("m1")
        return item is not None and item.attempts == 1

    await eventually(attempted)  # connection refused, next try in ~a minute
    await hook.start()
    try:
        await d.stop()  # the drain tries it once more, now successfully
        assert "m1" in hook.stored and (await outbox.get("m1")).status == "done"  # type: ignore[union-attr]
    finally:
        await hook.stop()


async def test_stop_is_bounded_when_the_webhook_hangs(outbox: Outbox, receiver: WebhookReceiver) -> None:
    receiver.faults = ["slow", "slow"]
    receiver.slow_s = 30.0
    policy = DeliveryPolicy(request_timeout_s=60.0, drain_timeout_s=0.3)
    d = WebhookDeliverer(outbox, receiver.url, policy=policy)
    await d.start()
    await outbox.enqueue("message", {"message": "stuck"}, "m1")
    await eventually(lambda: _true_when(len(receiver.wire) >= 1))
    t0 = time.monotonic()
    await d.stop()
    assert time.monotonic() - t0 < 10.0  # generous; the budget is 0.3 s
    item = await outbox.get("m1")
    assert item is not None and item.status == "pending"  # stays for the next start


async def _true_when(value: bool) -> bool:
    return value


def test_backoff_is_capped_and_jittered() -> None:
    p = DeliveryPolicy(base_delay_s=1.0, max_delay_s=10.0, multiplier=2.0, jitter=0.5)
    rng = random.Random(7)
    for failures, nominal in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (50, 10.0)]:
        delays = [p.delay(failures, rng) for _ in range(200)]
        assert all(nominal * 0.5 <= x <= nominal for x in delays)
        assert max(delays) - min(delays) > nominal * 0.3  # really spread, not lockstep


async def test_rejects_non_http_url(outbox: Outbox) -> None:
    with pytest.raises(ValueError, match=r"^url:"):
        WebhookDeliverer(outbox, "ftp://example.invalid/hook")
