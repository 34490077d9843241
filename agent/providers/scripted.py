"""Scripted providers for tests and `make bench`: deterministic output after precise, injected delays.

The delays are public attributes so the benchmark can subtract them from voice-to-voice time and report the
pipeline's own overhead. `fault` injects a ProviderError at open, at the first result or mid-stream, so
resilience tests can exercise fallbacks without a network.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from storeagent.agent.errors import ProviderError
from storeagent.agent.ports import (
    AudioFormat,
    LLMChunk,
    Message,
    SpeechStarted,
    STTEvent,
    TextDelta,
    ToolSpec,
    Transcript,
)

FaultPoint = Literal["open", "first", "mid"]


@dataclass(frozen=True, slots=True)
class Fault:
    """Where a scripted provider fails and whether a retry could help."""

    at: FaultPoint
    retryable: bool = True
    kind: str = "server"

    def error(self, provider: str) -> ProviderError:
        return ProviderError(provider, self.kind, f"injected fault at {self.at}", retryable=self.retryable)


# ------------------------------------------------------------------------------------------------------ STT
class ScriptedSTTStream:
    def __init__(self, owner: ScriptedSTT) -> None:
        self._owner = owner
        self._events: asyncio.Queue[STTEvent | ProviderError | None] = asyncio.Queue()
        self._heard = 0  # bytes in the current utterance
        self._finals = 0
        self.bytes_received = 0
        self.closed = False

    async def send(self, pcm: bytes) -> None:
        if self.closed:
            return
        if self._heard == 0 and pcm:
            self._events.put_nowait(SpeechStarted())
        self._heard += len(pcm)
        self.bytes_received += len(pcm)

    async def finalize(self) -> None:
        """Emits the next scripted transcript `final_delay` seconds later (the result, not the call, waits)."""
        o = self._owner
        index, self._finals = self._finals, self._finals + 1
        self._heard = 0
        await asyncio.sleep(o.final_delay)
        if self.closed:
            return
        fault = o.fault
        if fault and ((fault.at == "first" and index == 0) or (fault.at == "mid" and index == 1)):
            self._events.put_nowait(fault.error(o.name))
            return
        self._events.put_nowait(Transcript(o.transcript(index), is_final=True, confidence=1.0,
                                           alternatives=tuple(o.alternatives)))

    async def events(self) -> AsyncIterator[STTEvent]:
        while (ev := await self._events.get()) is not None:
            if isinstance(ev, ProviderError):
                raise ev
            yield ev

    async def aclose(self) -> None:
        self.closed = True
        self._events.put_nowait(None)


class ScriptedSTT:
    """Returns `transcripts[i]` (cycled) for the i-th finalize, or `transcripts(i)` when a function; every final
    carries `alternatives` (a recognizer's other readings)."""

    def __init__(self, transcripts: Sequence[str] | Callable[[int], str] = ("hello",), *,
                 final_delay: float = 0.0, fault: Fault | None = None, name: str = "scripted",
                 alternatives: Sequence[str] = ()) -> None:
        self.name = name
        self.transcripts = transcripts
        self.alternatives = alternatives
        self.final_delay = final_delay
        self.fault = fault
        self.streams: list[ScriptedSTTStream] = []

    def transcript(self, index: int) -> str:
        if callable(self.transcripts):
            return self.transcripts(index)
        return self.transcripts[index % len(self.transcripts)] if self.transcripts else ""

    async def open(self, fmt: AudioFormat, language: str) -> ScriptedSTTStream:
        if self.fault and self.fault.at == "open":
            raise self.fault.error(self.name)
        stream = ScriptedSTTStream(self)
        self.streams.append(stream)
        return stream


# ------------------------------------------------------------------------------------------------------ LLM
Reply = str | Sequence[LLMChunk]


class ScriptedLLM:
    """Streams a fixed reply (or `reply(messages)`) word by word: first token after `first_token_delay`,
    then one word every `token_delay`. A reply given as chunks may include ToolCalls."""

    def __init__(self, reply: Reply | Callable[[Sequence[Message]], Reply] = "Okay.", *,
                 first_token_delay: float = 0.0, token_delay: float = 0.0, fault: Fault | None = None,
                 name: str = "scripted") -> None:
        self.name = name
        self.reply = reply
        self.first_token_delay = first_token_delay
        self.token_delay = token_delay
        self.fault = fault
        self.requests: list[list[Message]] = []

    def _chunks(self, messages: Sequence[Message]) -> list[LLMChunk]:
        reply = self.reply(messages) if callable(self.reply) else self.reply
        if isinstance(reply, str):
            words = reply.split(" ")
            return [TextDelta(w if i == len(words) - 1 else w + " ") for i, w in enumerate(words) if w]
        return list(reply)

    async def stream(self, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> AsyncIterator[LLMChunk]:
        self.requests.append(list(messages))
        if self.fault and self.fault.at == "open":
            raise self.fault.error(self.name)
        chunks = self._chunks(messages)
        await asyncio.sleep(self.first_token_delay)
        if self.fault and self.fault.at == "first":
            raise self.fault.error(self.name)
        for i, chunk in enumerate(chunks):
            if i and self.token_delay:
                await asyncio.sleep(self.token_delay)
            if self.fault and self.fault.at == "mid" and i == max(1, len(chunks) // 2):
                raise self.fault.error(self.name)
            yield chunk


# ------------------------------------------------------------------------------------------------------ TTS
class ScriptedTTSSession:
    def __init__(self, owner: ScriptedTTS, fmt: AudioFormat) -> None:
        self._owner = owner
        self.fmt = fmt
        self.clauses: list[str] = []
        rate = fmt.sample_rate
        t = np.arange(rate) / rate  # one second of a quiet 440 Hz tone: real energy, cheap to slice
        self._tone = (2000 * np.sin(2 * math.pi * 440 * t)).astype("<i2").tobytes()

    def audio_bytes(self, text: str) -> int:
        """Length of the speech for `text`: proportional to its characters, whole samples."""
        seconds = max(1, len(text)) * self._owner.seconds_per_char
        return int(seconds * self.fmt.sample_rate) * 2

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        o = self._owner
        self.clauses.append(text)
        if o.fault and o.fault.at == "open":
            raise o.fault.error(o.name)
        loop = asyncio.get_running_loop()
        first_at = loop.time() + o.first_audio_delay
        await asyncio.sleep(o.first_audio_delay)
        if o.fault and o.fault.at == "first":
            raise o.fault.error(o.name)
        total = self.audio_bytes(text)
        frames = min(50, max(1, o.chunk_ms // 20))  # at most the 1 s tone
        chunk = self.fmt.frame_bytes * frames
        sent = 0
        i = 0
        while sent < total:
            if o.fault and o.fault.at == "mid" and sent >= total // 2:
                raise o.fault.error(o.name)
            if o.realtime and i > o.lead_chunks:
                # Chunk i is due `lead_chunks` chunks ahead of the playhead: times from one anchor, so a late
                # wake-up of the loop does not push every later chunk back (it is what the caller would hear).
                due = first_at + (i - o.lead_chunks) * frames * 0.020
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            n = min(chunk, total - sent)
            start = sent % len(self._tone)
            piece = (self._tone[start:] + self._tone)[:n]
            sent += n
            i += 1
            yield piece
            if not o.realtime:
                await asyncio.sleep(0)  # let the pipeline interleave (a barge-in cancels here)

    async def aclose(self) -> None:
        return None


class ScriptedTTS:
    """Tone audio of `seconds_per_char` per character in chunks of `chunk_ms`; first chunk after
    `first_audio_delay`.

    `realtime=False` (tests): the rest of a clause follows at once. `realtime=True` (the benchmark): the stream
    is paced like a cloud TTS that synthesizes while the caller listens: after the first `lead_chunks + 1`
    chunks, chunk i comes (i - lead_chunks) chunk lengths after the first, so the far end never holds more than
    about `lead_chunks + 1` chunks and a late agent is heard as an underrun. Deterministic: same text, same
    bytes, same schedule from the first chunk.
    """

    def __init__(self, *, first_audio_delay: float = 0.0, seconds_per_char: float = 0.06, chunk_ms: int = 200,
                 realtime: bool = False, lead_chunks: int = 1, fault: Fault | None = None,
                 name: str = "scripted") -> None:
        if lead_chunks < 0:
            raise ValueError(f"lead_chunks: {lead_chunks} must be >= 0")
        self.name = name
        self.first_audio_delay = first_audio_delay
        self.seconds_per_char = seconds_per_char
        self.chunk_ms = chunk_ms
        self.realtime = realtime
        self.lead_chunks = lead_chunks
        self.fault = fault
        self.sessions: list[ScriptedTTSSession] = []

    async def open(self, fmt: AudioFormat, language: str) -> ScriptedTTSSession:
        session = ScriptedTTSSession(self, fmt)
        self.sessions.append(session)
        return session
