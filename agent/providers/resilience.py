"""Resilience for provider stages: per-stage timeouts, retries of retryable errors, a circuit breaker per
provider, and fallback chains (`FallbackSTT`/`FallbackLLM`/`FallbackTTS`) that implement the same ports.

Why here and not in each provider: the provider adapters stay thin translations of a vendor's wire protocol
and only *classify* failures (`ProviderError.retryable`); this layer alone decides retry vs. fallback (DESIGN
principle 3, "the base class owns retries"). A failure degrades one call: the chain moves to the next provider
(offline/scripted last), reports `provider_error(provider, kind)` and `provider_fallback(stage)`, and never
raises into the process unless every provider of the stage failed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from functools import partial
from typing import Generic, Protocol, TypeVar

from storeagent.agent.errors import ProviderError
from storeagent.agent.ports import (
    LLM,
    STT,
    TTS,
    AudioFormat,
    LLMChunk,
    Message,
    STTEvent,
    STTStream,
    ToolSpec,
    Transcript,
    TTSSession,
)
from storeagent.agent.providers.guard import (
    Breakers,
    Chain,
    CircuitBreaker,
    RetryPolicy,
    StageTimeouts,
    aclose_quietly,
    as_provider_error,
    next_within,
    worth_retry,
)

__all__ = [
    "Breakers",
    "Chain",
    "CircuitBreaker",
    "FallbackLLM",
    "FallbackSTT",
    "FallbackTTS",
    "RetryPolicy",
    "StageTimeouts",
    "as_provider_error",
]
log = logging.getLogger(__name__)
MAX_REPLAY_SECONDS = 10.0  # caller audio since the last final kept for a reconnect or switch (a turn is shorter)


# ---------------------------------------------------------------------------------------------- shared
class _Named(Protocol):
    name: str


P = TypeVar("P", bound=_Named)


class _Fallback(Generic[P]):
    """An ordered list of one stage's providers behind the same port; the chain reports and guards them."""

    def __init__(self, providers: Sequence[P], chain: Chain) -> None:
        if not providers:
            raise ValueError(f"{type(self).__name__} needs at least one provider")
        self.providers = list(providers)
        self.chain = chain
        self.name = ">".join(p.name for p in self.providers)

    @property
    def timeouts(self) -> StageTimeouts:
        return self.chain.timeouts


