"""Deepgram live STT through `deepgram-sdk` (v7: `AsyncDeepgramClient.listen.v1.connect`, a websocket to
`/v1/listen`).

Pure part: `translate_deepgram()` maps one vendor JSON message to port events; `classify_*()` map failures to
`ProviderError` (retryable or not). I/O part: `DeepgramStream`, a thin run loop over the SDK socket. The
conversation streams it every caller frame, gaps included (`continuous`): Deepgram's endpointing and its
`UtteranceEnd` judge silence from the audio they receive, so audio held back between turns would hide the very
pauses they look for. It sends `KeepAlive` only when no audio has gone out for a while (a stalled uplink, a
transfer; Deepgram closes an idle stream with 1011 / NET-0001 after ~10 s), `Finalize` when our VAD ends a turn
that no final covers yet, and `CloseStream` at hangup. Each final's `start`+`duration` (seconds on the stream's
audio clock) is mapped back to when we sent that audio (`Transcript.audio_end_at`), so the pipeline can tell
which turn it belongs to. `endpoint_turns` lets `speech_final` / `UtteranceEnd` decide a turn (`decides_turns`).
Retries and fallback belong to `resilience.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from bisect import bisect_left
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import Any

import websockets.exceptions
from deepgram import AsyncDeepgramClient
from deepgram.core.api_error import ApiError
from deepgram.environment import DeepgramClientEnvironment

from storeagent.agent.errors import ProviderError
from storeagent.agent.netguard import precheck
from storeagent.agent.ports import AudioFormat, SpeechStarted, STTEvent, Transcript, UtteranceEnd
from storeagent.policy import PolicyError, UrlPolicy

log = logging.getLogger(__name__)
NAME = "deepgram"
DEFAULT_BASE_URL = "https://api.deepgram.com"


# ------------------------------------------------------------------------------------------------ pure
def result_end(msg: Mapping[str, Any]) -> float | None:
    """Where a Results message ends on the stream's audio clock (s), from its `start` and `duration`."""
    try:
        return float(msg["start"]) + float(msg["duration"])
    except (KeyError, TypeError, ValueError):
        return None


def translate_deepgram(msg: Mapping[str, Any], audio_end_at: float | None = None) -> list[STTEvent]:
    """Port events for one Deepgram message; Metadata and unknown types map to nothing. `audio_end_at` is
    stamped on final transcripts (the caller maps `result_end()` to its clock)."""
    kind = msg.get("type")
    if kind == "SpeechStarted":
        return [SpeechStarted()]
    if kind == "UtteranceEnd":
        return [UtteranceEnd()]
    if kind != "Results":
        return []
    channel = msg.get("channel") or {}
    alternatives = channel.get("alternatives") or [] if isinstance(channel, Mapping) else []
    if not alternatives:
        return []
    best = alternatives[0]
    text = str(best.get("transcript") or "").strip()
    is_final = bool(msg.get("is_final"))
    if not text and not is_final:
        return []  # an empty interim carries nothing
    confidence = best.get("confidence")
    events: list[STTEvent] = [Transcript(text, is_final, float(confidence) if confidence is not None else None,
                                         audio_end_at if is_final else None)]
    if is_final and msg.get("speech_final"):
        events.append(UtteranceEnd())  # endpointing saw the pause: the caller's utterance ended
    return events


def listen_options(fmt: AudioFormat, language: str, model: str, endpointing_ms: int,
                   utterance_end_ms: int) -> dict[str, str]:
    """Query options of `/v1/listen` for one call (the SDK encodes them into the URL)."""
    return {
        "model": model,
        "encoding": "linear16",
        "sample_rate": str(fmt.sample_rate),
        "channels": "1",
        "language": deepgram_language(language),
        "interim_results": "true",
        "endpointing": str(endpointing_ms),
        "utterance_end_ms": str(utterance_end_ms),  # needs interim_results; Deepgram's minimum is 1000
        "vad_events": "true",
        "punctuate": "true",
    }


