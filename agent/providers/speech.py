"""SpeechSTT / SpeechTTS: the STT and TTS ports over the shared speech service (docs/speech-protocol.md).

Thin adapters like the cloud ones: they translate the service's frames and classify failures; retries, timeouts
and the fallback to the in-process engines belong to resilience.py. Every failure is a retryable ProviderError
(a refusal because the service is saturated, a dropped socket, a dead worker) except a refused `start`.
The URL is the platform's (STOREAGENT_SPEECH_URL, set by the operator), never a tenant's: no URL policy applies.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Sequence
from typing import Any, TypeAlias

import aiohttp

from storeagent.agent.errors import ProviderError
from storeagent.agent.ports import AudioFormat, SpeechStarted, STTEvent, Transcript, UtteranceEnd
from storeagent.speech import protocol as p

BATCH_MS = 100  # caller audio is sent in 100 ms frames: 5x fewer messages than 20 ms, flushed at finalize
HEARTBEAT_S = 5.0  # a service that vanished without a FIN (node lost) is noticed within ~2 heartbeats


class _Client:
    """Opens one stream's websocket; each stream owns its aiohttp session and closes it with the socket."""

    def __init__(self, url: str, name: str) -> None:
        self.url = url.rstrip("/")
        self.name = name

    async def connect(self, path: str, start: dict[str, Any]) -> Socket:
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=2.0))
        try:
            ws = await session.ws_connect(f"{self.url}{path}", heartbeat=HEARTBEAT_S,
                                          max_msg_size=p.MAX_CONTROL_BYTES)
        except (aiohttp.ClientError, OSError) as e:
            await session.close()
            raise ProviderError(self.name, "connect", f"cannot reach the speech service: {e}",
                                retryable=True) from e
        sock = Socket(session, ws)
        try:
            await ws.send_str(p.encode(start))
            msg = await ws.receive()
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise ProviderError(self.name, "closed", f"the service closed before ready ({ws.close_code})",
                                    retryable=True)
            answer = p.decode(msg.data)
            if answer["type"] == "error":
                raise refused(self.name, answer)
            if answer["type"] != "ready":
                raise ProviderError(self.name, "protocol", f"expected ready, got {answer['type']!r}", retryable=True)
        except BaseException:
            await sock.close()
            raise
        return sock


class Socket:
    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.session, self.ws = session, ws

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        await self.session.close()


def refused(name: str, msg: dict[str, Any]) -> ProviderError:
    code = str(msg.get("code", "engine"))
    kind = {"saturated": "saturated", "bad_request": "bad_request", "unsupported": "bad_request",
            "shutting_down": "saturated"}.get(code, "server")
    return ProviderError(name, kind, f"{code}: {str(msg.get('message', ''))[:200]}",
                         retryable=bool(msg.get("retryable", True)))


def _alternatives(value: Any) -> tuple[str, ...]:
    """A transcript's other readings as the service sent them: strings only, bounded in number and length."""
    if not isinstance(value, list):
        return ()
    texts = (v.strip()[: p.MAX_TEXT_CHARS] for v in value if isinstance(v, str))
    return tuple(t for t in texts if t)[: p.MAX_ALTERNATIVES]


def _closed(name: str, ws: aiohttp.ClientWebSocketResponse) -> ProviderError:
    return ProviderError(name, "closed", f"the speech service closed the stream ({ws.close_code})", retryable=True)


# --------------------------------------------------------------------------------------------------- STT
class SpeechSTT:
    def __init__(self, url: str, phrases: Sequence[str] = (), *, vocabulary: Sequence[str] = (),
                 name: str = "speech") -> None:
        self.name = name
        self.phrases = [x for x in phrases if x.strip()][: p.MAX_PHRASES]
        self.vocabulary = [x[: p.MAX_WORD_CHARS] for x in vocabulary if x.strip()][: p.MAX_VOCABULARY]
        self._client = _Client(url, name)

    async def open(self, fmt: AudioFormat, language: str) -> SpeechSTTStream:
        sock = await self._client.connect("/v1/stt", {"type": "start", "sample_rate": fmt.sample_rate,
                                                    "language": language, "encoding": "L16",
                                                    "phrases": [x[: p.MAX_PHRASE_CHARS] for x in self.phrases],
                                                    "vocabulary": self.vocabulary})
        return SpeechSTTStream(self.name, sock, fmt)


