"""Structured logs: every record carries the call uuid of the call it belongs to (a context variable that
asyncio copies into each task the call starts), as JSON lines for the cluster or plain text for a terminal."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator

_CALL_UUID: contextvars.ContextVar[str] = contextvars.ContextVar("call_uuid", default="")


@contextlib.contextmanager
def call_context(uuid: str) -> Iterator[None]:
    token = _CALL_UUID.set(uuid)
    try:
        yield
    finally:
        _CALL_UUID.reset(token)


class _CallFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "call_uuid", ""):
            record.call_uuid = _CALL_UUID.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if getattr(record, "call_uuid", ""):
            doc["call_uuid"] = getattr(record, "call_uuid")  # noqa: B009  # set by _CallFilter
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def setup_logging(fmt: str = "json", level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_CallFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(call_uuid)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