def deepgram_language(language: str) -> str:
    """BCP-47 of the shop ("en-US", "ko-KR") to the code Deepgram's streaming models take ("en", "ko")."""
    primary = language.split("-")[0].lower()
    if not primary.isalpha():
        raise ProviderError(NAME, "bad_request", f"language {language!r} is not a BCP-47 tag", retryable=False)
    return primary


def classify_connect_error(exc: BaseException) -> ProviderError:
    """A failed websocket handshake as a ProviderError (never quoting headers: they carry the key)."""
    if isinstance(exc, ApiError):
        status = exc.status_code or 0
        if status in (401, 403):
            return ProviderError(NAME, "auth", f"HTTP {status}: key refused", retryable=False)
        if status == 429:
            return ProviderError(NAME, "rate_limit", "HTTP 429: too many requests", retryable=True)
        if 400 <= status < 500:
            return ProviderError(NAME, "bad_request", f"HTTP {status}: options refused", retryable=False)
        return ProviderError(NAME, "server", f"HTTP {status}", retryable=True)
    if isinstance(exc, TimeoutError):
        return ProviderError(NAME, "timeout", "handshake timed out", retryable=True)
    return ProviderError(NAME, "connect", f"{type(exc).__name__}", retryable=True)


def classify_close(code: int | None, reason: str) -> ProviderError:
    """The server closed the stream: 1008 is bad audio (DATA-0000, would fail again), others may recover;
    no close frame at all (code None) is a lost connection."""
    if code is None:
        return ProviderError(NAME, "connect", "connection lost", retryable=True)
    if code == 1008:
        return ProviderError(NAME, "bad_request", f"closed 1008: {reason[:80]}", retryable=False)
    return ProviderError(NAME, "server", f"closed {code}: {reason[:80]}", retryable=True)


# ------------------------------------------------------------------------------------------------ I/O
class DeepgramSTT:
    """STT port over Deepgram's live API. `base_url` points the SDK elsewhere (a local test server)."""

    name = NAME

    def __init__(self, api_key: str, *, model: str = "nova-3", base_url: str = "", endpointing_ms: int = 300,
                 utterance_end_ms: int = 1000, keepalive_seconds: float = 4.0, endpoint_turns: bool = True,
                 url_policy: UrlPolicy | None = None) -> None:
        if not api_key:
            raise ProviderError(NAME, "auth", "no API key configured", retryable=False)
        self._key = api_key
        self._model = model or "nova-3"
        http = (base_url or DEFAULT_BASE_URL).rstrip("/")
        ws = "ws" + http[4:] if http.startswith("http") else http
        self._env = DeepgramClientEnvironment(base=http, production=ws, agent=ws, agent_rest=http)
        self._endpointing_ms = endpointing_ms
        self._utterance_end_ms = utterance_end_ms
        self._keepalive = keepalive_seconds
        self._endpoint_turns = endpoint_turns  # speech_final / UtteranceEnd may decide a turn before our VAD
        self._url_policy = url_policy

    def __repr__(self) -> str:  # never show the key
        return f"DeepgramSTT(model={self._model!r}, base={self._env.base!r})"

    async def open(self, fmt: AudioFormat, language: str) -> DeepgramStream:
        if self._url_policy is not None:
            # The SDK opens its own websocket: resolve and check right before (docs/security.md: the SDK's
            # own lookup follows, so a rebinding window of one resolution remains for this provider).
            try:
                await precheck(self._env.production, self._url_policy)
            except (PolicyError, OSError) as exc:
                raise ProviderError(NAME, "connect", f"URL policy: {exc}", retryable=False) from None
        client = AsyncDeepgramClient(api_key=self._key, environment=self._env)
        options = listen_options(fmt, language, self._model, self._endpointing_ms, self._utterance_end_ms)
        stack = contextlib.AsyncExitStack()
        try:
            socket = await stack.enter_async_context(client.listen.v1.connect(**options))
        except asyncio.CancelledError:
            await stack.aclose()
            raise
        except Exception as exc:
            await stack.aclose()
            raise classify_connect_error(exc) from None  # `from None`: the SDK's error holds request headers
        return DeepgramStream(socket, stack, self._keepalive, fmt, decides_turns=self._endpoint_turns)


