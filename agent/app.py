"""AgentApp: one process serving many concurrent calls for one shop.

Two listeners: the ESL server (FreeSWITCH's `socket` connects here, one TCP connection per call) and one HTTP
server (the audio websocket of mod_storeagent, /metrics, /healthz, /readyz, /v1/stats). A failure inside one call
never leaves that call's task; malformed input closes only the connection it came on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

from aiohttp import web

from storeagent.agent.call import CallDeps, CallSession, LinkRegistry
from storeagent.agent.logs import call_context
from storeagent.agent.metrics import CONTENT_TYPE, AgentMetrics
from storeagent.agent.pipeline.conversation import ConversationOutcome
from storeagent.agent.ports import CallControl, ProviderSet, Tools
from storeagent.agent.settings import AgentSettings
from storeagent.agent.stats import CallStats
from storeagent.agent.transport.audio_ws import WebSocketAudioLink, add_audio_route
from storeagent.agent.transport.esl_server import EslCall, EslServer
from storeagent.agent.transport.tokens import StreamTokens
from storeagent.agent.websession import WebCallControl, is_web_session, relay_transcript
from storeagent.shop import ShopConfig

log = logging.getLogger(__name__)

OnFinished = Callable[[str, CallControl, ConversationOutcome, float], Awaitable[None]]


class AgentApp:
    def __init__(self, settings: AgentSettings, shop: ShopConfig, providers: ProviderSet,
                 tools_factory: Callable[[CallControl], Tools], *, on_finished: OnFinished | None = None,
                 metrics: AgentMetrics | None = None) -> None:
        self.settings, self.shop = settings, shop
        self.metrics = metrics or AgentMetrics(shop.store)
        self.stats = CallStats(shop.store)
        key = settings.stream_token_key_file.read_bytes().strip() if settings.stream_token_key_file else None
        self.tokens = StreamTokens(key, ttl=settings.stream_token_ttl_s)
        self.links = LinkRegistry()
        self.sessions: dict[str, CallSession] = {}
        self.draining = False
        self.refused = 0
        self._deps = CallDeps(settings=settings, shop=shop, providers=providers, tools_factory=tools_factory,
                              metrics=self.metrics, tokens=self.tokens, links=self.links, stats=self.stats,
                              audio_url=self.audio_url, on_finished=on_finished)
        self.esl = EslServer(settings.host, settings.esl_port, self._on_call,
                             on_protocol_error=self.metrics.protocol_error)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.loop_lag: deque[float] = deque(maxlen=3000)  # last minute of 20 ms ticks: how late the loop ran
        self._lag_task: asyncio.Task[None] | None = None
        self._web_calls: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        app = web.Application()
        add_audio_route(app, tokens=self.tokens, attach=self._attach, on_protocol_error=self.metrics.protocol_error)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/v1/stats", self._stats)
        if self.settings.debug_endpoints:  # every turn's text: off unless the platform enables it
            app.router.add_get("/v1/debug/turns", self._turns)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.settings.host, self.settings.http_port)
        await self._site.start()
        await self.esl.start()
        self._lag_task = asyncio.create_task(self._watch_loop_lag(), name="loop-lag")
        log.info("agent for %s ready: esl :%d, http :%d", self.shop.store, self.esl_port, self.http_port)

    @property
    def esl_port(self) -> int:
        return self.esl.port

    @property
    def http_port(self) -> int:
        if self._site is None or self._site._server is None:  # aiohttp exposes no public getter
            return self.settings.http_port
        sockets = getattr(self._site._server, "sockets", None)
        return int(sockets[0].getsockname()[1]) if sockets else self.settings.http_port

    def audio_url(self, uuid: str) -> str:
        return f"ws://{self.settings.advertise_host}:{self.http_port}/v1/calls/{uuid}/audio"

    async def drain(self, grace: float | None = None) -> None:
        """Not ready, no new calls; live calls get `grace` seconds to finish, then they are cut."""
        self.draining = True
        self.metrics.set_draining(True)
        await self.esl.stop()
        limit = self.settings.drain_seconds if grace is None else grace
        log.info("draining: %d live calls, up to %.0fs", len(self.sessions), limit)
        try:
            await asyncio.wait_for(self.esl.wait_idle(), limit)
        except TimeoutError:
            log.warning("drain grace over with %d calls live; cutting them", len(self.sessions))

    async def stop(self) -> None:
        if self._lag_task is not None:
            self._lag_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lag_task
        await self.esl.aclose()
        for task in list(self._web_calls):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------------ calls
    async def _on_call(self, call: EslCall) -> None:
        await self._run_session(call)

    async def _run_session(self, call: CallControl, web_link: WebSocketAudioLink | None = None) -> None:
        with call_context(call.uuid):
            if self.draining or len(self.sessions) >= self.settings.max_calls:
                # Not answering and closing the socket makes FreeSWITCH run the dialplan's fallback.
                self.refused += 1
                log.warning("refusing call %s: %s", call.uuid, "draining" if self.draining else "at max_calls")
                return
            session = CallSession(call, self._deps)
            self.sessions[call.uuid] = session
            relay = None
            if web_link is not None:
                relay = asyncio.create_task(relay_transcript(
                    web_link, lambda: session.conversation.result.transcript if session.conversation else []))
            try:
                await session.run()
            finally:
                self.sessions.pop(call.uuid, None)
                if relay is not None:
                    relay.cancel()

    async def _attach(self, uuid: str, link: WebSocketAudioLink) -> bool:
        if is_web_session(uuid) and self.settings.web_sessions:
            return self._start_web_call(uuid, link)
        return await self.links.attach(uuid, link)

    def _start_web_call(self, uuid: str, link: WebSocketAudioLink) -> bool:
        """A browser test call (agent/websession.py): its token was minted with our key by the web service."""
        if self.draining or len(self.sessions) >= self.settings.max_calls or uuid in self.sessions:
            return False
        task = asyncio.create_task(self._run_session(WebCallControl(uuid, link, self.links.attach), link),
                                   name=f"web-call-{uuid}")
        self._web_calls.add(task)
        task.add_done_callback(self._web_calls.discard)
        return True

    # ------------------------------------------------------------------ http
    async def _metrics(self, _: web.Request) -> web.Response:
        body = self.metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def _readyz(self, _: web.Request) -> web.Response:
        ready = not self.draining and len(self.sessions) < self.settings.max_calls
        return web.json_response({"ready": ready, "draining": self.draining}, status=200 if ready else 503)

    async def _stats(self, _: web.Request) -> web.Response:
        ready = not self.draining and len(self.sessions) < self.settings.max_calls
        return web.json_response(self.stats.snapshot(ready=ready, draining=self.draining))

    async def _turns(self, _: web.Request) -> web.Response:
        lags = sorted(self.loop_lag)
        return web.json_response({
            "turns": list(self.stats.recent_turns),
            "refused": self.refused,
            "loop_lag_ms": {"p99": round(lags[int(len(lags) * 0.99)] * 1000, 2) if lags else None,
                            "max": round(lags[-1] * 1000, 2) if lags else None},
        })

    async def _watch_loop_lag(self) -> None:
        # A call's frames are due every 20 ms; a loop that wakes late delays every call's audio by that much.
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(0.02)
            self.loop_lag.append(max(0.0, loop.time() - t - 0.02))


async def run_until_signalled(app: AgentApp, stop: asyncio.Event) -> None:
    """Serve until `stop` is set (SIGTERM/SIGINT), then drain and shut down."""
    await app.start()
    await stop.wait()
    t0 = time.monotonic()
    await app.drain()
    await app.stop()
    with contextlib.suppress(Exception):
        log.info("stopped after a %.1fs drain", time.monotonic() - t0)
