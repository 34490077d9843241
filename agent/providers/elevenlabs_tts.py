"""ElevenLabs streaming TTS, output format matched to the call: `pcm_16000` on 16 kHz calls (already L16),
`ulaw_8000` on 8 kHz calls (decoded to L16 here), so nothing is resampled.

Two transports:
- "websocket" (default, lowest latency): `/v1/text-to-speech/{voice_id}/stream-input`. The installed SDK
  (elevenlabs 2.x) only offers this path as a *blocking* generator (`convert_realtime`, websockets.sync, one
  socket per text iterator, no error classification), which would stall the call's event loop; so the socket
  is spoken here with aiohttp, while the outgoing messages are built from the SDK's own models
  (`InitializeConnection`, `SendText`, `CloseConnection`). One stream per answer (see ElevenLabsWSSession):
  the handshake is on the first clause's latency path (one round trip), in exchange for no idle socket per
  call against the plan's concurrency limit and the model's prosody context kept across an answer's clauses.
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
from elevenlabs import CloseConnection, InitializeConnection, SendText
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


TAIL_WAIT_S = 0.3
CHUNK_LENGTH_SCHEDULE = (50, 90, 120, 150)  # characters before each generation; integers, as the API documents


def initialize_message() -> dict[str, Any]:
    """The first message: a single space plus the generation schedule. Built as plain JSON: the SDK's model
    types the schedule as floats and would send 50.0."""
    init = InitializeConnection().dict(exclude_none=True)
    init["generation_config"] = {"chunk_length_schedule": [int(n) for n in CHUNK_LENGTH_SCHEDULE]}
    return init


def aligned_chars(msg: Mapping[str, Any]) -> tuple[int, float]:
    """(non-space input characters one audio message's `alignment` covers, ms from the start of the message's
    audio to the end of its last character), read as the docs' example shows (times start at 0 per message)."""
    alignment = msg.get("alignment")
    if not isinstance(alignment, Mapping) or not isinstance(alignment.get("chars"), list):
        return 0, 0.0
    chars = alignment["chars"]
    starts, durations = alignment.get("charStartTimesMs") or [], alignment.get("charDurationsMs") or []
    end = 0.0
    with contextlib.suppress(TypeError, ValueError, IndexError):
        if chars and starts and durations:
            end = float(starts[-1]) + float(durations[-1])
    return sum(1 for c in chars if isinstance(c, str) and c.strip()), end


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
                 transport: Transport = "websocket", idle_close_s: float = 2.0, max_streams: int = 0,
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
        self.idle_close_s = idle_close_s  # an answer's stream left without a clause this long is ended
        self.max_streams = max_streams  # websockets open at once through this provider (0: no limit)
        self.open_streams = 0
        self.url_policy = url_policy  # set: connections go only to resolved-and-checked addresses

    def __repr__(self) -> str:
        return f"ElevenLabsTTS(voice_id={self.voice_id!r}, model_id={self.model_id!r}, transport={self.transport!r})"

    def acquire_stream(self) -> None:
        """Count one more open stream; refused (retryable, so the chain's next voice speaks) at the limit."""
        if self.max_streams and self.open_streams >= self.max_streams:
            raise ProviderError(NAME, "rate_limit", f"{self.max_streams} streams already open", retryable=True)
        self.open_streams += 1

    def release_stream(self) -> None:
        self.open_streams = max(0, self.open_streams - 1)

    async def open(self, fmt: AudioFormat, language: str) -> ElevenLabsWSSession | ElevenLabsHTTPSession:
        output_format(fmt)  # refuse an unsupported rate before any I/O
        if self.transport == "http":
            return ElevenLabsHTTPSession(self, self._key, fmt, language)
        session = ElevenLabsWSSession(self, self._key, fmt, language)
        await session.start()
        return session


