"""The uplink hands audio to the recognizer without waiting for it (agent/pipeline/sttfeed.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from storeagent.agent.pipeline.sttfeed import SttFeed
from storeagent.agent.ports import STTEvent


class SlowStt:
    """A recognizer whose every `send` takes `delay` seconds (an in-process decode on a busy box)."""

    def __init__(self, delay: float = 0.0, fail_on: bytes | None = None) -> None:
        self.delay, self.fail_on = delay, fail_on
        self.log: list[bytes | str] = []

    async def send(self, pcm: bytes) -> None:
        await asyncio.sleep(self.delay)
        if pcm == self.fail_on:
            raise RuntimeError("socket gone")
        self.log.append(pcm)

    async def finalize(self) -> None:
        self.log.append("finalize")

    def events(self) -> AsyncIterator[STTEvent]:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


async def _running(feed: SttFeed) -> asyncio.Task[None]:
    task = asyncio.create_task(feed.run())
    await asyncio.sleep(0)
    return task


async def test_send_returns_at_once_while_the_provider_is_slow() -> None:
    stt = SlowStt(delay=0.2)
    feed = SttFeed(stt, max_backlog_bytes=10_000)
    task = await _running(feed)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for i in range(10):
        feed.send(bytes([i]) * 320)
    assert loop.time() - t0 < 0.05  # ten chunks queued while the provider is still on the first
    await feed.finalize()
    assert stt.log == [bytes([i]) * 320 for i in range(10)] + ["finalize"]
    task.cancel()


async def test_finalize_comes_after_the_audio_queued_before_it() -> None:
    stt = SlowStt(delay=0.01)
    feed = SttFeed(stt, max_backlog_bytes=10_000)
    task = await _running(feed)
    feed.send(b"a" * 10)
    final = asyncio.create_task(feed.finalize())
    await asyncio.sleep(0)  # the turn's task asks for the final
    feed.send(b"b" * 10)  # the next turn's audio
    await final
    assert stt.log[:2] == [b"a" * 10, "finalize"]
    await asyncio.sleep(0.05)
    assert stt.log == [b"a" * 10, "finalize", b"b" * 10]
    task.cancel()


async def test_a_stalled_provider_loses_the_oldest_audio_and_counts_it() -> None:
    stt = SlowStt(delay=10)
    feed = SttFeed(stt, max_backlog_bytes=100)
    task = await _running(feed)
    feed.send(b"x" * 40)  # taken by the stuck send
    await asyncio.sleep(0)
    for c in b"abcd":
        feed.send(bytes([c]) * 40)
    assert feed.dropped_bytes == 80  # a and b: the backlog keeps the newest 80 bytes (c, d) within 100
    task.cancel()


async def test_a_failing_send_loses_one_chunk_not_the_feed() -> None:
    stt = SlowStt(fail_on=b"bad")
    feed = SttFeed(stt, max_backlog_bytes=10_000)
    task = await _running(feed)
    feed.send(b"ok1")
    feed.send(b"bad")
    feed.send(b"ok2")
    await feed.finalize()
    assert stt.log == [b"ok1", b"ok2", "finalize"]
    task.cancel()


async def test_finalize_raises_what_the_provider_raised() -> None:
    class Broken(SlowStt):
        async def finalize(self) -> None:
            raise RuntimeError("no final")

    feed = SttFeed(Broken(), max_backlog_bytes=10_000)
    task = await _running(feed)
    with pytest.raises(RuntimeError, match="no final"):
        await feed.finalize()
    task.cancel()
