"""The operator's read of an agent's /v1/stats is bounded in size and time (a real local HTTP server)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from storeagent.operator import status

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def serve(handler: Handler) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/v1/stats", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def fetch(handler: Handler, timeout_s: float = 1.0, max_bytes: int = 4096) -> object:
    async for url in serve(handler):
        async with aiohttp.ClientSession() as session:
            return await status.fetch_stats(session, url, timeout_s, max_bytes)
    raise AssertionError("unreachable")


async def test_a_normal_answer_is_read() -> None:
    async def ok(_: web.Request) -> web.Response:
        return web.json_response({"calls_active": 2, "calls_total": 5})

    got = await fetch(ok)
    assert isinstance(got, dict) and got["calls_active"] == 2 and got["calls_total"] == 5


@pytest.mark.parametrize("chunked", [False, True])
async def test_an_oversized_answer_is_dropped(chunked: bool) -> None:
    body = json.dumps({"calls_active": 1, "pad": "x" * 100_000}).encode()

    async def big(request: web.Request) -> web.StreamResponse:
        if not chunked:
            return web.Response(body=body, content_type="application/json")
        resp = web.StreamResponse()  # no Content-Length: the limit must hold while reading
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(0, len(body), 1000):
            await resp.write(body[i:i + 1000])
        return resp

    assert await fetch(big) is None


async def test_a_slow_drip_answer_times_out_within_the_bound() -> None:
    async def drip(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(100):
            await resp.write(b" ")
            await asyncio.sleep(0.1)
        return resp

    t0 = time.monotonic()
    assert await fetch(drip, timeout_s=0.5) is None
    assert time.monotonic() - t0 < 2.0


async def test_deeply_nested_json_is_refused_not_a_crash() -> None:
    async def nested(_: web.Request) -> web.Response:
        return web.Response(body=b"[" * 4000 + b"]" * 4000, content_type="application/json")

    assert await fetch(nested, max_bytes=10_000) is None
