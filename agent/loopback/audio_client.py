"""The loopback audio client: plays mod_storeagent's role on the audio websocket (issue 5), for tests and the demo.

What it does, as the module does it:
- connects to `ws://<agent>/v1/calls/<uuid>/audio` with `Authorization: Bearer <token>`, sends the start frame;
- sends caller audio as 20 ms L16 frames on a real 20 ms clock, silence when its source has nothing (the module
  keeps the cadence when the caller's RTP pauses);
- receives agent speech in any chunk size into a `PlayoutBuffer` (sa_playout.c's rules: prebuffer 40 ms by
  default, 0..60; queued audio capped at `max_buffer_ms`) played on its own 20 ms clock; `clear` (the agent's
  message or `uuid_storeagent clear`) empties the buffer at once (the next tick is silence) and reports pending
  marks `cleared`; `pause` holds playout where it is (queue and marks kept) until `resume` (continues from the exact
  sample) or `clear`; marks are reported `played` when playout passes them; optional `stats` frames.
Both clocks share one epoch t0, so uplink frame k and playout frame k are the same 20 ms of the call: the
`CallRecord` they fill gives barge-in timing and a sample-aligned stereo WAV.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from storeagent.agent.loopback.playout import (
    DEFAULT_MAX_MS,
    DEFAULT_PREBUFFER_MS,
    CallRecord,
    ClearRecord,
    MarkRecord,
    PauseRecord,
    PlayoutBuffer,
)
from storeagent.agent.transport.codec import FrameSplitter

log = logging.getLogger(__name__)

FRAME_S = 0.020


class AudioClient:
    """One call's audio websocket, FreeSWITCH side.

    `source`: optional async iterator of caller PCM (any chunk size, faster than real time is fine: it is
    queued and paced). `feed()` queues more caller audio at any time. `prebuffer_ms` (0..60) and `max_buffer_ms`
    are the module's `prebuffer-ms` and `max-buffer-ms`, same defaults.
    `stats_interval`: seconds between stats frames (None: none).
    """

    def __init__(
        self,
        url: str,
        *,
        uuid: str,
        token: str | None,
        sample_rate: int = 8000,
        source: AsyncIterator[bytes] | None = None,
        prebuffer_ms: int = DEFAULT_PREBUFFER_MS,
        max_buffer_ms: int = DEFAULT_MAX_MS,
        stats_interval: float | None = None,
        start_frame: dict[str, Any] | None = None,
        max_msg_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        self.url = url
        self.uuid = uuid
        self.sample_rate = sample_rate
        self.frame_bytes = sample_rate * 2 // 50
        self._token = token
        self._source = source
        self._stats_interval = stats_interval
        self._start = start_frame or {
            "type": "start",
            "uuid": uuid,
            "sample_rate": sample_rate,
            "encoding": "L16",
            "channels": 1,
        }
        self._max_msg = max_msg_bytes
        self.playout = PlayoutBuffer(sample_rate, prebuffer_ms=prebuffer_ms, max_ms=max_buffer_ms)
        self.record = CallRecord(sample_rate)
        self.protocol_errors = 0  # downlink frames the module would reject
        self._caller: deque[bytes] = deque()
        self._splitter = FrameSplitter(self.frame_bytes)
        self._uplink_idle = asyncio.Event()
        self._uplink_idle.set()
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task[None] | None = None
        self._t0 = 0.0
        self._playout_index = 0
        self._mark_sends: set[asyncio.Task[None]] = set()

    # --------------------------------------------------------------------------------------------- control
    @property
    def ws(self) -> aiohttp.ClientWebSocketResponse:
        if self._ws is None:
            raise RuntimeError("not connected")
        return self._ws

    @property
    def close_code(self) -> int | None:
        return self._ws.close_code if self._ws is not None else None

    async def connect(self) -> None:
        """Open the websocket, send the start frame, start both clocks. Raises aiohttp.WSServerHandshakeError
        (with `.status`) when the agent refuses the handshake."""
        self._session = aiohttp.ClientSession()
        headers = {"Authorization": f"Bearer {self._token}"} if self._token is not None else {}
        try:
            self._ws = await self._session.ws_connect(
                self.url, headers=headers, max_msg_size=self._max_msg, compress=0, autoping=True
            )
            await self._ws.send_str(json.dumps(self._start))
        except BaseException:
            await self._session.close()
            raise
        loop = asyncio.get_running_loop()
        self._t0 = loop.time() + FRAME_S  # first tick one frame from now: both clocks share this epoch
        self._task = asyncio.create_task(self._run(), name=f"loopback-audio-{self.uuid}")

    @property
    def queued_uplink_frames(self) -> int:
        """Caller frames queued and not yet sent."""
        return len(self._caller)

    def feed(self, pcm: bytes) -> int:
        """Queue caller audio; it goes up in 20 ms frames from the next free tick (partial tail padded).

        Returns the tick index (into `record.caller` / `record.uplink_times`) of its first frame."""
        first = len(self.record.caller) + len(self._caller)
        splitter = FrameSplitter(self.frame_bytes)  # each fed utterance ends on its own padded frame
        self._caller.extend(splitter.iter_push(pcm))
        tail = splitter.flush()
        if tail is not None:
            self._caller.append(tail)
        if self._caller:
            self._uplink_idle.clear()
        return first

    async def wait_uplink_idle(self) -> None:
        """Until all caller audio queued so far has been sent."""
        await self._uplink_idle.wait()

    def clear_playout(self) -> tuple[str, ...]:
        """`uuid_storeagent <uuid> clear`: the same as the agent's clear message (sa_call_clear). The drop is
        immediate; the `cleared` mark reports go up in order right after. Returns the marks cleared."""
        now = asyncio.get_running_loop().time()
        cleared = self._clear(now)
        if cleared:
            t = asyncio.ensure_future(self._send_marks(cleared, "cleared"))
            self._mark_sends.add(t)
            t.add_done_callback(self._mark_sends.discard)
        return cleared

    async def close(self) -> None:
        """Hang up the audio: close the websocket (1000) and stop both clocks."""
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(Exception):
                await self._ws.close()
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """Until the websocket is closed (by either side) and every task of this client has ended."""
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.gather(*self._mark_sends, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    # ---------------------------------------------------------------------------------------------- tasks
    async def _run(self) -> None:
        helpers = [
            asyncio.create_task(self._uplink_clock()),
            asyncio.create_task(self._playout_clock()),
        ]
        if self._source is not None:
            helpers.append(asyncio.create_task(self._pump_source(self._source)))
        if self._stats_interval:
            helpers.append(asyncio.create_task(self._send_stats(self._stats_interval)))
        try:
            await self._receive()
        finally:
            for t in helpers:
                t.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

    async def _sleep_until_tick(self, k: int) -> float:
        loop = asyncio.get_running_loop()
        target = self._t0 + k * FRAME_S
        delay = target - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        now = loop.time()
        if now - target > FRAME_S:
            self.record.late_ticks += 1
        return now

    async def _uplink_clock(self) -> None:
        ws = self.ws
        k = 0
        while not ws.closed:
            now = await self._sleep_until_tick(k)
            frame = self._caller.popleft() if self._caller else bytes(self.frame_bytes)
            self.record.caller.append(frame)
            self.record.uplink_times.append(now)
            try:
                await ws.send_bytes(frame)
            except (ConnectionError, RuntimeError):
                return
            if not self._caller:
                self._uplink_idle.set()
            k += 1

    async def _playout_clock(self) -> None:
        ws = self.ws
        k = 0
        while not ws.closed:
            now = await self._sleep_until_tick(k)
            tick = self.playout.next_frame()
            self._playout_index = k + 1
            self.record.agent.append(tick.pcm)
            self.record.agent_active.append(tick.active)
            self.record.playout_times.append(now)
            for name in tick.played_marks:
                self.record.marks.append(MarkRecord(name, "played", now, k))
            await self._send_marks(tick.played_marks, "played")
            k += 1

    def pause(self, now: float) -> None:
        """sa_call_pause (the agent's `pause`, or `uuid_storeagent pause`)."""
        self.playout.pause()
        self.record.pauses.append(PauseRecord(now, self._playout_index))

    def resume(self, now: float) -> None:
        """sa_call_resume."""
        self.playout.resume()
        self.record.pauses.append(PauseRecord(now, self._playout_index, resume=True))

    def _clear(self, now: float) -> tuple[str, ...]:
        dropped, cleared = self.playout.clear()
        self.record.clears.append(ClearRecord(now, self._playout_index, dropped, tuple(cleared)))
        for name in cleared:
            self.record.marks.append(MarkRecord(name, "cleared", now, self._playout_index))
        return tuple(cleared)

    async def _send_marks(self, names: tuple[str, ...], event: str) -> None:
        for name in names:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.send_str(json.dumps({"type": "mark", "name": name, "event": event}))

    async def _pump_source(self, source: AsyncIterator[bytes]) -> None:
        try:
            async for chunk in source:
                self._caller.extend(self._splitter.iter_push(chunk))
                if self._caller:
                    self._uplink_idle.clear()
        except Exception:  # a broken source ends the caller's speech, not the call: silence follows
            log.exception("loopback audio %s: caller audio source failed", self.uuid)
        tail = self._splitter.flush()
        if tail is not None:
            self._caller.append(tail)
            self._uplink_idle.clear()

    async def _send_stats(self, interval: float) -> None:
        ws = self.ws
        while not ws.closed:
            await asyncio.sleep(interval)
            stats = {
                "type": "stats",
                "buffered_ms": round(self.playout.buffered_ms, 1),
                "underruns": self.playout.underruns,
            }
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_str(json.dumps(stats))

    async def _receive(self) -> None:
        ws = self.ws
        loop = asyncio.get_running_loop()
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.BINARY:
                self.record.received += msg.data
                self.playout.write(msg.data)
            elif msg.type is aiohttp.WSMsgType.TEXT:
                await self._on_text(msg.data, loop.time())
            elif msg.type is aiohttp.WSMsgType.ERROR:
                log.warning("loopback audio %s: websocket error %s", self.uuid, msg.data)
                break

    async def _on_text(self, text: str, now: float) -> None:
        try:
            msg: Any = json.loads(text)
        except (ValueError, RecursionError):  # deeply nested JSON overflows the parser
            msg = None
        kind = msg.get("type") if isinstance(msg, dict) else None
        if kind == "clear":
            await self._send_marks(self._clear(now), "cleared")
        elif kind == "pause":
            self.pause(now)
        elif kind == "resume":
            self.resume(now)
        elif kind == "mark" and isinstance(msg.get("name"), str) and msg["name"]:
            self.playout.mark(msg["name"])
        else:
            self.protocol_errors += 1
            log.warning("loopback audio %s: dropped downlink text frame %.80r", self.uuid, text)
