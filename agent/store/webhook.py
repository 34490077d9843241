"""Delivers outbox items to the shop's webhook: POST JSON, retry with capped jittered backoff, never lose one.

One `WebhookDeliverer` per process, an asyncio task beside the calls. Results by HTTP status (docs/webhooks.md):
2xx delivered; 408, 429, 5xx, timeouts and connection errors retried; any other status (3xx, 4xx) is a
permanent failure: the item is kept as `dead`, logged and counted, and `Outbox.requeue_dead()` revives it.
Every item is sent with `Idempotency-Key`: the receiver may see an item twice (a response lost on the way
back), never zero times.

Two backoffs work together. Each item has its own (so one item the receiver keeps rejecting with 500 does not
block the others), and the loop pauses after each retryable failure by a delay growing with consecutive
failures (so a webhook that is down sees one request per pause, not one per queued item). After a run of
failures ends, everything pending is made due at once, so an outage's backlog arrives right after recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import random
import time
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import urlsplit

import aiohttp

from storeagent.agent.netguard import policy_connector
from storeagent.agent.secrets import Secret
from storeagent.agent.store.outbox import Outbox, OutboxItem
from storeagent.policy import UrlPolicy, check_url, redact_url

log = logging.getLogger(__name__)

Result = Literal["delivered", "retry", "dead"]
SIGNATURE_HEADER = "X-StoreAgent-Signature"
USER_AGENT = "StoreAgent-Webhook/1"


class DeliveryMetrics(Protocol):
    """Named recorders (implemented by storeagent.agent.metrics.AgentMetrics); no prometheus import here."""

    def webhook_delivery(self, result: str) -> None: ...

    def outbox_pending(self, count: int) -> None: ...


class NullDeliveryMetrics:
    def webhook_delivery(self, result: str) -> None:
        pass

    def outbox_pending(self, count: int) -> None:
        pass


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """Retry and timing knobs, seconds. Defaults suit a shop webhook; tests shrink them."""

    base_delay_s: float = 1.0  # first retry after ~1 s: a blip (deploy, restart) clears quickly
    max_delay_s: float = 300.0  # cap: after an outage ends, nothing waits more than ~5 min (usually far less)
    multiplier: float = 2.0
    jitter: float = 0.5  # this fraction of each delay is random, so many agents do not retry in lockstep
    request_timeout_s: float = 10.0  # whole request; a hung receiver counts as a retryable failure
    drain_timeout_s: float = 5.0  # shutdown: one more try of pending items, bounded (pod grace period)
    outage_threshold: int = 3  # consecutive failures that mean "the webhook was down" (see module doc)
    batch: int = 20
    idle_recheck_s: float = 30.0  # wake this often even with nothing due (safety net, e.g. a clock jump)
    prune_done_after_s: float = 7 * 24 * 3600.0  # delivered items are deleted after a week
    prune_every_s: float = 3600.0

    def delay(self, failures: int, rng: random.Random) -> float:
        """Delay after the `failures`-th consecutive failure (1-based): exponential, capped, jittered."""
        raw = self.base_delay_s * self.multiplier ** max(0, failures - 1)
        capped = min(self.max_delay_s, raw)
        return capped * (1.0 - self.jitter) + rng.uniform(0.0, capped * self.jitter)


def classify(status: int) -> Result:
    if 200 <= status < 300:
        return "delivered"
    if status in (408, 429) or status >= 500:
        return "retry"
    return "dead"


def sign(secret: Secret | bytes, body: bytes) -> str:
    """`X-StoreAgent-Signature` value: `sha256=` + hex HMAC-SHA256 of the exact body bytes."""
    key = secret.reveal().encode() if isinstance(secret, Secret) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify(secret: Secret | bytes, body: bytes, header: str | None) -> bool:
    """Receiver side (and tests): constant-time check of a signature header."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # HTTP-date form: ignored, our own backoff applies


