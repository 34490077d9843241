"""Builds the agent's parts from settings and the shop config (used by `__main__` and the demo).

Kept apart from `__main__` so the demo and tests compose the same real parts the service runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from storeagent.agent.metrics import AgentMetrics
from storeagent.agent.pipeline.conversation import ConversationOutcome
from storeagent.agent.ports import CallControl, ProviderSet, Tools
from storeagent.agent.providers.factory import build_providers as build_chain
from storeagent.agent.secrets import WEBHOOK_SECRET, Secrets
from storeagent.agent.settings import AgentSettings
from storeagent.agent.store.callrecord import CallRecordInput, TransferRecord, TurnRecord, enqueue_call_record
from storeagent.agent.store.outbox import Outbox, OutboxMessageSink
from storeagent.agent.store.tools import ShopTools
from storeagent.agent.store.webhook import WebhookDeliverer
from storeagent.policy import NumberPolicy, UrlPolicy
from storeagent.shop import Providers, ShopConfig

log = logging.getLogger(__name__)


def build_providers(shop: ShopConfig, mode: str, metrics: AgentMetrics, secrets: Secrets | None = None,
                    url_policy: UrlPolicy | None = None, speech_url: str = "") -> ProviderSet:
    """`config`: the shop's chains (cloud first, offline last); `offline`: the offline set only."""
    if mode == "offline":
        shop = shop.model_copy(update={"providers": Providers()})
    elif mode != "config":
        raise ValueError(f"providers: unknown mode {mode!r} (config|offline)")
    return build_chain(shop, metrics, secrets=secrets or Secrets.from_env(), url_policy=url_policy,
                       speech_url=speech_url)


class _CallSink:
    """The take_message sink of one call: stores durably and remembers the message for the call record."""

    def __init__(self, svc: OutboxService, call_id: str) -> None:
        self._svc, self._call_id = svc, call_id

    async def submit(self, message: dict[str, Any]) -> None:
        message = {**message, "call_id": self._call_id}
        self._svc.messages[self._call_id] = message
        await self._svc.sink.submit(message)


class OutboxService:
    """The durable outbox plus, when the shop has a webhook, its deliverer; call records at hangup."""

    def __init__(self, shop: ShopConfig, outbox: Outbox, deliverer: WebhookDeliverer | None,
                 number_policy: NumberPolicy | None = None) -> None:
        self.shop, self.outbox, self.deliverer = shop, outbox, deliverer
        self.number_policy = number_policy
        self.sink = OutboxMessageSink(outbox)
        self.messages: dict[str, dict[str, Any]] = {}

    def tools_factory(self) -> Callable[[CallControl], Tools]:
        def make(call: CallControl) -> Tools:
            return ShopTools(self.shop, _CallSink(self, call.uuid), number_policy=self.number_policy)

        return make

    async def on_call_finished(self, uuid: str, call: CallControl, outcome: ConversationOutcome,
                               duration: float) -> None:
        ended = datetime.now(UTC)
        started = ended - timedelta(seconds=duration)
        t0 = time.monotonic() - duration
        turns = []
        # The k-th measured turn's latencies go on the first real reply (not the filler) after the k-th caller line.
        pending = iter(outcome.latencies)
        owed = False
        for line in outcome.transcript:
            text = line.heard if line.role == "agent" and line.heard is not None else line.text
            if not text:
                continue
            at = max(0.0, min(duration, line.at - t0)) if line.at else 0.0
            latency: dict[str, float] = {}
            if line.role == "caller":
                owed = True
            elif owed and line.heard is not None:
                owed = False
                lat = next(pending, None)
                if lat is not None:
                    latency = {k: v for k in ("stt_final", "llm_first_token", "tts_first_audio", "voice_to_voice")
                               if (v := getattr(lat, k)) is not None and v >= 0 and v == v}
            turns.append(TurnRecord(role="caller" if line.role == "caller" else "agent", text=text,
                                    start_s=at, end_s=at, latency=latency,
                                    # heard is None for audio sent without marks (the short filler)
                                    truncated=line.role == "agent" and line.heard not in (None, line.text)))
        rec = CallRecordInput(
            call_id=uuid, store=self.shop.store, started_at=started, ended_at=ended,
            outcome=outcome.outcome if outcome.outcome in ("answered", "message", "transferred", "abandoned",
                                                           "failed") else "failed",  # type: ignore[arg-type]
            turns=turns, caller_number=call.channel.get("Caller-Caller-ID-Number"),
            message=self.messages.pop(uuid, None), language=self.shop.language, end_reason=outcome.reason,
            transferred_to=outcome.transferred_to,
            transfers=[TransferRecord(t.to, t.answered, t.cause) for t in outcome.transfers],
        )
        await enqueue_call_record(self.outbox, rec)

    async def aclose(self) -> None:
        if self.deliverer is not None:
            await self.deliverer.stop()
        await self.outbox.close()


async def build_outbox(settings: AgentSettings, shop: ShopConfig, secrets: Secrets | None = None) -> OutboxService:
    outbox = await Outbox.open(settings.data_dir / "outbox.sqlite", store=shop.store)
    deliverer = None
    if shop.webhook is not None:
        secret = (secrets or Secrets()).get(WEBHOOK_SECRET)
        if secret is None:
            log.warning("webhook deliveries are unsigned: no STOREAGENT_WEBHOOK_SECRET(_FILE) "
                        "(spec.webhook.signingSecretRef)")
        deliverer = WebhookDeliverer(outbox, shop.webhook.url, secret=secret,
                                     url_policy=settings.tenant_policy.urls)
        await deliverer.start()
    else:
        log.info("no webhook configured: messages and call records are kept in %s", settings.data_dir)
    return OutboxService(shop, outbox, deliverer, settings.tenant_policy.numbers)
