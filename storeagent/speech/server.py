"""The speech service's I/O process: aiohttp websockets for STT and TTS streams, /metrics, /healthz, /readyz.

It parses and validates every client frame (clients are agents, still: a malformed frame is dropped and counted,
a bad `start` is refused naming the field), admits streams through the pool and relays bytes; it runs no
inference itself, so its loop stays responsive however busy the workers are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

from aiohttp import WSMsgType, web
from pydantic import BaseModel, ConfigDict, Field

from storeagent.speech import protocol as p
from storeagent.speech.metrics import CONTENT_TYPE, SpeechMetrics
from storeagent.speech.pool import Saturated, StreamHandle, WorkerPool, cpu_budget
from storeagent.speech.ttscache import CACHE_ENV, DEFAULT_MB

log = logging.getLogger("storeagent.speech")
READY_TIMEOUT_S = 20.0


class SpeechSettings(BaseModel):
    """`storeagent speech serve` settings (flags or STOREAGENT_SPEECH_* env, see __main__)."""

    model_config = ConfigDict(frozen=True)

    host: str = Field("0.0.0.0", description="bind address")
    port: int = Field(8090, description="websockets /v1/stt and /v1/tts, /metrics, /healthz, /readyz")
    workers: int = Field(0, ge=0, description="worker processes; 0: one per CPU of the pod (cgroup quota, affinity)")
    max_streams_per_worker: int = Field(
        48, ge=1, description="streams (STT or TTS) one worker takes; each call holds one of each. STT decodes only "
        "while the caller speaks and TTS only while the agent does, so a worker serves more streams than it could "
        "decode at once; the load check below refuses earlier when they all talk at once")
    saturation_s: float = Field(
        1.0, gt=0, description="a worker where a request waited longer than this (s) takes no new streams for 3 s: "
        "a refused stream falls back at once, a queued one would make every call on the worker late. 1 s: a turn "
        "must be answered within 1.5 s; shorter refuses on the GIL hiccups of a busy but coping worker")
    drain_seconds: float = Field(20.0, ge=0, description="SIGTERM: streams in flight get this long, then close "
                                 "(their agents fall back); the chart's grace period is longer")
    tts_cache_mb: int = Field(DEFAULT_MB, ge=0, le=4096, description="per worker: finished TTS utterances kept "
                              "and replayed (the greeting and common answers repeat across calls); 0: off")
    heartbeat_s: float = Field(10.0, gt=0, description="websocket ping interval: a vanished agent is noticed")


class _WsSink:
    """Worker output for one websocket, sent in order by one task (the pool's reader never waits on a client)."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self.ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.lost_worker = False
        self.task = asyncio.create_task(self._send())

    def control(self, msg: dict[str, Any]) -> None:
        if not self.ready.done() and msg.get("type") in ("ready", "error"):
            self.ready.set_result(msg)
        self.queue.put_nowait(p.encode(msg))

    def audio(self, pcm: bytes) -> None:
        self.queue.put_nowait(pcm)

    def lost(self) -> None:
        self.lost_worker = True
        msg = {"type": "error", "code": "worker_lost", "retryable": True, "message": "the speech worker exited"}
        if not self.ready.done():
            self.ready.set_result(msg)
        self.queue.put_nowait(p.encode(msg))
        self.queue.put_nowait(None)

    async def _send(self) -> None:
        while (item := await self.queue.get()) is not None:
            if self.ws.closed:
                continue
            with contextlib.suppress(ConnectionError, RuntimeError):
                if isinstance(item, bytes):
                    await self.ws.send_bytes(item)
                else:
                    await self.ws.send_str(item)
        if self.lost_worker:
            await self.ws.close(code=p.CLOSE_INTERNAL, message=b"worker lost")

    async def aclose(self) -> None:
        self.queue.put_nowait(None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, 2.0)
        self.task.cancel()


class SpeechService:
    def __init__(self, settings: SpeechSettings, metrics: SpeechMetrics | None = None,
                 pool: WorkerPool | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or SpeechMetrics()
        workers = settings.workers or max(1, int(cpu_budget()))
        self.pool = pool or WorkerPool(workers, max_streams_per_worker=settings.max_streams_per_worker,
                                       saturation_s=settings.saturation_s, observer=self.metrics,
                                       env={**os.environ, CACHE_ENV: str(settings.tts_cache_mb)})
        self.draining = False
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self._idle = asyncio.Event()  # set when the last stream ends (drain waits for it)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await self.pool.start()
        app = web.Application()
        app.router.add_get("/v1/stt", self._stt)
        app.router.add_get("/v1/tts", self._tts)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        await self._site.start()
        log.info("speech service ready on :%d with %d workers", self.port, self.pool.size)

    @property
    def port(self) -> int:
        server = self._site._server if self._site is not None else None
        sockets = getattr(server, "sockets", None)
        return int(sockets[0].getsockname()[1]) if sockets else self.settings.port

    async def drain(self) -> None:
        """Refuse new streams, give those in flight `drain_seconds`, then close them (their agents fall back)."""
        self.draining = True
        self.metrics.set_draining(True)
        if self._sockets:
            self._idle.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), self.settings.drain_seconds)
        for ws in list(self._sockets):
            await ws.close(code=1012, message=b"service restart")  # 1012: the client may reconnect elsewhere

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        await self.pool.close()

    # ------------------------------------------------------------------ plain endpoints
    async def _metrics(self, request: web.Request) -> web.Response:
        self.metrics.set_workers(len(self.pool.live()))
        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})  # the loop answers: the process lives (workers restart on their own)

    async def _readyz(self, request: web.Request) -> web.Response:
        live = len(self.pool.live())
        ok = live > 0 and not self.draining
        return web.json_response({"ready": ok, "workers": live, "streams": self.pool.streams()},
                                 status=200 if ok else 503)

    # ------------------------------------------------------------------ streams
    async def _open(self, request: web.Request, kind: str) -> tuple[web.WebSocketResponse, Any]:
        """The prepared websocket and its parsed `start`, or None (then the socket is answered and closed)."""
        ws = web.WebSocketResponse(heartbeat=self.settings.heartbeat_s, max_msg_size=p.MAX_CONTROL_BYTES)
        await ws.prepare(request)
        try:
            first = await ws.receive(timeout=10.0)
            if first.type != WSMsgType.TEXT:
                raise p.BadMessage("the first frame must be a text 'start' frame")
            msg = p.decode(first.data)
            start = p.parse_start_stt(msg) if kind == "stt" else p.parse_start_tts(msg)
        except (p.BadMessage, TimeoutError) as e:
            self.metrics.error(kind, "bad_request")
            await ws.send_str(p.error("bad_request", str(e) or "no start frame within 10 s"))
            await ws.close(code=p.CLOSE_BAD_INPUT, message=b"bad start")
            return ws, None
        if self.draining:
            self.metrics.refused(kind, "shutting_down")
            await ws.send_str(p.error("shutting_down", "this speech pod is shutting down"))
            await ws.close(code=p.CLOSE_TRY_AGAIN, message=b"shutting down")
            return ws, None
        return ws, start

    async def _admit(self, ws: web.WebSocketResponse, kind: str, start: dict[str, Any]
                     ) -> tuple[StreamHandle, _WsSink] | None:
        sink = _WsSink(ws)
        try:
            handle = self.pool.open(kind, start, sink)
        except Saturated as e:
            self.metrics.refused(kind, e.reason)
            await sink.aclose()
            await ws.send_str(p.error("saturated", str(e)))
            await ws.close(code=p.CLOSE_TRY_AGAIN, message=b"saturated")
            return None
        try:  # a worker building a shop's decoder takes ~1 s; one that never answers must not hold the socket
            answer = await asyncio.wait_for(asyncio.shield(sink.ready), READY_TIMEOUT_S)
        except TimeoutError:
            answer = {"type": "error", "code": "engine", "retryable": True}
            await ws.send_str(p.error("engine", f"the worker did not open the stream within {READY_TIMEOUT_S:g} s"))
        if answer.get("type") != "ready":
            self.metrics.error(kind, str(answer.get("code", "engine")))
            self.pool.close_stream(handle)
            await sink.aclose()
            await ws.close(code=p.CLOSE_INTERNAL if answer.get("retryable") else p.CLOSE_BAD_INPUT)
            return None
        return handle, sink

    async def _serve(self, request: web.Request, kind: str) -> web.WebSocketResponse:
        ws, start = await self._open(request, kind)
        if start is None:
            return ws
        start_msg = {"sample_rate": start.sample_rate, "language": start.language}
        if kind == "stt":
            start_msg.update(phrases=list(start.phrases), vocabulary=list(start.vocabulary), interim=start.interim)
        admitted = await self._admit(ws, kind, start_msg)
        if admitted is None:
            return ws
        handle, sink = admitted
        self._sockets.add(ws)
        self.metrics.stream_opened(kind)
        try:
            await self._relay(ws, kind, handle, sink)
        finally:
            self._sockets.discard(ws)
            if not self._sockets:
                self._idle.set()
            self.metrics.stream_closed(kind)
            if sink.lost_worker:
                self.metrics.error(kind, "worker_lost")
            self.pool.close_stream(handle)
            await sink.aclose()
            if not ws.closed:
                await ws.close()
        return ws

    async def _relay(self, ws: web.WebSocketResponse, kind: str, handle: StreamHandle, sink: _WsSink) -> None:
        async for m in ws:
            if sink.lost_worker:
                return
            try:
                if m.type == WSMsgType.BINARY:
                    if kind != "stt":
                        raise p.BadMessage("binary frames are STT audio only")
                    p.check_audio(m.data)
                    self.pool.audio(handle, m.data)
                elif m.type == WSMsgType.TEXT:
                    if self._control(kind, handle, p.decode(m.data)):
                        return
                elif m.type == WSMsgType.ERROR:
                    return
            except p.BadMessage as e:  # dropped and counted; the stream goes on
                self.metrics.error(kind, "protocol")
                log.info("%s stream %d: dropped a frame: %s", kind, handle.sid, e)

    def _control(self, kind: str, handle: StreamHandle, msg: dict[str, Any]) -> bool:
        """Forward one control frame; True when the client ends the stream."""
        t = msg["type"]
        if t == "close":
            return True
        if kind == "stt" and t == "finalize":
            self.pool.control(handle, {"type": "finalize"})
        elif kind == "tts" and t == "speak":
            self.pool.control(handle, {"type": "speak", "id": p.utterance_id(msg), "text": p.speak_text(msg)})
        elif kind == "tts" and t == "cancel":
            self.pool.control(handle, {"type": "cancel", "id": p.utterance_id(msg)})
        else:
            raise p.BadMessage(f"type: {t[:40]!r} is not a {kind} control frame")
        return False

    async def _stt(self, request: web.Request) -> web.WebSocketResponse:
        return await self._serve(request, "stt")

    async def _tts(self, request: web.Request) -> web.WebSocketResponse:
        return await self._serve(request, "tts")
