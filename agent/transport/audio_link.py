"""`WebSocketAudioLink`: one call's audio websocket after the start frame, as the `AudioLink` port.

Outbound scheduling (pipecat-style priority): agent speech and marks wait in one ordered queue; control
frames (`clear`, `pause`, `resume`) go in a second queue that the single writer task always serves first.
`send_clear` drops, right away, every piece of speech and every mark not yet handed to the socket, so a
barge-in never waits behind queued audio; `send_pause` drops nothing (the speech waits for `resume`). Marks
dropped by a clear never reached the far end, so the link reports them `cleared` itself.
Speech is written in pieces of `downlink_chunk_ms`, so a slow socket leaves droppable pieces queued here.

Reports of marks: `played` reports arrive in queue order; `cleared` reports for marks dropped here come at
once, before the far end's `cleared` reports for marks it had already received.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from storeagent.agent.ports import AudioFormat, AudioFrame, LinkStats, MarkReport, UplinkItem
from storeagent.agent.transport.codec import FrameSplitter

log = logging.getLogger("storeagent.agent.transport.audio_ws")

WIRE = "audio_ws"
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_TOO_BIG = int(WSCloseCode.MESSAGE_TOO_BIG)  # 1009
CLOSE_PROTOCOL = 4400
CLOSE_NO_CALL = 4404
CLOSE_START_TIMEOUT = 4408
MAX_MARK_NAME = 255  # bytes of UTF-8: mod_storeagent keeps names in a 256-byte buffer (SA_MARK_NAME_MAX)

OnProtocolError = Callable[[str, str], None]


@dataclass(frozen=True, slots=True)
class AudioWsLimits:
    """Per-connection limits of the audio endpoint."""

    max_msg_bytes: int = 64 * 1024  # a 20 ms frame is 320/640 bytes; 64 KiB is ~2 s at 16 kHz
    start_timeout: float = 5.0  # seconds from upgrade to the start frame; the module sends it at once
    max_bad_frames: int = 20  # dropped malformed frames tolerated per connection before it is closed
    uplink_queue_frames: int = 500  # 10 s of caller audio the call may lag before the oldest is dropped
    downlink_chunk_ms: int = 200  # agent speech is written in pieces this long, so clear can drop unsent ones
    close_timeout: float = 2.0  # seconds to wait for the peer's close reply
    heartbeat: float | None = 15.0  # websocket ping interval: finds a vanished FreeSWITCH host


@dataclass(frozen=True, slots=True)
class _Mark:
    name: str


_CLEAR = json.dumps({"type": "clear"})
_PAUSE = json.dumps({"type": "pause"})
_RESUME = json.dumps({"type": "resume"})


class WebSocketAudioLink:
    """`AudioLink` over the audio websocket. Created by the endpoint; handed to the call through `attach`."""

    def __init__(
        self,
        uuid: str,
        fmt: AudioFormat,
        ws: web.WebSocketResponse,
        on_protocol_error: OnProtocolError,
        limits: AudioWsLimits = AudioWsLimits(),
    ) -> None:
        self.uuid = uuid
        self._fmt = fmt
        self._ws = ws
        self._on_protocol_error = on_protocol_error
        self._limits = limits
        self._chunk = max(fmt.frame_bytes, fmt.frame_bytes * limits.downlink_chunk_ms // 20)
        self._out: deque[bytes | _Mark] = deque()  # speech and marks, in order
        self._ctrl: deque[str] = deque()  # control frames: always written before anything in _out
        self._wake = asyncio.Event()
        self._up: deque[UplinkItem] = deque()
        self._up_audio = 0
        self._up_wake = asyncio.Event()
        self._splitter = FrameSplitter(fmt.frame_bytes)
        self._marks_out: Counter[str] = Counter()  # marks sent, not yet reported
        self._closed = False
        self._ended = False  # uplink finished: no more items after the queued ones
        self.bad_frames = 0
        self.uplink_dropped = 0  # caller frames dropped because the call did not keep up
        self.close_code: int | None = None

    # ------------------------------------------------------------------------------------- AudioLink port
    @property
    def fmt(self) -> AudioFormat:
        return self._fmt

    @property
    def closed(self) -> bool:
        return self._closed

    async def uplink(self) -> AsyncIterator[UplinkItem]:
        while True:
            if self._up:
                item = self._up.popleft()
                if isinstance(item, AudioFrame):
                    self._up_audio -= 1
                yield item
            elif self._ended:
                return
            else:
                self._up_wake.clear()
                await self._up_wake.wait()

    async def send_audio(self, pcm: bytes) -> None:
        if self._closed or not pcm:
            return  # the call is ending; its speech has nowhere to go
        for i in range(0, len(pcm), self._chunk):
            self._out.append(pcm[i : i + self._chunk])
        self._wake.set()

    async def send_mark(self, name: str) -> None:
        if not name or len(name.encode()) > MAX_MARK_NAME or "\x00" in name:
            raise ValueError(f"mark name: must be 1..{MAX_MARK_NAME} UTF-8 bytes without NUL, got {name[:40]!r}")
        if self._closed:
            return
        self._out.append(_Mark(name))
        self._wake.set()

    async def send_clear(self) -> None:
        if self._closed:
            return
        self._drop_queued()
        self._ctrl.append(_CLEAR)
        self._wake.set()

    async def send_event(self, doc: dict[str, object]) -> None:
        """A JSON text frame for the peer ahead of queued speech (web sessions' transcript lines)."""
        if self._closed:
            return
        self._ctrl.append(json.dumps(doc, ensure_ascii=False))
        self._wake.set()

    async def send_pause(self) -> None:
        if self._closed:
            return
        self._ctrl.append(_PAUSE)  # ahead of queued speech; the speech itself stays queued (here and there)
        self._wake.set()

    async def send_resume(self) -> None:
        if self._closed:
            return
        self._ctrl.append(_RESUME)
        self._wake.set()

    async def close(self) -> None:
        """End the call's audio now: queued speech is dropped, the socket is closed with 1000."""
        await self.abort(CLOSE_NORMAL, "call ended")

    # ---------------------------------------------------------------------------------------- endpoint side
    async def serve(self, attach: Callable[[str, WebSocketAudioLink], Awaitable[bool]]) -> None:
        """Hand the link to its call, then pump both directions until either side closes."""
        writer = asyncio.create_task(self._write_loop(), name=f"audio_ws-writer-{self.uuid}")
        try:
            try:
                attached = await attach(self.uuid, self)
            except Exception:
                log.exception("audio_ws call=%s: attach failed", self.uuid, extra={"call_uuid": self.uuid})
                attached = False
            if not attached:
                self._protocol_error("unknown_call", "no call is waiting for this uuid")
                await self.abort(CLOSE_NO_CALL, "no call waiting for this uuid")
                return
            await self._read_loop()
        finally:
            self._closed = True
            self._end_uplink()
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            if not self._ws.closed:
                with contextlib.suppress(Exception):
                    await self._ws.close(code=CLOSE_NORMAL)
            self.close_code = self._ws.close_code

    async def _read_loop(self) -> None:
        ws = self._ws
        while not ws.closed:
            msg = await ws.receive()
            if msg.type is WSMsgType.BINARY:
                self._on_binary(msg.data)
            elif msg.type is WSMsgType.TEXT:
                self._on_text(msg.data)
            elif msg.type is WSMsgType.ERROR:
                if getattr(msg.data, "code", None) == CLOSE_TOO_BIG:  # aiohttp's WebSocketError
                    self._protocol_error("oversize_frame", str(msg.data))
                else:
                    log.info("audio_ws call=%s: connection error: %s", self.uuid, msg.data)
                return
            else:  # CLOSE, CLOSING, CLOSED
                return
            if self.bad_frames > self._limits.max_bad_frames:
                self._protocol_error("too_many_bad_frames", f"{self.bad_frames} malformed frames")
                await self.abort(CLOSE_PROTOCOL, "too many malformed frames")
                return

    def _on_binary(self, data: bytes) -> None:
        if not data or len(data) % 2:
            self.bad_frames += 1
            self._protocol_error("bad_audio_frame", f"{len(data)} bytes is not a whole number of samples")
            return
        now = time.monotonic()
        if len(data) == self._fmt.frame_bytes and self._splitter.pending == 0:
            self._push_audio(AudioFrame(data, now))  # the contract's case: exactly one 20 ms frame
        else:
            for frame in self._splitter.iter_push(data):
                self._push_audio(AudioFrame(frame, now))

    def _on_text(self, text: str) -> None:
        try:
            msg: Any = json.loads(text)
        except (ValueError, RecursionError):  # deeply nested JSON overflows the parser
            msg = None
        kind = msg.get("type") if isinstance(msg, dict) else None
        if kind == "mark":
            name, event = msg.get("name"), msg.get("event")
            if not isinstance(name, str) or event not in ("played", "cleared"):
                self._bad("bad_mark", "mark report needs a name and event played|cleared")
            elif self._marks_out[name] <= 0:
                self._bad("unknown_mark", f"mark {name[:MAX_MARK_NAME]!r} was never sent")
            else:
                self._marks_out[name] -= 1
                if self._marks_out[name] == 0:
                    del self._marks_out[name]
                self._push(MarkReport(name, event))
        elif kind == "stats":
            buffered, underruns = msg.get("buffered_ms"), msg.get("underruns")
            if (
                not isinstance(buffered, int | float)
                or isinstance(buffered, bool)
                or buffered < 0
                or type(underruns) is not int
                or underruns < 0
            ):
                self._bad("bad_stats", "stats needs buffered_ms >= 0 and integer underruns >= 0")
            else:
                self._push(LinkStats(float(buffered), underruns))
        elif kind == "start":
            self._bad("duplicate_start", "second start frame")
        elif msg is None:
            self._bad("bad_json", "text frame is not JSON")
        else:
            self._bad("unknown_type", f"type {str(kind)[:32]!r}")

    def _bad(self, reason: str, detail: str) -> None:
        self.bad_frames += 1
        self._protocol_error(reason, detail)

    def _protocol_error(self, reason: str, detail: str) -> None:
        log.warning("audio_ws call=%s: %s (%s)", self.uuid, reason, detail, extra={"call_uuid": self.uuid})
        with contextlib.suppress(Exception):  # a broken metrics callback must not break the call
            self._on_protocol_error(WIRE, reason)

    def _push_audio(self, frame: AudioFrame) -> None:
        if self._up_audio >= self._limits.uplink_queue_frames:
            # The call lags by seconds: drop the oldest caller audio, not the newest (turn-taking needs now).
            for i, item in enumerate(self._up):
                if isinstance(item, AudioFrame):
                    del self._up[i]
                    self._up_audio -= 1
                    self.uplink_dropped += 1
                    break
        self._up_audio += 1
        self._push(frame)

    def _push(self, item: UplinkItem) -> None:
        self._up.append(item)
        self._up_wake.set()

    def _end_uplink(self) -> None:
        self._ended = True
        self._up_wake.set()

    # ------------------------------------------------------------------------------------------- outbound
    def _drop_queued(self) -> None:
        """Drop speech and marks not yet written; marks dropped here are reported `cleared` by the link."""
        while self._out:
            item = self._out.popleft()
            if isinstance(item, _Mark):
                self._push(MarkReport(item.name, "cleared"))

    async def _write_loop(self) -> None:
        ws = self._ws
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._ctrl or self._out:
                    if self._ctrl:
                        await ws.send_str(self._ctrl.popleft())
                        continue
                    item = self._out.popleft()
                    if isinstance(item, _Mark):
                        self._marks_out[item.name] += 1
                        await ws.send_str(json.dumps({"type": "mark", "name": item.name}))
                    else:
                        await ws.send_bytes(item)
        except (ConnectionError, RuntimeError) as e:  # socket went away under a write
            log.info("audio_ws call=%s: write failed: %s", self.uuid, e, extra={"call_uuid": self.uuid})
            self._closed = True

    async def abort(self, code: int, message: str) -> None:
        """Close with `code`; queued speech is dropped. The endpoint uses it for protocol errors and shutdown."""
        if self._closed and self._ws.closed:
            return
        self._closed = True
        self._out.clear()
        self._ctrl.clear()
        if not self._ws.closed:
            with contextlib.suppress(Exception):
                await self._ws.close(code=code, message=message.encode()[:120])
        self.close_code = self._ws.close_code