class AudioClock:
    """Maps the stream's audio clock (seconds of audio sent) to time.monotonic() of the send; ~30 s kept."""

    def __init__(self, sample_rate: int, keep: int = 1500) -> None:
        self._bytes_per_s = sample_rate * 2
        self._sent_s = 0.0
        self._ends: deque[float] = deque(maxlen=keep)
        self._times: deque[float] = deque(maxlen=keep)

    def sent(self, nbytes: int, at: float) -> None:
        self._sent_s += nbytes / self._bytes_per_s
        self._ends.append(self._sent_s)
        self._times.append(at)

    def at(self, audio_s: float | None) -> float | None:
        if audio_s is None or not self._ends:
            return None
        i = bisect_left(self._ends, audio_s - 1e-6)
        return self._times[min(i, len(self._times) - 1)]


class DeepgramStream:
    continuous = True  # wants every caller frame, gaps included (see the module docstring)

    def __init__(self, socket: Any, stack: contextlib.AsyncExitStack, keepalive_seconds: float,
                 fmt: AudioFormat | None = None, *, decides_turns: bool = True) -> None:
        self._socket = socket
        self._stack = stack
        self.decides_turns = decides_turns
        self._clock = AudioClock(fmt.sample_rate if fmt else 8000)
        self._last_sent = time.monotonic()
        self._closed = False
        self._ended = False  # UtteranceEnd already reported for the current utterance
        self._keepalive_task = asyncio.create_task(self._keep_alive(keepalive_seconds), name="deepgram-keepalive")

    async def _keep_alive(self, every: float) -> None:
        while not self._closed:
            await asyncio.sleep(max(0.05, every - (time.monotonic() - self._last_sent)))
            if time.monotonic() - self._last_sent >= every and not self._closed:
                try:
                    await self._socket.send_keep_alive()
                except Exception:  # the events loop reports the broken socket
                    return
                self._last_sent = time.monotonic()

    async def _guarded(self, op: Any) -> None:
        if self._closed:
            return
        try:
            await op
        except websockets.exceptions.ConnectionClosed as exc:
            raise classify_close(exc.rcvd.code if exc.rcvd else None, exc.rcvd.reason if exc.rcvd else "") from None
        except OSError as exc:
            raise ProviderError(NAME, "connect", type(exc).__name__, retryable=True) from None

    async def send(self, pcm: bytes) -> None:
        await self._guarded(self._socket.send_media(pcm))
        self._last_sent = time.monotonic()
        self._clock.sent(len(pcm), self._last_sent)

    async def finalize(self) -> None:
        await self._guarded(self._socket.send_finalize())

    async def events(self) -> AsyncIterator[STTEvent]:
        try:
            async for message in self._socket:
                if isinstance(message, bytes):
                    continue
                data = message.dict() if hasattr(message, "dict") else message
                end = self._clock.at(result_end(data)) if data.get("type") == "Results" else None
                for event in translate_deepgram(data, end):
                    if isinstance(event, UtteranceEnd):
                        if self._ended:
                            continue  # speech_final and UtteranceEnd both fire for one pause
                        self._ended = True
                    elif isinstance(event, SpeechStarted) or (isinstance(event, Transcript) and event.text):
                        self._ended = False
                    yield event
        except websockets.exceptions.ConnectionClosed as exc:
            if self._closed:
                return
            raise classify_close(exc.rcvd.code if exc.rcvd else None, exc.rcvd.reason if exc.rcvd else "") from None
        except OSError as exc:
            if not self._closed:
                raise ProviderError(NAME, "connect", type(exc).__name__, retryable=True) from None

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._keepalive_task.cancel()
        with contextlib.suppress(Exception):
            await self._socket.send_close_stream()
        try:
            async with asyncio.timeout(2.0):
                await self._stack.aclose()
        except (TimeoutError, Exception) as exc:  # a dead peer must not hold the call's teardown
            log.debug("deepgram close: %s", type(exc).__name__)
        await asyncio.gather(self._keepalive_task, return_exceptions=True)