# --------------------------------------------------------------------------------------------------- LLM
class FallbackLLM(_Fallback[LLM]):
    """LLM port over an ordered list; a failure mid-answer hands the same conversation to the next provider."""

    async def stream(self, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> AsyncIterator[LLMChunk]:
        last: ProviderError | None = None
        for i, provider in enumerate(self.providers):
            if i > 0:
                self.chain.fallback()
            if self.chain.skip_open(provider.name):
                continue
            delay = self.chain.retry.backoff
            for attempt in range(1, self.chain.retry.attempts + 1):
                produced = False
                it = aiter(provider.stream(messages, tools))
                try:
                    while True:
                        wait = self.chain.limit(self.chain.timeouts.stall if produced
                                                else self.chain.timeouts.first_result, i == len(self.providers) - 1)
                        try:
                            chunk = await next_within(it, wait)
                        except StopAsyncIteration:
                            self.chain.breakers[provider.name].success()
                            return
                        produced = True
                        yield chunk
                except asyncio.CancelledError:
                    raise
                except GeneratorExit:
                    raise
                except Exception as exc:
                    last = self.chain.failed(provider.name, exc)
                finally:
                    closer = getattr(it, "aclose", None)
                    if closer is not None:
                        await aclose_quietly(closer)
                if produced or not worth_retry(last) or attempt == self.chain.retry.attempts:
                    break
                wait = self.chain.retry.delay(last, delay)  # Retry-After within the turn's budget, or fall back
                if wait is None or not self.chain.breakers[provider.name].allow():
                    break
                await asyncio.sleep(wait)
                delay *= 2
        raise last or ProviderError(self.name, "circuit_open", "every provider's breaker is open", retryable=True)


# --------------------------------------------------------------------------------------------------- TTS
class FallbackTTS(_Fallback[TTS]):
    """TTS port over an ordered list; the session sticks to the provider that last worked."""

    async def open(self, fmt: AudioFormat, language: str) -> FallbackTTSSession:
        session = FallbackTTSSession(self, fmt, language)
        await session.ensure_open()
        return session


class FallbackTTSSession:
    def __init__(self, owner: FallbackTTS, fmt: AudioFormat, language: str) -> None:
        self._owner, self._fmt, self._language = owner, fmt, language
        self._index = 0
        self._session: TTSSession | None = None
        self._returned = False  # went back to the first provider after a fallback (once a call: end_answer)

    @property
    def active(self) -> str:
        return self._owner.providers[min(self._index, len(self._owner.providers) - 1)].name

    async def ensure_open(self) -> TTSSession:
        """The current provider's session, moving down the list past providers that cannot open."""
        chain, providers = self._owner.chain, self._owner.providers
        last: ProviderError | None = None
        while self._session is None:
            if self._index >= len(providers):
                raise last or ProviderError(self._owner.name, "circuit_open", "no TTS provider left", retryable=True)
            provider = providers[self._index]
            if not chain.skip_open(provider.name):
                try:
                    session = await chain.call(provider.name, partial(provider.open, self._fmt, self._language),
                                               chain.limit(chain.timeouts.connect, self._index == len(providers) - 1))
                except ProviderError as err:
                    last = err
                else:
                    self._session = session
                    return session
            self._index += 1
            if self._index < len(providers):
                chain.fallback()
        return self._session

    async def _drop_current(self) -> None:
        if self._session is not None:
            await aclose_quietly(self._session.aclose)
            self._session = None
        self._index += 1
        if self._index < len(self._owner.providers):
            self._owner.chain.fallback()

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        chain = self._owner.chain
        while True:
            session = await self.ensure_open()
            name = self.active
            produced = False
            it = aiter(session.synthesize(text))
            try:
                while True:
                    wait = chain.limit(chain.timeouts.stall if produced else chain.timeouts.first_result,
                                       self._index >= len(self._owner.providers) - 1)
                    try:
                        pcm = await next_within(it, wait)
                    except StopAsyncIteration:
                        chain.breakers[name].success()
                        return
                    produced = True
                    yield pcm
            except (asyncio.CancelledError, GeneratorExit):
                raise
            except Exception as exc:
                chain.failed(name, exc)
            finally:
                closer = getattr(it, "aclose", None)
                if closer is not None:
                    await aclose_quietly(closer)
            # The clause is said again in full by the next voice: repeating a few words beats dropping them.
            await self._drop_current()

    async def end_answer(self) -> None:
        """The reply is complete: a provider with a per-answer stream ends it (ElevenLabs). A call that fell back
        goes back to the first provider for its next answer, once: within one answer the voice stays the same, but
        one timeout in a CPU burst (all of a box's first answers at once) must not leave the call on the
        in-process voice for good, adding its synthesis to the same cores. Once only, because a provider whose
        `open` succeeds but whose audio never comes would cost every answer a first-audio timeout (a good `open`
        resets its breaker's count); a provider that cannot open is skipped by its breaker."""
        end = getattr(self._session, "end_answer", None)
        if end is not None:
            await aclose_quietly(end)
        if self._index > 0 and not self._returned:
            self._returned = True
            if self._session is not None:
                await aclose_quietly(self._session.aclose)
                self._session = None
            self._index = 0

    async def aclose(self) -> None:
        if self._session is not None:
            await aclose_quietly(self._session.aclose)
            self._session = None


# --------------------------------------------------------------------------------------------------- STT
class FallbackSTT(_Fallback[STT]):
    """STT port over an ordered list. When a provider's stream breaks (a close, a dropped connection), the same
    provider is reconnected once per turn; on a second failure, or no final transcript `first_result` s after
    `finalize`, the stream moves to the next provider. Either way the caller audio since the last final
    transcript is replayed from a short ring buffer, so the turn in progress is still understood."""

    async def open(self, fmt: AudioFormat, language: str) -> FallbackSTTStream:
        stream = FallbackSTTStream(self, fmt, language)
        await stream.start()
        return stream


_Item = STTEvent | BaseException | None  # None: the provider's event stream ended


class FallbackSTTStream:
    def __init__(self, owner: FallbackSTT, fmt: AudioFormat, language: str) -> None:
        self._owner, self._fmt, self._language = owner, fmt, language
        self._queue: asyncio.Queue[tuple[int, _Item]] = asyncio.Queue()
        self._gen = 0  # bumps on every switch; items of an older stream are dropped
        self._index = 0
        self._stream: STTStream | None = None
        self._pump: asyncio.Task[None] | None = None
        self._replay = bytearray()
        self._max_replay = int(MAX_REPLAY_SECONDS * fmt.sample_rate * 2)
        self._awaiting_final = False  # finalize() was called and its final transcript has not come yet
        self._deadline: float | None = None  # monotonic time that final transcript is due by
        self._lock = asyncio.Lock()
        self._closed = False
        self._reconnected = False  # the current provider was reconnected since the last final
        self.reconnects = 0

    @property
    def active(self) -> str:
        return self._owner.providers[min(self._index, len(self._owner.providers) - 1)].name

    @property
    def continuous(self) -> bool:
        """The active provider wants caller audio between turns too (its endpointing hears the gaps)."""
        return bool(getattr(self._stream, "continuous", False))

    @property
    def decides_turns(self) -> bool:
        return bool(getattr(self._stream, "decides_turns", False))

    async def start(self) -> None:
        async with self._lock:
            await self._open_from_index()

    def _on_last(self) -> bool:
        return self._index >= len(self._owner.providers) - 1

    def _due(self) -> float | None:
        """When a final transcript is due after finalize (never, on the last provider: nothing to switch to)."""
        return None if self._on_last() else time.monotonic() + self._owner.chain.timeouts.first_result

    def _stall(self) -> float | None:
        return self._owner.chain.limit(self._owner.chain.timeouts.stall, self._on_last())

    async def _open_from_index(self) -> STTStream:
        chain, providers = self._owner.chain, self._owner.providers
        last: ProviderError | None = None
        while self._index < len(providers):
            provider = providers[self._index]
            if not chain.skip_open(provider.name):
                try:
                    stream: STTStream = await chain.call(
                        provider.name, partial(provider.open, self._fmt, self._language),
                        chain.limit(chain.timeouts.connect, self._index == len(providers) - 1))
                except ProviderError as err:
                    last = err
                else:
                    self._gen += 1
                    self._stream = stream
                    self._pump = asyncio.create_task(self._run_pump(stream, self._gen), name=f"stt-{provider.name}")
                    return stream
            self._index += 1
            if self._index < len(providers):
                chain.fallback()
        raise last or ProviderError(self._owner.name, "circuit_open", "no STT provider left", retryable=True)

    async def _run_pump(self, stream: STTStream, gen: int) -> None:
        try:
            async for event in stream.events():
                self._queue.put_nowait((gen, event))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # handed to the consumer, which switches providers
            self._queue.put_nowait((gen, exc))
        else:
            self._queue.put_nowait((gen, None))

    async def _teardown(self) -> None:
        pump, stream = self._pump, self._stream
        self._pump, self._stream = None, None
        if pump is not None:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
        if stream is not None:
            await aclose_quietly(stream.aclose)

    async def _switch(self, failed_gen: int, exc: BaseException) -> None:
        """Leave the failed provider for the next one, replaying the unfinished turn; raises if none is left."""
        chain = self._owner.chain
        async with self._lock:
            if failed_gen != self._gen or self._closed:
                return  # another task already switched away from that stream
            while True:
                err = chain.failed(self.active, exc)
                await self._teardown()
                # A dropped stream is most often the connection, not the provider: one reconnect per turn first.
                # (_open_from_index moves on down the chain by itself when the reconnect is refused.)
                if err.retryable and err.kind != "timeout" and not self._reconnected:
                    self._reconnected = True
                    self.reconnects += 1
                else:
                    self._index += 1
                    if self._index >= len(self._owner.providers):
                        raise as_provider_error(self.active, exc)
                    chain.fallback()
                stream = await self._open_from_index()
                try:
                    frame = self._fmt.frame_bytes
                    for i in range(0, len(self._replay), frame):
                        await stream.send(bytes(self._replay[i:i + frame]))
                    if self._awaiting_final:
                        await stream.finalize()
                        self._deadline = self._due()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception as again:
                    exc = again

    async def send(self, pcm: bytes) -> None:
        if self._closed:
            return
        # Under the lock: a switch replays the buffer, and audio sent meanwhile must not overtake it.
        async with self._lock:
            self._replay += pcm
            if len(self._replay) > self._max_replay:
                del self._replay[: len(self._replay) - self._max_replay]
            gen, stream = self._gen, self._stream
            if stream is None:
                return
            try:
                async with asyncio.timeout(self._stall()):  # a stuck socket must not hold the lock
                    await stream.send(pcm)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failure: BaseException = exc
        await self._switch(gen, failure)

    async def finalize(self) -> None:
        async with self._lock:
            self._awaiting_final = True
            self._deadline = self._due()
            gen, stream = self._gen, self._stream
            if stream is None:
                return
            try:
                async with asyncio.timeout(self._stall()):
                    await stream.finalize()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failure: BaseException = exc
        await self._switch(gen, failure)

    async def events(self) -> AsyncIterator[STTEvent]:
        while True:
            wait = None if self._deadline is None else max(0.0, self._deadline - time.monotonic())
            try:
                async with asyncio.timeout(wait):
                    gen, item = await self._queue.get()
            except TimeoutError:
                late = ProviderError(self.active, "timeout", "no final transcript after the turn ended", retryable=True)
                await self._switch(self._gen, late)
                continue
            if self._closed:
                return
            if gen != self._gen:
                continue
            if item is None:
                item = ProviderError(self.active, "closed", "the provider ended the stream", retryable=True)
            if isinstance(item, BaseException):
                await self._switch(gen, item)
                continue
            if isinstance(item, Transcript) and item.is_final:
                self._replay.clear()
                self._reconnected = False
                self._awaiting_final = False
                self._deadline = None
                self._owner.chain.breakers[self.active].success()
            yield item

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put_nowait((self._gen, None))
        async with self._lock:
            await self._teardown()
