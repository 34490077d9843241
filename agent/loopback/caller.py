"""A whole loopback call: FreeSWITCH's two wires, as one object a demo or a test drives like a caller.

The ESL side hands the call to the agent (`socket ... async full`); when the agent runs
`api uuid_storeagent <uuid> start <url> <rate> <token>`, the audio side connects like mod_storeagent does. The
caller then speaks (`say`), listens (`wait_agent_done`), presses keys and hangs up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from typing import Any

from storeagent.agent.loopback.audio_client import AudioClient
from storeagent.agent.loopback.esl_client import LoopbackEslClient, StaffPhone
from storeagent.agent.loopback.playout import DEFAULT_PREBUFFER_MS

log = logging.getLogger(__name__)


class LoopbackCall:
    def __init__(self, host: str, esl_port: int, *, caller_number: str = "+15555550123",
                 destination_number: str = "1000", store: str = "shop", rate: int = 8000,
                 prebuffer_ms: int = DEFAULT_PREBUFFER_MS, stats_interval: float | None = 1.0,
                 staff: StaffPhone | None = None) -> None:
        self.esl = LoopbackEslClient(host, esl_port, caller_number=caller_number,
                                     destination_number=destination_number, store=store, read_rate=rate,
                                     on_api=self._on_api, staff=staff)
        self.audio: AudioClient | None = None
        self._prebuffer_ms = prebuffer_ms
        self._stats_interval = stats_interval
        self.audio_connected = asyncio.Event()
        self.audio_stopped = asyncio.Event()
        self.connect_error: BaseException | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def uuid(self) -> str:
        return self.esl.uuid

    async def start(self, timeout: float = 10.0) -> None:
        """Place the call and wait until the agent has answered and the audio websocket is up."""
        await self.esl.start()
        await asyncio.wait_for(self.audio_connected.wait(), timeout)
        if self.connect_error is not None:
            raise self.connect_error

    # ------------------------------------------------------------------ the module's API
    def _on_api(self, line: str) -> str | None:
        words = line.split()
        if not words or words[0] != "uuid_storeagent":
            return None
        if len(words) < 3 or words[1] != self.uuid:
            return "-ERR no such channel\n"
        verb = words[2]
        if verb == "clear" and self.audio is not None:  # sa_call_clear: drop queued speech, report marks cleared
            self.audio.clear_playout()
            return "+OK\n"
        if verb in ("pause", "resume") and len(words) == 3 and self.audio is not None:  # sa_call_pause / _resume
            now = asyncio.get_running_loop().time()
            if verb == "pause":
                self.audio.pause(now)
            else:
                self.audio.resume(now)
            return "+OK\n"
        if verb == "start" and len(words) == 6 and words[4] in ("8000", "16000"):
            url, rate, token = words[3], int(words[4]), words[5]
            self._spawn(self._connect(url, rate, token))  # the module connects asynchronously, like a thread
            return "+OK\n"
        if verb == "stop":
            self._spawn(self._stop_audio())
            return "+OK\n"
        return ("-ERR usage: uuid_storeagent <uuid> start <ws-url> <8000|16000> <token> | stop | clear | pause"
                " | resume\n")

    async def _connect(self, url: str, rate: int, token: str) -> None:
        client = AudioClient(url, uuid=self.uuid, token=token, sample_rate=rate, prebuffer_ms=self._prebuffer_ms,
                             stats_interval=self._stats_interval)
        try:
            await client.connect()
        except BaseException as e:  # surfaced by start()
            self.connect_error = e
        else:
            self.audio = client
            self.audio_stopped.clear()
        self.audio_connected.set()

    async def _stop_audio(self) -> None:
        if self.audio is not None:
            await self.audio.close()
        self.audio_stopped.set()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ the caller
    def _client(self) -> AudioClient:
        if self.audio is None:
            raise RuntimeError("audio is not connected")
        return self.audio

    async def say(self, pcm: bytes) -> float:
        """Speak `pcm` (L16 at the call's rate) in real time; returns the time its first frame went up."""
        a = self._client()
        first_index = len(a.record.caller) + len(a._caller)  # frames already sent + queued
        a.feed(pcm)
        await a.wait_uplink_idle()
        times = a.record.uplink_times
        return times[first_index] if first_index < len(times) else time.monotonic()

    def say_nowait(self, pcm: bytes) -> int:
        """Queue speech without waiting; returns the uplink frame index where it starts."""
        a = self._client()
        index = len(a.record.caller) + len(a._caller)
        a.feed(pcm)
        return index

    async def wait_agent_done(self, quiet: float = 1.0, timeout: float = 30.0) -> bool:
        """Until the agent has said something and then been silent for `quiet` seconds. False on timeout."""
        a = self._client()
        deadline = time.monotonic() + timeout
        heard = False
        quiet_since: float | None = None
        while time.monotonic() < deadline:  # polls the playout record at frame rate
            playing = a.playout.playing or a.playout.buffered_bytes > 0
            heard = heard or playing
            if playing:
                quiet_since = None
            elif heard:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= quiet:
                    return True
            await asyncio.sleep(0.02)
        return False

    async def wait_agent_speaking(self, timeout: float = 30.0) -> bool:
        a = self._client()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if a.playout.playing:
                return True
            await asyncio.sleep(0.01)
        return False

    async def press(self, digit: str) -> None:
        await self.esl.send_dtmf(digit)

    async def hangup(self) -> None:
        await self.esl.caller_hangup()

    async def wait_ended(self, timeout: float = 15.0) -> None:
        """Until the agent has let go of the call (ESL socket closed)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.esl.wait_closed(), timeout)

    async def close(self) -> None:
        if self.audio is not None:
            with contextlib.suppress(Exception):
                await self.audio.close()
        await self.esl.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
