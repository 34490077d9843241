"""ElevenLabs streaming TTS, output format matched to the call: `pcm_16000` on 16 kHz calls (already L16),
`ulaw_8000` on 8 kHz calls (decoded to L16 here), so nothing is resampled.

Two transports:
- "websocket" (default, lowest latency): `/v1/text-to-speech/{voice_id}/stream-input`. The installed SDK
  (elevenlabs 2.x) only offers this path as a *blocking* generator (`convert_realtime`, websockets.sync, one
  socket per text iterator, no error classification), which would stall the call's event loop; so the socket
  is spoken here with aiohttp, while the outgoing messages are built from the SDK's own models
  (`InitializeConnection`, `SendText`, `CloseConnection`). Each clause uses one stream (text, flush, "" to
  end, audio until `isFinal`), and the next clause's socket is opened and initialized while the current one
  speaks, so the handshake stays off the latency path. The waiting socket is kept open against the input
  inactivity timeout (20 s) by sending `{"text": " "}`.
- "http": the SDK's async `text_to_speech.stream` (POST `/v1/text-to-speech/{voice_id}/stream`), for
  servers or proxies without websockets.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal
from urllib.parse import urlencode

import aiohttp
from elevenlabs import CloseConnection, GenerationConfig, InitializeConnection, SendText
from elevenlabs.client import AsyncElevenLabs
from elevenlabs.core.api_error import ApiError

from storeagent.agent.errors import ProviderError
from storeagent.agent.netguard import policy_connector, policy_httpx_client
from storeagent.agent.ports import AudioFormat
from storeagent.agent.providers.mulaw import ulaw_to_l16
from storeagent.policy import UrlPolicy

log = logging.getLogger(__name__)
NAME = "elevenlabs"
DEFAULT_BASE_URL = "https://api.elevenlabs.io"
DEFAULT_MODEL = "eleven_flash_v2_5"  # lowest-latency multilingual model (Korean included)
Transport = Literal["websocket", "http"]


# ------------------------------------------------------------------------------------------------ pure
def output_format(fmt: AudioFormat) -> str:
    if fmt.sample_rate == 16000:
        return "pcm_16000"
    if fmt.sample_rate == 8000:
        return "ulaw_8000"
    raise ProviderError(NAME, "bad_request", f"no output format for {fmt.sample_rate} Hz calls", retryable=False)


def stream_input_query(model_id: str, fmt: AudioFormat, language: str) -> dict[str, str]:
    query = {"model_id": model_id, "output_format": output_format(fmt)}
    if "v2_5" in model_id or "v3" in model_id:  # only these models take (and enforce) a language code
        query["language_code"] = language.split("-")[0].lower()
    return query


class AudioDecoder:
    """Vendor audio bytes to L16: µ-law decoded; PCM chunks re-aligned to whole samples across messages."""

    def __init__(self, fmt: AudioFormat) -> None:
        self._ulaw = output_format(fmt) == "ulaw_8000"
        self._carry = b""

    def feed(self, data: bytes) -> bytes:
        if self._ulaw:
            return ulaw_to_l16(data)
        data = self._carry + data
        cut = len(data) - len(data) % 2
        self._carry = data[cut:]
        return data[:cut]


def translate_elevenlabs(msg: Mapping[str, Any]) -> tuple[bytes, bool]:
    """(audio bytes, is final) of one stream-input message; an error message raises ProviderError."""
    audio = msg.get("audio")
    if not audio and not msg.get("isFinal") and (msg.get("error") or msg.get("message")):
        raise classify_close(msg.get("code") if isinstance(msg.get("code"), int) else None,
                             str(msg.get("error") or "") + " " + str(msg.get("message") or ""))
    try:
        data = base64.b64decode(audio, validate=True) if audio else b""
    except (binascii.Error, TypeError, ValueError):
        raise ProviderError(NAME, "protocol", "audio is not base64", retryable=True) from None
    return data, bool(msg.get("isFinal"))


def classify_close(code: int | None, reason: str) -> ProviderError:
    """ElevenLabs ends a stream with 1008 (policy) and a reason for key, quota and limit problems."""
    text = reason.lower()
    if "api key" in text or "api_key" in text or "unauthorized" in text or "authoriz" in text:
        return ProviderError(NAME, "auth", f"closed {code}: key refused", retryable=False)
    if "quota" in text:
        return ProviderError(NAME, "rate_limit", f"closed {code}: quota exhausted", retryable=False)
    if "concurren" in text or "rate limit" in text or "too many" in text:
        return ProviderError(NAME, "rate_limit", f"closed {code}: too many requests", retryable=True)
    if code == 1008:
        return ProviderError(NAME, "bad_request", f"closed 1008: {reason[:80]}", retryable=False)
    return ProviderError(NAME, "server", f"closed {code}: {reason[:80]}", retryable=True)


def classify_status(status: int) -> ProviderError:
    if status in (401, 403):
        return ProviderError(NAME, "auth", f"HTTP {status}: key refused", retryable=False)
    if status == 429:
        return ProviderError(NAME, "rate_limit", "HTTP 429: too many requests", retryable=True)
    if 400 <= status < 500:
        return ProviderError(NAME, "bad_request", f"HTTP {status}", retryable=False)
    return ProviderError(NAME, "server", f"HTTP {status}", retryable=True)


# ------------------------------------------------------------------------------------------------ I/O
class ElevenLabsTTS:
    """TTS port over ElevenLabs; `base_url` points at another server (a local test server)."""

    name = NAME

    def __init__(self, api_key: str, *, voice_id: str, model_id: str = "", base_url: str = "",
                 transport: Transport = "websocket", keepalive_seconds: float = 15.0,
                 url_policy: UrlPolicy | None = None) -> None:
        if not api_key:
            raise ProviderError(NAME, "auth", "no API key configured", retryable=False)
        if not voice_id:
            raise ProviderError(NAME, "bad_request", "providers.tts.voice: a voice id is required", retryable=False)
        self._key = api_key
        self.voice_id = voice_id
        self.model_id = model_id or DEFAULT_MODEL
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.transport = transport
        self.keepalive_seconds = keepalive_seconds
        self.url_policy = url_policy  # set: connections go only to resolved-and-checked addresses

    def __repr__(self) -> str:
        return f"ElevenLabsTTS(voice_id={self.voice_id!r}, model_id={self.model_id!r}, transport={self.transport!r})"

    async def open(self, fmt: AudioFormat, language: str) -> ElevenLabsWSSession | ElevenLabsHTTPSession:
        output_format(fmt)  # refuse an unsupported rate before any I/O
        if self.transport == "http":
            return ElevenLabsHTTPSession(self, self._key, fmt, language)
        session = ElevenLabsWSSession(self, self._key, fmt, language)
        await session.start()
        return session


class ElevenLabsWSSession:
    def __init__(self, tts: ElevenLabsTTS, key: str, fmt: AudioFormat, language: str) -> None:
        self._tts, self._key, self._fmt = tts, key, fmt
        ws_base = "ws" + tts.base_url[4:] if tts.base_url.startswith("http") else tts.base_url
        query = urlencode(stream_input_query(tts.model_id, fmt, language))
        self._url = f"{ws_base}/v1/text-to-speech/{tts.voice_id}/stream-input?{query}"
        self._http: aiohttp.ClientSession | None = None
        self._next: asyncio.Task[aiohttp.ClientWebSocketResponse] | None = None
        self._keep: asyncio.Task[None] | None = None
        self._closed = False

    async def start(self) -> None:
        policy = self._tts.url_policy
        self._http = aiohttp.ClientSession(connector=policy_connector(policy) if policy is not None else None)
        try:
            ws = await self._connect()
        except BaseException:
            await self._http.close()
            raise
        self._next = asyncio.create_task(self._ready(ws), name="elevenlabs-next")

    async def _connect(self) -> aiohttp.ClientWebSocketResponse:
        assert self._http is not None
        try:
            ws = await self._http.ws_connect(self._url, headers={"xi-api-key": self._key}, autoping=True)
            init = InitializeConnection(generation_config=GenerationConfig(chunk_length_schedule=[50, 90, 120, 150]))
            await ws.send_str(json.dumps(init.dict(exclude_none=True)))
        except aiohttp.WSServerHandshakeError as exc:
            raise classify_status(exc.status) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise ProviderError(NAME, "connect", type(exc).__name__, retryable=True) from None
        return ws

    async def _ready(self, ws: aiohttp.ClientWebSocketResponse) -> aiohttp.ClientWebSocketResponse:
        self._keep = asyncio.create_task(self._keepalive(ws), name="elevenlabs-keepalive")
        return ws

    async def _standby(self) -> aiohttp.ClientWebSocketResponse:
        """The next clause's socket, opened and initialized while the current clause speaks."""
        return await self._ready(await self._connect())

    async def _keepalive(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        # A lone space resets the server's input inactivity timer without producing audio.
        while not ws.closed:
            await asyncio.sleep(self._tts.keepalive_seconds)
            with contextlib.suppress(Exception):
                await ws.send_str(json.dumps({"text": " "}))

    async def _take_socket(self) -> aiohttp.ClientWebSocketResponse:
        task, self._next = self._next, None
        ws: aiohttp.ClientWebSocketResponse | None = None
        if task is not None:
            with contextlib.suppress(ProviderError):  # a failed standby is retried now, as this clause's error
                ws = await task
        if self._keep is not None:
            self._keep.cancel()
            self._keep = None
        if ws is None or ws.closed:
            ws = await self._connect()
        self._next = asyncio.create_task(self._standby(), name="elevenlabs-next")
        return ws

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        if self._closed:
            raise ProviderError(NAME, "internal", "session closed", retryable=False)
        clause = text.strip()
        if not clause:
            return
        ws = await self._take_socket()
        decoder = AudioDecoder(self._fmt)
        try:
            # The API wants text ending in a space; flush speaks it now instead of waiting for more text.
            await ws.send_str(json.dumps(SendText(text=clause + " ", flush=True).dict(exclude_none=True)))
            await ws.send_str(json.dumps(CloseConnection().dict()))
            while True:
                msg = await ws.receive()
                if msg.type == aiohttp.WSMsgType.TEXT:
                    try:
                        data = json.loads(msg.data)
                    except ValueError:
                        raise ProviderError(NAME, "protocol", "message is not JSON", retryable=True) from None
                    audio, final = translate_elevenlabs(data)
                    pcm = decoder.feed(audio) if audio else b""
                    if pcm:
                        yield pcm
                    if final:
                        return
                elif msg.type == aiohttp.WSMsgType.CLOSE:
                    if msg.data == 1000:
                        return  # closed cleanly after the last audio (some servers skip isFinal)
                    raise classify_close(msg.data, str(msg.extra or ""))
                elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.ERROR):
                    raise ProviderError(NAME, "connect", "connection lost mid-clause", retryable=True)
        except (aiohttp.ClientError, OSError, ConnectionResetError) as exc:
            raise ProviderError(NAME, "connect", type(exc).__name__, retryable=True) from None
        finally:
            if not ws.closed:
                await ws.close()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in (self._keep, self._next):
            if task is not None:
                task.cancel()
        results = await asyncio.gather(*(t for t in (self._keep, self._next) if t is not None),
                                       return_exceptions=True)
        for r in results:
            if isinstance(r, aiohttp.ClientWebSocketResponse):
                await r.close()
        if self._http is not None:
            await self._http.close()


