"""Batches per-shop dialplan writes into one merge patch per shard ConfigMap.

A burst (1,000 shops at start-up or a bulk apply) would otherwise send one PATCH per shop to the same 16
ConfigMaps, each rewriting a ConfigMap of up to ~1 MiB in etcd. Here every writer's key joins the shard's
pending batch; one patch per shard carries all keys that arrived meanwhile (while the previous patch of that
shard was in flight, plus a short gathering window). Each writer still awaits the patch carrying its own key
and gets its error, so callers see exactly what a single-key write would have told them. Keys of other shops
are never touched: the patch is a merge of the carried keys only.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import Protocol

log = logging.getLogger(__name__)


class FilesApi(Protocol):
    async def set_dialplan_files(self, namespace: str, configmap: str, files: dict[str, str | None],
                                 labels: dict[str, str]) -> None: ...


class ShardWriter:
    def __init__(self, api: FilesApi, window_s: float = 0.05) -> None:
        self._api = api
        self._window_s = window_s
        # (namespace, configmap) -> key -> (xml or None, waiters)
        self._pending: dict[tuple[str, str], dict[str, tuple[str | None, list[asyncio.Future[None]]]]] = {}
        self._labels: dict[tuple[str, str], dict[str, str]] = {}
        self._flushers: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.patches = 0  # for tests and the bench write-up: how many patches the writes cost

    async def write(self, namespace: str, configmap: str, key: str, xml: str | None,
                    labels: dict[str, str]) -> None:
        """Write (None: remove) one shop's file; returns once a patch carrying it succeeded, else raises."""
        shard = (namespace, configmap)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        batch = self._pending.setdefault(shard, {})
        # A newer write of the same key supersedes the older one; both learn the outcome of the carrying patch.
        _, waiters = batch.get(key, (None, []))
        batch[key] = (xml, [*waiters, fut])
        if labels:
            self._labels[shard] = labels
        if shard not in self._flushers:
            # A context of its own: not the caller's (kopf's cause of the handler that wrote first, its body).
            self._flushers[shard] = asyncio.create_task(self._flush(shard), name=f"dialplan {configmap}",
                                                        context=contextvars.Context())
        await fut

    async def _flush(self, shard: tuple[str, str]) -> None:
        try:
            while self._pending.get(shard):
                await asyncio.sleep(self._window_s)
                batch = self._pending.pop(shard)
                files = {key: xml for key, (xml, _) in batch.items()}
                waiters = [f for _, ws in batch.values() for f in ws]
                try:
                    await self._api.set_dialplan_files(shard[0], shard[1], files, self._labels.get(shard, {}))
                    self.patches += 1
                except asyncio.CancelledError:
                    for f in waiters:
                        f.cancel()
                    raise
                except Exception as e:  # handed to every writer of the batch: each decides how to retry
                    for f in waiters:
                        if not f.done():
                            f.set_exception(e)
                else:
                    for f in waiters:
                        if not f.done():
                            f.set_result(None)
        finally:
            self._flushers.pop(shard, None)
            # Cancelled (shutdown) with writers still waiting: do not leave them hanging.
            for _, ws in self._pending.pop(shard, {}).values():
                for f in ws:
                    if not f.done():
                        f.cancel()

    async def close(self) -> None:
        for task in list(self._flushers.values()):
            task.cancel()
        for task in list(self._flushers.values()):
            try:
                await task
            except asyncio.CancelledError:
                pass