class WebhookDeliverer:
    """`await start()` once the outbox is open; `await stop()` at shutdown (drains for a bounded time)."""

    def __init__(
        self,
        outbox: Outbox,
        url: str,
        *,
        secret: Secret | None = None,
        policy: DeliveryPolicy | None = None,
        metrics: DeliveryMetrics | None = None,
        session: aiohttp.ClientSession | None = None,
        rng: random.Random | None = None,
        url_policy: UrlPolicy | None = None,
    ) -> None:
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"url: must be an http(s) URL, got scheme {urlsplit(url).scheme!r}")
        # With a policy (production): the URL is checked now and every connection's resolved address later.
        self._url_policy = url_policy
        if url_policy is not None:
            check_url(url, url_policy, "webhook.url")
        self._outbox = outbox
        self._url = url
        # Logged instead of the URL: scheme://host[:port] only (userinfo, path and query may hold a token).
        self._host = redact_url(url)
        self._secret = secret
        self.policy = policy or DeliveryPolicy()
        self._metrics: DeliveryMetrics = metrics or NullDeliveryMetrics()
        self._session = session
        self._own_session = session is None
        self._rng = rng or random.Random()
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._failures = 0  # consecutive retryable failures, any item
        self._last_prune = 0.0

    # ---------------------------------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("deliverer already started")
        if self._session is None:
            connector = policy_connector(self._url_policy) if self._url_policy is not None else None
            self._session = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT}, connector=connector)
        self._wake = asyncio.Event()
        self._outbox.subscribe(self._wake.set)
        self._task = asyncio.create_task(self._run(), name="webhook-deliverer")

    async def stop(self, drain_timeout_s: float | None = None) -> None:
        """Stop the loop, then try every pending item once more within the drain timeout; the rest stay queued."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        budget = self.policy.drain_timeout_s if drain_timeout_s is None else drain_timeout_s
        try:
            async with asyncio.timeout(budget):
                await self._drain()
        except TimeoutError:
            log.warning("webhook drain timed out after %.1fs; undelivered items stay queued", budget)
        with contextlib.suppress(Exception):  # shutdown path: a sqlite error must not block exit
            self._metrics.outbox_pending(await self._outbox.pending_count())
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def _drain(self) -> None:
        if self._session is None or self._session.closed:
            return
        for item in await self._outbox.pending(limit=self.policy.batch * 5):
            if await self.deliver(item) == "retry":
                return  # the webhook is still failing: no point hammering it on the way out

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    # --------------------------------------------------------------------------------------------- loop
    async def _run(self) -> None:
        while True:
            try:
                await self._cycle()
            except asyncio.CancelledError:
                raise
            except Exception:
                # A sqlite or programming error must not end delivery for the life of the process.
                log.exception("webhook deliverer cycle failed; retrying")
                await asyncio.sleep(self.policy.delay(max(1, self._failures), self._rng))

    async def _cycle(self) -> None:
        self._metrics.outbox_pending(await self._outbox.pending_count())
        await self._maybe_prune()
        items = await self._outbox.due(limit=self.policy.batch)
        if not items:
            await self._idle()
            return
        for item in items:
            if await self.deliver(item) == "retry":
                await asyncio.sleep(self.policy.delay(self._failures, self._rng))
                return  # re-query: the due set has changed

    async def _idle(self) -> None:
        assert self._wake is not None
        self._wake.clear()
        nxt = await self._outbox.next_due_at()
        timeout = self.policy.idle_recheck_s
        if nxt is not None:
            timeout = min(timeout, max(0.0, nxt - self._outbox.now()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _maybe_prune(self) -> None:
        now = time.monotonic()
        if now - self._last_prune >= self.policy.prune_every_s:
            self._last_prune = now
            await self._outbox.prune_done(self.policy.prune_done_after_s)

    # ------------------------------------------------------------------------------------------ one item
    async def deliver(self, item: OutboxItem) -> Result:
        """POST one item and record the result in the outbox; returns it."""
        status, retry_after, error = await self._post(item)
        result: Result = "retry" if status is None else classify(status)
        if result == "delivered":
            await self._outbox.mark_done(item.id)
            if self._failures >= self.policy.outage_threshold:
                n = await self._outbox.make_all_due()
                log.info("webhook %s recovered after %d failures; %d items made due", self._host, self._failures, n)
            self._failures = 0
            log.info("webhook delivered %s %s (attempt %d)", item.kind, item.key, item.attempts + 1)
        elif result == "retry":
            self._failures += 1
            delay = self.policy.delay(item.attempts + 1, self._rng)
            if retry_after is not None:
                delay = min(self.policy.max_delay_s, max(delay, retry_after))
            await self._outbox.mark_retry(item.id, self._outbox.now() + delay, error)
            log.warning(
                "webhook %s: %s %s not delivered (%s), attempt %d; retry in %.1fs",
                self._host, item.kind, item.key, error, item.attempts + 1, delay,
            )  # fmt: skip
        else:
            await self._outbox.mark_dead(item.id, error)
            log.error(
                "webhook %s refused %s %s permanently (%s); kept as dead, not retried",
                self._host, item.kind, item.key, error,
            )  # fmt: skip
        self._metrics.webhook_delivery(result)
        return result

    async def _post(self, item: OutboxItem) -> tuple[int | None, float | None, str]:
        """(status or None on a transport failure, Retry-After seconds, short error text)."""
        assert self._session is not None, "start() first"
        body = item.body.encode()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": item.key,
            "X-StoreAgent-Kind": item.kind,
            "X-StoreAgent-Attempt": str(item.attempts + 1),
        }
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(self._secret, body)
        timeout = aiohttp.ClientTimeout(total=self.policy.request_timeout_s)
        try:
            async with self._session.post(
                self._url, data=body, headers=headers, timeout=timeout, allow_redirects=False
            ) as resp:
                await resp.read()  # drain so the connection can be reused; receivers answer small bodies
                return resp.status, _retry_after(resp.headers.get("Retry-After")), f"HTTP {resp.status}"
        except TimeoutError:
            return None, None, "timeout"
        except aiohttp.ClientError as err:
            return None, None, f"{type(err).__name__}"
