"""The agent's audio websocket endpoint: `GET /v1/calls/{uuid}/audio`, the server side of mod_storeagent.

Handshake (all checked before the upgrade, so a refused peer never gets to send audio):
- the token minted for this call comes in the `Authorization: Bearer <token>` header. libwebsockets adds it
  from LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER; a header, unlike a query parameter, stays out of access
  logs and proxies' URL logs. No query-string fallback: one way in, one thing to audit.
- refusals are plain HTTP: 400 (not a websocket upgrade, bad uuid in the path), 401 (token missing, malformed,
  bad signature, expired), 403 (token reused or minted for another call).
After the upgrade the first message must be the start frame (text, JSON), within `start_timeout`:
  {"type":"start","uuid":<the path's uuid>,"sample_rate":8000|16000,"encoding":"L16","channels":1}
Close codes the agent uses: 1000 call ended, 1009 message over `max_msg_bytes` (aiohttp), 4400 bad start frame
or protocol violation, 4404 no call is waiting for this uuid, 4408 no start frame in time.

Malformed input after the start: binary frames that are not a whole number of samples, text frames that are
not JSON or have an unknown/invalid type, mark reports for marks never sent: dropped, logged once each with the
uuid and counted through `on_protocol_error("audio_ws", reason)`; after `max_bad_frames` of them the connection is
closed (4400). An oversized frame closes the connection (1009). Only that connection is affected.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

from storeagent.agent.ports import AudioFormat
from storeagent.agent.transport.audio_link import (
    CLOSE_GOING_AWAY,
    CLOSE_NO_CALL,
    CLOSE_NORMAL,
    CLOSE_PROTOCOL,
    CLOSE_START_TIMEOUT,
    CLOSE_TOO_BIG,
    WIRE,
    AudioWsLimits,
    OnProtocolError,
    WebSocketAudioLink,
)
from storeagent.agent.transport.tokens import StreamTokens, TokenError

log = logging.getLogger(__name__)

AUDIO_PATH = "/v1/calls/{uuid}/audio"
SAMPLE_RATES = (8000, 16000)

_UUID_RE = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_TOKEN_STATUS = {
    "missing": 401,
    "malformed": 401,
    "bad_signature": 401,
    "expired": 401,
    "reused": 403,  # authentic, but spent: a replay
    "wrong_call": 403,  # authentic, but for another call
}
_DEFAULT_LIMITS = AudioWsLimits()

Attach = Callable[[str, WebSocketAudioLink], Awaitable[bool]]


class StartError(Exception):
    def __init__(self, reason: str, detail: str, code: int = CLOSE_PROTOCOL) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.code = code


def parse_start(text: str | bytes | None, uuid: str) -> AudioFormat:
    """Validate the start frame for call `uuid`; raises StartError naming the field and the reason."""
    if not isinstance(text, str):
        raise StartError("start_not_text", "first message must be the JSON start frame (text)")
    try:
        msg: Any = json.loads(text)
    except (ValueError, RecursionError):  # deeply nested JSON overflows the parser
        raise StartError("start_not_json", "start frame is not JSON") from None
    if not isinstance(msg, dict) or msg.get("type") != "start":
        raise StartError("start_bad_type", 'first message must have "type":"start"')
    if msg.get("uuid") != uuid:
        raise StartError("start_bad_uuid", f"uuid: {str(msg.get('uuid'))[:64]!r} is not the URL's {uuid}")
    rate = msg.get("sample_rate")
    if type(rate) is not int or rate not in SAMPLE_RATES:
        raise StartError("start_bad_sample_rate", f"sample_rate: {str(rate)[:16]!r} is not 8000 or 16000")
    if msg.get("encoding") != "L16":
        raise StartError("start_bad_encoding", f"encoding: {str(msg.get('encoding'))[:16]!r} is not L16")
    channels = msg.get("channels", 1)
    if type(channels) is not int or channels != 1:
        raise StartError("start_bad_channels", f"channels: {str(channels)[:16]!r} is not 1")
    return AudioFormat(sample_rate=rate)


def bearer_token(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def make_audio_handler(
    tokens: StreamTokens,
    attach: Attach,
    on_protocol_error: OnProtocolError,
    limits: AudioWsLimits = _DEFAULT_LIMITS,
    live: set[WebSocketAudioLink] | None = None,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The endpoint's handler; `live`, if given, holds the links being served (for shutdown)."""

    def refuse(uuid: str, reason: str, detail: str) -> None:
        log.warning("audio_ws call=%s refused: %s (%s)", uuid, reason, detail, extra={"call_uuid": uuid})
        with contextlib.suppress(Exception):  # a broken metrics callback must not break the endpoint
            on_protocol_error(WIRE, reason)

    async def handle(request: web.Request) -> web.StreamResponse:
        uuid = request.match_info["uuid"]
        if not _UUID_RE.match(uuid):
            refuse(uuid[:64], "bad_uuid", "path uuid is not a call uuid")
            return web.Response(status=400, text="bad call uuid\n")
        ws = web.WebSocketResponse(
            max_msg_size=limits.max_msg_bytes,
            compress=False,  # deflate on PCM costs CPU and saves almost nothing
            heartbeat=limits.heartbeat,
            timeout=limits.close_timeout,
        )
        if not ws.can_prepare(request).ok:
            refuse(uuid, "not_websocket", "expected a websocket upgrade")
            return web.Response(status=400, text="websocket upgrade required\n")
        try:
            tokens.verify(uuid, bearer_token(request))
        except TokenError as e:
            refuse(uuid, f"token_{e.reason}", str(e))
            return web.Response(status=_TOKEN_STATUS[e.reason], text=f"stream token refused: {e.reason}\n")

        await ws.prepare(request)
        try:
            fmt = await _read_start(ws, uuid, limits.start_timeout)
        except StartError as e:
            refuse(uuid, e.reason, e.detail)
            await ws.close(code=e.code, message=e.detail.encode()[:120])
            return ws

        link = WebSocketAudioLink(uuid, fmt, ws, on_protocol_error, limits)
        if live is not None:
            live.add(link)
        try:
            await link.serve(attach)
        finally:
            if live is not None:
                live.discard(link)
        return ws

    return handle


