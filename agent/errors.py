"""Errors that say whether a retry can help (DESIGN principle 5)."""

from __future__ import annotations


class StoreAgentError(Exception):
    """Base of every error the agent raises on purpose."""


class ProviderError(StoreAgentError):
    """A speech or language provider failed.

    `retryable` is True when the same request may succeed later (timeouts, 5xx, 429, dropped sockets) and
    False when it cannot (bad key, bad request, unsupported language): the caller of the provider decides
    between retry, fallback and giving up from this flag alone.
    """

    def __init__(self, provider: str, kind: str, message: str, *, retryable: bool,
                 retry_after: float | None = None) -> None:
        super().__init__(f"{provider}: {kind}: {message}")
        self.provider = provider
        self.kind = kind  # low-cardinality label: timeout|connect|auth|rate_limit|protocol|server|bad_request
        self.retryable = retryable
        self.retry_after = retry_after  # seconds the provider asked us to wait (Retry-After), when it said


class ProtocolError(StoreAgentError):
    """A peer sent bytes that break a wire contract (ESL or audio websocket); the connection is closed."""

    def __init__(self, wire: str, reason: str) -> None:
        super().__init__(f"{wire}: {reason}")
        self.wire = wire  # "esl" | "audio_ws"
        self.reason = reason  # low-cardinality metric label


class ConfigError(StoreAgentError):
    """Configuration is invalid; the message names the field and the reason."""