class ElevenLabsWSSession:
    """One stream-input websocket per answer: opened on the answer's first clause, each clause pushed with
    `flush` (the model keeps the answer's prosody context across clauses), the clause's audio read until the
    alignment has covered its characters, `{"text": ""}` at `end_answer()` (or after `idle_close_s` without a
    clause). A clause abandoned mid-way (barge-in cancels the reply) closes the socket, which stops generation.
    No standby socket: a call holds at most one stream, counted against `ElevenLabsTTS.max_streams`."""

    def __init__(self, tts: ElevenLabsTTS, key: str, fmt: AudioFormat, language: str) -> None:
        self._tts, self._key, self._fmt = tts, key, fmt
        ws_base = "ws" + tts.base_url[4:] if tts.base_url.startswith("http") else tts.base_url
        query = urlencode(stream_input_query(tts.model_id, fmt, language))
        self._url = f"{ws_base}/v1/text-to-speech/{tts.voice_id}/stream-input?{query}"
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._decoder = AudioDecoder(fmt)
        self._idle: asyncio.Task[None] | None = None
        self._closed = False
        self.streams_opened = 0

    async def start(self) -> None:
        policy = self._tts.url_policy
        self._http = aiohttp.ClientSession(connector=policy_connector(policy) if policy is not None else None)

    async def _connect(self) -> aiohttp.ClientWebSocketResponse:
        assert self._http is not None
        self._tts.acquire_stream()
        try:
            ws = await self._http.ws_connect(self._url, headers={"xi-api-key": self._key}, autoping=True)
            await ws.send_str(json.dumps(initialize_message()))
        except aiohttp.WSServerHandshakeError as exc:
            self._tts.release_stream()
            raise classify_status(exc.status) from None
        except (aiohttp.ClientError, OSError) as exc:
            self._tts.release_stream()
            raise ProviderError(NAME, "connect", type(exc).__name__, retryable=True) from None
        except BaseException:
            self._tts.release_stream()
            raise
        self.streams_opened += 1
        self._decoder = AudioDecoder(self._fmt)
        return ws

    async def _drop(self, *, end_of_input: bool) -> None:
        ws, self._ws = self._ws, None
        if ws is None:
            return
        try:
            if end_of_input and not ws.closed:
                with contextlib.suppress(Exception):
                    await ws.send_str(json.dumps(CloseConnection().dict()))
            await ws.close()
        finally:
            self._tts.release_stream()

    async def _idle_close(self) -> None:
        await asyncio.sleep(self._tts.idle_close_s)
        self._idle = None
        await self._drop(end_of_input=True)

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        if self._closed:
            raise ProviderError(NAME, "internal", "session closed", retryable=False)
        clause = text.strip()
        if not clause:
            return
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self._ws is None or self._ws.closed:
            await self._drop(end_of_input=False)
            self._ws = await self._connect()
        ws = self._ws
        owed = sum(1 for c in clause if not c.isspace())  # characters the alignment must cover
        heard_ms = 0.0  # audio of this clause received so far
        end_ms = 0.0  # where the clause's last aligned character ends in that audio
        done = False
        try:
            # The API wants text ending in a space; flush speaks it now instead of waiting for more text.
            await ws.send_str(json.dumps(SendText(text=clause + " ", flush=True).dict(exclude_none=True)))
            while owed > 0 or heard_ms < end_ms - 1:
                try:
                    # every character is in: the tail audio follows at once, or (a server timing the alignment
                    # otherwise) never; this bounds the wait for it
                    async with asyncio.timeout(None if owed > 0 else TAIL_WAIT_S):
                        msg = await ws.receive()
                except TimeoutError:
                    break
                if msg.type == aiohttp.WSMsgType.TEXT:
                    try:
                        data = json.loads(msg.data)
                    except ValueError:
                        raise ProviderError(NAME, "protocol", "message is not JSON", retryable=True) from None
                    audio, final = translate_elevenlabs(data)
                    chars, last_end = aligned_chars(data)
                    if chars:
                        owed -= chars
                        end_ms = max(end_ms, heard_ms + last_end)
                    pcm = self._decoder.feed(audio) if audio else b""
                    heard_ms += self._fmt.seconds(len(pcm)) * 1000
                    if pcm:
                        yield pcm
                    if final:
                        break
                elif msg.type == aiohttp.WSMsgType.CLOSE:
                    if msg.data == 1000:
                        break  # closed cleanly after the last audio
                    raise classify_close(msg.data, str(msg.extra or ""))
                elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.ERROR):
                    raise ProviderError(NAME, "connect", "connection lost mid-clause", retryable=True)
            done = True
        except (aiohttp.ClientError, OSError, ConnectionResetError) as exc:
            raise ProviderError(NAME, "connect", type(exc).__name__, retryable=True) from None
        finally:
            if not done or ws.closed:
                await self._drop(end_of_input=False)  # abandoned or broken: closing stops the generation
            elif not self._closed:
                self._idle = asyncio.create_task(self._idle_close(), name="elevenlabs-idle")

    async def end_answer(self) -> None:
        """The answer is complete: end the input so the stream closes (no socket waits idle between answers)."""
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        await self._drop(end_of_input=True)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.end_answer()
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
