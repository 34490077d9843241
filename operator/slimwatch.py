"""Drops `metadata.managedFields` from every watch event as it arrives, before kopf queues it.

kopf (1.45) queues every event of an object until that object's worker processes it; in a burst of new shops
the queues hold thousands of parsed bodies at once, and that transient sets the operator's peak memory. A
server-side-applied object's managedFields are about as large as its spec, and nothing here reads them from
an event: kopf does not, and our handlers read only labels, owner references, spec, data and status (the
name-in-use check reads managedFields from a GET of the object, not from events: children.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from kopf._cogs.clients import watching  # the reactor calls `watching.infinite_watch` at run time

_original = watching.infinite_watch


async def _slim_infinite_watch(**kwargs: Any) -> AsyncIterator[Any]:
    async for event in _original(**kwargs):
        if isinstance(event, dict):
            obj = event.get("object")
            meta = obj.get("metadata") if isinstance(obj, dict) else None
            if isinstance(meta, dict):
                meta.pop("managedFields", None)  # type: ignore[typeddict-item]
        yield event


def install() -> None:
    """Idempotent; called once before kopf starts its watchers."""
    watching.infinite_watch = _slim_infinite_watch  # type: ignore[assignment]


def installed() -> bool:
    return watching.infinite_watch is _slim_infinite_watch  # type: ignore[comparison-overlap]
