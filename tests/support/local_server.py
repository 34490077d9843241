"""Serve an aiohttp app on 127.0.0.1 (an ephemeral port): the shared start/stop of the test's protocol fakes."""

from __future__ import annotations

from aiohttp import web


async def serve(app: web.Application, port: int = 0) -> tuple[web.AppRunner, str]:
    """Start `app`; returns its runner (call `.cleanup()` to stop) and `http://127.0.0.1:<port>`."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)  # stalled handlers must not hold teardown
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{bound}"
