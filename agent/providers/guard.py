"""Resilience primitives: per-stage timeouts, the retry policy, per-provider circuit breakers, and `Chain`,
the shared bookkeeping of the Fallback* wrappers in `resilience.py` (timeouts, retries, metrics, breakers)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from storeagent.agent.errors import ProviderError
from storeagent.agent.ports import CallMetrics

log = logging.getLogger("storeagent.agent.providers.resilience")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StageTimeouts:
    """Seconds one stage may take before the chain gives up on a provider.

    Defaults keep a caller's silence short: connect covers a websocket/TLS handshake on a warm pod; first_result
    is the wait for the first transcript after a turn ends, the first LLM token or the first TTS audio; stall is
    the longest gap allowed between outputs once a provider is streaming.
    """

    connect: float = 2.0
    first_result: float = 1.0
    stall: float = 3.0

    def __post_init__(self) -> None:
        for name in ("connect", "first_result", "stall"):
            if getattr(self, name) <= 0:
                raise ValueError(f"StageTimeouts.{name} must be > 0 seconds, got {getattr(self, name)}")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Tries per provider for retryable errors (1 = no retry), with exponential backoff from `backoff` s.

    Only failures before any output are retried: a half-spoken answer cannot be replayed from the start. A
    provider's `Retry-After` replaces the backoff when it fits `max_wait` (the turn's latency budget for one
    wait: the caller is listening to silence); a longer one goes straight to the fallback, since retrying
    earlier than asked would only be refused again.
    """

    attempts: int = 2
    backoff: float = 0.1
    max_wait: float = 1.0

    def delay(self, err: ProviderError, backoff: float) -> float | None:
        """Seconds to wait before the next try, or None: do not retry this provider now."""
        if err.retry_after is None:
            return backoff
        return err.retry_after if err.retry_after <= self.max_wait else None

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be >= 1, got {self.attempts}")
        if self.backoff < 0:
            raise ValueError(f"RetryPolicy.backoff must be >= 0, got {self.backoff}")


BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Stops calling a provider that keeps failing, so later calls skip straight to the fallback.

    Opens after `failure_threshold` consecutive failures, or at once on a non-retryable one (a revoked key
    will not work on the next call either); after `reset_after` seconds one trial call is let through
    (half-open): success closes the breaker, failure opens it again.
    """

    def __init__(self, failure_threshold: int = 3, reset_after: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold}")
        self._threshold = failure_threshold
        self._reset_after = reset_after
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_out = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self._reset_after:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._trial_out:
            self._trial_out = True
            return True
        return False

    def success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial_out = False

    def failure(self, err: ProviderError) -> None:
        self._failures += 1
        self._trial_out = False
        if not err.retryable or self._failures >= self._threshold or self._opened_at is not None:
            self._opened_at = self._clock()


class Breakers:
    """One CircuitBreaker per provider name, shared by every call of the process."""

    def __init__(self, failure_threshold: int = 3, reset_after: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._args = (failure_threshold, reset_after, clock)
        self._by_name: dict[str, CircuitBreaker] = {}

    def __getitem__(self, provider: str) -> CircuitBreaker:
        if provider not in self._by_name:
            self._by_name[provider] = CircuitBreaker(*self._args)
        return self._by_name[provider]


def worth_retry(err: ProviderError) -> bool:
    """Retry only what may succeed *soon*: a provider that just timed out would eat the caller's silence
    budget a second time, so a timeout moves straight to the fallback."""
    return err.retryable and err.kind != "timeout"


def as_provider_error(provider: str, exc: BaseException) -> ProviderError:
    """Any failure as a ProviderError; a bug in an adapter is not retried (it would fail the same way)."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, TimeoutError):
        return ProviderError(provider, "timeout", "no result in time", retryable=True)
    return ProviderError(provider, "internal", f"{type(exc).__name__}: {exc}", retryable=False)


@dataclass
class Chain:
    """What the three Fallback* wrappers share: the ordered providers' guards and the reporting."""

    stage: str
    metrics: CallMetrics
    timeouts: StageTimeouts = field(default_factory=StageTimeouts)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breakers: Breakers = field(default_factory=Breakers)

    def failed(self, provider: str, exc: BaseException) -> ProviderError:
        err = as_provider_error(provider, exc)
        # The message may quote a vendor's error body; it never carries our key (adapters build it).
        log.warning("%s provider %s failed: %s (retryable=%s)", self.stage, provider, err.kind, err.retryable)
        self.metrics.provider_error(provider, err.kind)
        self.breakers[provider].failure(err)
        return err

    def skip_open(self, provider: str) -> bool:
        """True (and counted) when the provider's breaker is open."""
        if self.breakers[provider].allow():
            return False
        self.metrics.provider_error(provider, "circuit_open")
        return True

    def fallback(self) -> None:
        self.metrics.provider_fallback(self.stage)

    @staticmethod
    def limit(seconds: float, last: bool) -> float | None:
        """No deadline for the chain's last provider: failing it would only trade a slow answer for none."""
        return None if last else seconds

    async def call(self, provider: str, op: Callable[[], Awaitable[T]], limit: float | None) -> T:
        """`op` within `limit` seconds, retried per policy while the error is retryable; raises the last error."""
        delay = self.retry.backoff
        for attempt in range(1, self.retry.attempts + 1):
            try:
                async with asyncio.timeout(limit):
                    result = await op()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # every provider failure is classified, none escapes unreported
                err = self.failed(provider, exc)
                wait = self.retry.delay(err, delay)
                if (not worth_retry(err) or wait is None or attempt == self.retry.attempts
                        or not self.breakers[provider].allow()):
                    raise err from exc
                await asyncio.sleep(wait)
                delay *= 2
            else:
                self.breakers[provider].success()
                return result
        raise AssertionError("unreachable")


async def next_within(it: AsyncIterator[T], limit: float | None) -> T:
    async with asyncio.timeout(limit):
        return await anext(it)


async def aclose_quietly(closer: Callable[[], Awaitable[None]], limit: float = 1.0) -> None:
    try:
        async with asyncio.timeout(limit):
            await closer()
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # closing a broken session must not mask the original failure
        log.debug("closing a failed provider session: %r", exc)