class SpeechSTTStream:
    def __init__(self, name: str, sock: Socket, fmt: AudioFormat) -> None:
        self.name, self._sock, self._ws = name, sock, sock.ws
        self._batch = fmt.frame_bytes * (BATCH_MS // 20)
        self._pending = bytearray()
        self._closing = False

    async def _send_bytes(self, data: bytes) -> None:
        if self._ws.closed:
            raise _closed(self.name, self._ws)
        try:
            await self._ws.send_bytes(data)
        except (ConnectionError, RuntimeError, aiohttp.ClientError) as e:
            raise ProviderError(self.name, "closed", f"send failed: {e}", retryable=True) from e

    async def send(self, pcm: bytes) -> None:
        self._pending += pcm
        if len(self._pending) >= self._batch:
            data, self._pending = bytes(self._pending), bytearray()
            await self._send_bytes(data)

    async def finalize(self) -> None:
        if self._pending:
            data, self._pending = bytes(self._pending), bytearray()
            await self._send_bytes(data)
        if self._ws.closed:
            raise _closed(self.name, self._ws)
        try:
            await self._ws.send_str('{"type":"finalize"}')
        except (ConnectionError, RuntimeError, aiohttp.ClientError) as e:
            raise ProviderError(self.name, "closed", f"send failed: {e}", retryable=True) from e

    async def events(self) -> AsyncIterator[STTEvent]:
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            ev = p.decode(msg.data)
            t = ev["type"]
            if t == "transcript":
                conf = ev.get("confidence")
                yield Transcript(str(ev.get("text", "")), is_final=bool(ev.get("final")),
                                 confidence=float(conf) if isinstance(conf, int | float) else None,
                                 alternatives=_alternatives(ev.get("alternatives")))
            elif t == "speech_started":
                yield SpeechStarted()
            elif t == "utterance_end":
                yield UtteranceEnd()
            elif t == "error":
                raise refused(self.name, ev)
        if not self._closing:
            raise _closed(self.name, self._ws)

    async def aclose(self) -> None:
        self._closing = True
        await self._sock.close()


# --------------------------------------------------------------------------------------------------- TTS
class SpeechTTS:
    def __init__(self, url: str, *, name: str = "speech") -> None:
        self.name = name
        self._client = _Client(url, name)

    async def open(self, fmt: AudioFormat, language: str) -> SpeechTTSSession:
        sock = await self._client.connect("/v1/tts", {"type": "start", "sample_rate": fmt.sample_rate,
                                                    "language": language, "encoding": "L16"})
        return SpeechTTSSession(self.name, sock)


_Item: TypeAlias = bytes | dict[str, Any] | ProviderError


class SpeechTTSSession:
    """Utterances one at a time, as the port has them. One reader task owns the socket; a cancelled utterance's
    late audio is skipped until the service acknowledges the cancel."""

    def __init__(self, name: str, sock: Socket) -> None:
        self.name, self._sock, self._ws = name, sock, sock.ws
        self._ids = itertools.count(1)
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._stale: int | None = None  # an utterance cancelled whose `cancelled`/`done` has not come yet
        self._reader = asyncio.create_task(self._read(), name="speech-tts-reader")

    async def _read(self) -> None:
        try:
            async for msg in self._ws:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    self._queue.put_nowait(bytes(msg.data))
                elif msg.type == aiohttp.WSMsgType.TEXT:
                    self._queue.put_nowait(p.decode(msg.data))
        finally:
            self._queue.put_nowait(_closed(self.name, self._ws))

    async def _next(self) -> _Item:
        item = await self._queue.get()
        if isinstance(item, ProviderError):
            self._queue.put_nowait(item)  # every later call sees the socket is gone
        return item

    async def _skip_stale(self) -> None:
        while self._stale is not None:
            item = await self._next()
            if isinstance(item, ProviderError):
                raise item
            if isinstance(item, dict) and item.get("id") == self._stale and item["type"] in (
                    "done", "cancelled", "error"):
                self._stale = None

    async def _send(self, msg: dict[str, Any]) -> None:
        if self._ws.closed:
            raise _closed(self.name, self._ws)
        try:
            await self._ws.send_str(p.encode(msg))
        except (ConnectionError, RuntimeError, aiohttp.ClientError) as e:
            raise ProviderError(self.name, "closed", f"send failed: {e}", retryable=True) from e

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        if not text.strip():
            return
        uid = next(self._ids)
        await self._send({"type": "speak", "id": uid, "text": text[: p.MAX_TEXT_CHARS]})
        finished = False
        try:
            await self._skip_stale()
            while True:
                item = await self._next()
                if isinstance(item, ProviderError):
                    raise item
                if isinstance(item, bytes):
                    yield item
                    continue
                if item.get("id") != uid:
                    continue
                if item["type"] in ("done", "cancelled"):
                    finished = True
                    return
                if item["type"] == "error":
                    finished = True
                    raise refused(self.name, item)
        finally:
            if not finished and not self._ws.closed:  # barge-in (or a timeout): stop the service's synthesis now
                self._stale = uid
                with contextlib.suppress(Exception):
                    await self._ws.send_str(p.encode({"type": "cancel", "id": uid}))

    async def aclose(self) -> None:
        await self._sock.close()
        self._reader.cancel()
        with contextlib.suppress(BaseException):
            await self._reader
