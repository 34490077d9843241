"""Caller audio to the recognizer in order, off the uplink: the uplink (VAD, pause on onset, barge-in) never
waits for a provider.

An in-process recognizer decodes inside `send` (pocketsphinx in a worker thread: tens to hundreds of ms on a busy
box), a remote one waits for its socket. Awaited from the uplink, that time held back the next frames, so the
caller's first words under agent speech were seen late: barge-in stops of 0.7–1.5 s with no pause sent at all.
Here the uplink only enqueues; one task per call feeds the provider, and `finalize` waits for the audio queued
before it, so a final transcript still covers the whole turn.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Final

from storeagent.agent.ports import STTStream

log = logging.getLogger(__name__)
_FINALIZE: Final = b""  # a marker in the queue: an empty chunk is never queued as audio


class SttFeed:
    def __init__(self, stt: STTStream, max_backlog_bytes: int) -> None:
        self._stt = stt
        self._max = max_backlog_bytes
        self._queue: deque[tuple[bytes, asyncio.Future[None] | None]] = deque()
        self._backlog = 0
        self._ready = asyncio.Event()
        self.dropped_bytes = 0  # audio lost because the provider fell this far behind (also logged)

    def send(self, pcm: bytes) -> None:
        """Queue audio; never blocks. A provider this far behind loses the oldest audio, not the uplink's time."""
        if not pcm:
            return
        self._queue.append((pcm, None))
        self._backlog += len(pcm)
        while self._backlog > self._max:
            if not self._drop_oldest_audio():
                break
        self._ready.set()

    async def finalize(self) -> None:
        """Returns once the provider was asked to finalize, after every chunk queued before this call."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((_FINALIZE, done))
        self._ready.set()
        await done

    def _drop_oldest_audio(self) -> bool:
        for i, (pcm, marker) in enumerate(self._queue):
            if marker is None:
                del self._queue[i]
                self._backlog -= len(pcm)
                if not self.dropped_bytes:
                    log.warning("speech recognizer %d bytes behind the caller: dropping the oldest audio", self._max)
                self.dropped_bytes += len(pcm)
                return True
        return False

    async def run(self) -> None:
        """The call's one feeder task. A failing `send` loses that chunk only; the provider's own resilience
        (timeouts, fallback) decides the rest and reports through its events."""
        while True:
            if not self._queue:
                self._ready.clear()
                await self._ready.wait()
                continue
            pcm, done = self._queue.popleft()
            if done is None:
                self._backlog -= len(pcm)
                try:
                    await self._stt.send(pcm)
                except asyncio.CancelledError:
                    raise
                except Exception:  # one lost chunk must not end the call's hearing
                    log.exception("speech recognizer send failed")
                continue
            try:
                await self._stt.finalize()
            except asyncio.CancelledError:
                done.cancel()
                raise
            except Exception as e:  # the turn's own await sees it, as before
                if not done.done():
                    done.set_exception(e)
            else:
                if not done.done():  # the turn that asked may have been cancelled meanwhile
                    done.set_result(None)