class ElevenLabsHTTPSession:
    """One SDK streaming request per clause (`text_to_speech.stream`)."""

    def __init__(self, tts: ElevenLabsTTS, key: str, fmt: AudioFormat, language: str) -> None:
        self._tts, self._fmt = tts, fmt
        http = policy_httpx_client(tts.url_policy) if tts.url_policy is not None else None
        self._client = AsyncElevenLabs(api_key=key, base_url=tts.base_url, httpx_client=http)
        self._language = language.split("-")[0].lower()

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        clause = text.strip()
        if not clause:
            return
        decoder = AudioDecoder(self._fmt)
        extra: dict[str, Any] = {}
        if "v2_5" in self._tts.model_id or "v3" in self._tts.model_id:
            extra["language_code"] = self._language
        try:
            async for chunk in self._client.text_to_speech.stream(
                    self._tts.voice_id, text=clause, model_id=self._tts.model_id,
                    output_format=output_format(self._fmt), **extra):  # type: ignore[arg-type]
                pcm = decoder.feed(chunk)
                if pcm:
                    yield pcm
        except ApiError as exc:
            raise classify_status(exc.status_code or 0) from None
        except ProviderError:
            raise
        except GeneratorExit:
            raise
        except Exception as exc:  # httpx transport errors: connection refused or reset mid-body
            raise ProviderError(NAME, "connect", type(exc).__name__, retryable=True) from None

    async def aclose(self) -> None:
        return None
