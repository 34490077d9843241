"""An in-memory AudioLink with a real 20 ms playout clock, for pipeline tests without sockets.

It behaves like the far end of the audio websocket (mod_storeagent / the loopback): queued speech plays one
frame per 20 ms, marks are reported `played` when playout passes them and `cleared` on clear; `pause` holds
playout (nothing played, nothing reported) until `resume` or `clear`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator

from storeagent.agent.ports import AudioFormat, AudioFrame, MarkReport, UplinkItem


class MemoryLink:
    def __init__(self, rate: int = 8000) -> None:
        self._fmt = AudioFormat(rate)
        self._up: asyncio.Queue[UplinkItem | None] = asyncio.Queue()
        self._play: deque[bytes | str] = deque()  # audio chunks and mark names, in order
        self._pending = bytearray()
        self.played = bytearray()
        self.clears: list[float] = []
        self.pauses: list[float] = []
        self.resumes: list[float] = []
        self.paused = False
        self._sent: list[bytes] = []
        self.first_audio_at: float | None = None
        self.sent_bytes = 0
        self.closed = False
        self._clock = asyncio.create_task(self._playout())

    @property
    def fmt(self) -> AudioFormat:
        return self._fmt

    async def uplink(self) -> AsyncIterator[UplinkItem]:
        while (item := await self._up.get()) is not None:
            yield item

    async def send_audio(self, pcm: bytes) -> None:
        if self.first_audio_at is None:
            self.first_audio_at = time.monotonic()
        self.sent_bytes += len(pcm)
        self._sent.append(pcm)
        self._play.append(pcm)

    async def send_mark(self, name: str) -> None:
        self._play.append(name)

    async def send_pause(self) -> None:
        self.pauses.append(time.monotonic())
        self.paused = True

    async def send_resume(self) -> None:
        self.resumes.append(time.monotonic())
        self.paused = False

    async def send_clear(self) -> None:
        self.clears.append(time.monotonic())
        self.paused = False
        self._pending.clear()
        while self._play:
            item = self._play.popleft()
            if isinstance(item, str):
                self._up.put_nowait(MarkReport(item, "cleared"))

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._clock.cancel()
            self._up.put_nowait(None)

    # --- the caller's side
    def caller_frame(self, pcm: bytes) -> None:
        self._up.put_nowait(AudioFrame(pcm, time.monotonic()))

    async def caller_speaks(self, pcm: bytes) -> None:
        """Send caller audio in real time, 20 ms a frame."""
        n = self._fmt.frame_bytes
        for i in range(0, len(pcm) - n + 1, n):
            self.caller_frame(pcm[i : i + n])
            await asyncio.sleep(0.02)

    def sent_audio(self) -> bytes:
        """Every byte of speech the agent sent, in order."""
        return b"".join(self._sent)

    @property
    def speaking(self) -> bool:
        return bool(self._play) or bool(self._pending)

    async def _playout(self) -> None:
        n = self._fmt.frame_bytes
        while True:
            await asyncio.sleep(0.02)
            if self.paused:
                continue
            while len(self._pending) < n and self._play:
                item = self._play.popleft()
                if isinstance(item, str):
                    if self._pending:  # the mark sits after audio not yet played: keep it for the next tick
                        self._play.appendleft(item)
                        break
                    self._up.put_nowait(MarkReport(item, "played"))
                else:
                    self._pending += item
            if self._pending:
                frame = bytes(self._pending[:n])
                del self._pending[:n]
                self.played += frame
