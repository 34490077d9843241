"""Watch events reach kopf's queues without managedFields; everything else, bookmarks included, is unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from kopf._cogs.clients import watching

from storeagent.operator import slimwatch


async def test_managed_fields_are_dropped_and_the_rest_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    pod = {"metadata": {"name": "p", "uid": "u1", "labels": {"a": "b"},
                        "managedFields": [{"manager": "kwok", "fieldsV1": {"f:status": {}}}]},
           "spec": {"nodeName": "n"}, "status": {"podIP": "10.0.0.1"}}
    events: list[Any] = [watching.Bookmark.LISTED, {"type": "ADDED", "object": pod},
                         {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "7"}}},
                         {"type": "ERROR", "object": "not a dict"}]

    async def fake(**_: Any) -> AsyncIterator[Any]:
        for e in events:
            yield e

    monkeypatch.setattr(slimwatch, "_original", fake)
    monkeypatch.setattr(watching, "infinite_watch", watching.infinite_watch)  # restored after the test
    slimwatch.install()
    assert slimwatch.installed()
    got = [e async for e in watching.infinite_watch(settings=None, resource=None, namespace=None)]
    assert got[0] is watching.Bookmark.LISTED
    assert got[1]["object"]["metadata"] == {"name": "p", "uid": "u1", "labels": {"a": "b"}}
    assert got[1]["object"]["spec"] == {"nodeName": "n"} and got[1]["object"]["status"] == {"podIP": "10.0.0.1"}
    assert got[2:] == events[2:]
