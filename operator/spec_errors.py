"""How a reconcile fails: a spec that cannot work until it changes, or a wait with a delay; and a pydantic
validation error as the one line a `kubectl describe` reader needs (field and reason)."""

from __future__ import annotations

from pydantic import ValidationError


class InvalidSpec(Exception):
    """Retrying cannot help until the spec changes."""


class RetryLater(Exception):
    def __init__(self, message: str, delay_s: float) -> None:
        super().__init__(message)
        self.delay_s = delay_s


def format_error(e: ValidationError) -> str:
    parts = []
    for err in e.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"spec.{loc}: {err['msg']}" if loc else err["msg"])
    return "; ".join(parts)
