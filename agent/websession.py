"""Websocket-only sessions: a browser test call from the owner's web page ("Try it"), no FreeSWITCH, no ESL.

The web service mints a stream token for a uuid starting with `web-` with the agents' shared key (the same
`sa1` HMAC scheme FreeSWITCH's calls use, agent/transport/tokens.py) and opens the audio websocket itself. When
such a link arrives and no call waits for it, the agent starts a CallSession whose control is this class: the
module's start command attaches the link that is already open, answer/hangup act on the websocket, and the
call ends when the socket closes. Transfers are refused (no phone network behind a browser). The live
transcript is sent on the same socket as `{"type":"transcript","role":..,"text":..}` text frames, which only
web sessions get (mod_storeagent never sees them).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from storeagent.agent.ports import AudioLink, ChannelEvent
from storeagent.agent.transport.audio_link import WebSocketAudioLink

WEB_UUID_PREFIX = "web-"
POLL_S = 0.1


def is_web_session(uuid: str) -> bool:
    return uuid.startswith(WEB_UUID_PREFIX)


class WebCallControl:
    """CallControl of a browser test call (see the module doc)."""

    def __init__(self, uuid: str, link: WebSocketAudioLink,
                 attach: Callable[[str, AudioLink], Awaitable[bool]]) -> None:
        self._uuid, self._link, self._attach = uuid, link, attach
        self._channel = {"Caller-Caller-ID-Number": "web", "Channel-Read-Codec-Rate": str(link.fmt.sample_rate)}

    @property
    def uuid(self) -> str:
        return self._uuid

    @property
    def channel(self) -> Mapping[str, str]:
        return self._channel

    async def answer(self) -> None:
        return None

    async def execute(self, app: str, arg: str = "", *, wait: bool = True) -> ChannelEvent | None:
        if app == "bridge":
            raise RuntimeError("a browser test call cannot be transferred")
        return None

    async def api(self, command: str) -> str:
        parts = command.split()
        if len(parts) >= 3 and parts[0] == "uuid_storeagent" and parts[2] == "start":
            if not await self._attach(self._uuid, self._link):
                return "-ERR no session waiting"
        return "+OK"

    async def hangup(self, cause: str = "NORMAL_CLEARING") -> None:
        await self._link.close()

    async def events(self) -> AsyncIterator[ChannelEvent]:
        while not self._link.closed:  # noqa: ASYNC110 - the link offers a flag, not an event
            await asyncio.sleep(POLL_S)
        return
        yield  # an async generator that ends when the browser hangs up


async def relay_transcript(link: WebSocketAudioLink, lines: Callable[[], list[Any]]) -> None:
    """Send each transcript line of the running conversation to the browser, again whenever its text grows
    (agent lines start empty and fill as the reply streams); `n` numbers the line (until cancelled)."""
    sent: dict[int, str] = {}
    while not link.closed:
        for n, line in enumerate(list(lines())):
            text = line.heard if line.role == "agent" and line.heard else line.text
            if text and sent.get(n) != text:
                sent[n] = text
                with contextlib.suppress(Exception):
                    await link.send_event({"type": "transcript", "n": n, "role": line.role, "text": text})
        await asyncio.sleep(0.25)