async def _read_start(ws: web.WebSocketResponse, uuid: str, wait: float) -> AudioFormat:
    try:
        msg = await ws.receive(timeout=wait)
    except TimeoutError:
        raise StartError("start_timeout", f"no start frame within {wait:g} s", CLOSE_START_TIMEOUT) from None
    if msg.type is WSMsgType.ERROR:
        code = getattr(msg.data, "code", None) or CLOSE_PROTOCOL  # aiohttp's WebSocketError
        reason = "oversize_frame" if code == CLOSE_TOO_BIG else "ws_error"
        raise StartError(reason, f"websocket error before start: {msg.data}", code)
    if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
        raise StartError("closed_before_start", "peer closed before the start frame", CLOSE_NORMAL)
    if msg.type is WSMsgType.BINARY:
        raise StartError("audio_before_start", "audio before the start frame")
    return parse_start(msg.data, uuid)


def add_audio_route(
    app: web.Application,
    *,
    tokens: StreamTokens,
    attach: Attach,
    on_protocol_error: OnProtocolError,
    limits: AudioWsLimits = _DEFAULT_LIMITS,
) -> None:
    """Serve `GET /v1/calls/{uuid}/audio` on `app`.

    On the app's shutdown, links still open are closed with 1001: aiohttp would otherwise wait its whole
    shutdown timeout for websocket handlers that only end when their call does. Drain calls before that.
    """
    live: set[WebSocketAudioLink] = set()

    async def close_live(_app: web.Application) -> None:
        await asyncio.gather(*(link.abort(CLOSE_GOING_AWAY, "agent shutting down") for link in list(live)))

    app.on_shutdown.append(close_live)
    app.router.add_get(AUDIO_PATH, make_audio_handler(tokens, attach, on_protocol_error, limits, live))


__all__ = [
    "AUDIO_PATH",
    "CLOSE_GOING_AWAY",
    "CLOSE_NORMAL",
    "CLOSE_NO_CALL",
    "CLOSE_PROTOCOL",
    "CLOSE_START_TIMEOUT",
    "CLOSE_TOO_BIG",
    "AudioWsLimits",
    "StartError",
    "WebSocketAudioLink",
    "add_audio_route",
    "bearer_token",
    "make_audio_handler",
    "parse_start",
]
