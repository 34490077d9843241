"""A stand-in agent process for the durable-delivery test: enqueue, then deliver until killed.

Run as `python -P outbox_agent.py DB URL SECRET N_MESSAGES N_CALLS`. Prints one JSON line
`{"enqueued": [...keys]}` once everything is committed, then one line per delivery attempt result, so the
test can SIGKILL it at a known point (after the webhook refused connections a few times).
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from storeagent.agent.secrets import Secret
from storeagent.agent.store.callrecord import CallRecordInput, TurnRecord, call_record_key, enqueue_call_record
from storeagent.agent.store.outbox import Outbox, OutboxMessageSink, message_key
from storeagent.agent.store.webhook import DeliveryPolicy, WebhookDeliverer


class PrintMetrics:
    def webhook_delivery(self, result: str) -> None:
        print(json.dumps({"result": result}), flush=True)

    def outbox_pending(self, count: int) -> None:
        pass


def sample_message(i: int) -> dict[str, object]:
    return {
        "id": f"msg{i:03d}",
        "store": "sunrise-bakery",
        "caller_name": f"Caller {i}",
        "callback_number": f"+1555123{i:04d}",
        "message": f"Please call me back about order {i}.",
        "created_at": "2026-01-02T10:00:00+00:00",
    }


def sample_call(i: int) -> CallRecordInput:
    start = datetime(2026, 1, 2, 10, 0, tzinfo=UTC)
    return CallRecordInput(
        call_id=f"call-{i:04d}",
        store="sunrise-bakery",
        started_at=start,
        ended_at=start + timedelta(seconds=30 + i),
        outcome="message",
        caller_number=f"+1555987{i:04d}",
        message=sample_message(i),
        turns=[
            TurnRecord("agent", "Thank you for calling Sunrise Bakery.", 0.2, 2.0),
            TurnRecord("caller", f"Can I leave a message about order {i}?", 2.5, 4.0),
            TurnRecord("agent", "Of course.", 4.6, 5.2, latency={"voice_to_voice": 0.6}),
        ],
    )


async def main(db: str, url: str, secret: str, n_messages: int, n_calls: int) -> None:
    outbox = await Outbox.open(Path(db), store="sunrise-bakery")
    sink = OutboxMessageSink(outbox)
    keys: list[str] = []
    for i in range(n_messages):
        await sink.submit(sample_message(i))
        keys.append(message_key(sample_message(i)))
    for i in range(n_calls):
        await enqueue_call_record(outbox, sample_call(i))
        keys.append(call_record_key(sample_call(i).call_id))
    print(json.dumps({"enqueued": keys}), flush=True)
    policy = DeliveryPolicy(base_delay_s=0.05, max_delay_s=0.2, request_timeout_s=2.0)
    deliverer = WebhookDeliverer(outbox, url, secret=Secret(secret), policy=policy, metrics=PrintMetrics())
    await deliverer.start()
    await asyncio.Event().wait()  # until SIGKILL: no clean shutdown on purpose


if __name__ == "__main__":
    db, url, secret, n_messages, n_calls = sys.argv[1:6]
    asyncio.run(main(db, url, secret, int(n_messages), int(n_calls)))
