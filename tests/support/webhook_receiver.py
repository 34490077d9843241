"""A shop's webhook for tests: a real aiohttp server on 127.0.0.1 that de-duplicates by Idempotency-Key.

It behaves like a careful receiver: verify the signature, store the item once per key (a second delivery of
a key is acknowledged with 200 but not stored again). A scripted list of faults makes the first requests fail:
"500", "429", "404", "slow" (sleep past the client's timeout), or "drop" (store the item, then cut the
connection before answering, as a receiver that crashes after committing: the sender must retry and the
receiver sees the key twice on the wire).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from storeagent.agent.store.webhook import SIGNATURE_HEADER, verify


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class WireRequest:
    key: str | None
    body: bytes
    signature: str | None
    fault: str | None
    at: float  # time.monotonic() on arrival


@dataclass
class WebhookReceiver:
    port: int
    secret: bytes | None = None
    faults: list[str] = field(default_factory=list)  # consumed one per request, then all succeed
    retry_after: str | None = None
    slow_s: float = 5.0
    wire: list[WireRequest] = field(default_factory=list)
    stored: dict[str, dict[str, Any]] = field(default_factory=dict)  # de-duplicated: key -> envelope
    store_count: Counter[str] = field(default_factory=Counter)
    bad_signatures: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/storeagent"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks/storeagent", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def wire_count(self, key: str) -> int:
        return sum(1 for r in self.wire if r.key == key)

    def _store(self, key: str, body: bytes) -> None:
        if key not in self.stored:  # the de-duplication a receiver does with Idempotency-Key
            self.stored[key] = json.loads(body)
            self.store_count[key] += 1

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        key = request.headers.get("Idempotency-Key")
        sig = request.headers.get(SIGNATURE_HEADER)
        fault = self.faults.pop(0) if self.faults else None
        self.wire.append(WireRequest(key, body, sig, fault, time.monotonic()))
        if self.secret is not None and not verify(self.secret, body, sig):
            self.bad_signatures += 1
            return web.Response(status=401, text="bad signature")
        if key is None:
            return web.Response(status=400, text="Idempotency-Key required")
        if fault == "500":
            return web.Response(status=500, text="boom")
        if fault == "429":
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            return web.Response(status=429, headers=headers)
        if fault == "404":
            return web.Response(status=404)
        if fault == "slow":
            await asyncio.sleep(self.slow_s)
        if fault == "drop":
            self._store(key, body)
            assert request.transport is not None
            request.transport.abort()  # committed, but the sender never hears so
            return web.Response(status=200)
        self._store(key, body)
        return web.json_response({"ok": True})
