"""Raw ESL peers for tests: a scripted FreeSWITCH that replays a capture, and a raw agent for the loopback."""

from __future__ import annotations

import asyncio
import contextlib

from storeagent.agent.transport.esl_protocol import EslMessage, EslParser
from support.captures import AGENT_TO_FS, FS_TO_AGENT, Record


def replay_turns(records: list[Record]) -> list[tuple[bytes, list[bytes]]]:
    """Group a capture into (agent command, FreeSWITCH bytes that followed it until the next command)."""
    turns: list[tuple[bytes, list[bytes]]] = []
    for r in records:
        if r.direction == AGENT_TO_FS:
            turns.append((r.data, []))
        elif r.direction == FS_TO_AGENT and turns:
            turns[-1][1].append(r.data)
    return turns


class CaptureReplayFs:
    """Dials the agent like FreeSWITCH and answers its i-th command with what FreeSWITCH sent after the i-th
    recorded command. The recorded event-uuid of each sendmsg is swapped for the agent's own (same length, so
    every Content-Length stays right), so Application-UUID correlation works as on the real switch."""

    def __init__(self, records: list[Record]) -> None:
        self.turns = replay_turns(records)
        self.received: list[EslMessage] = []
        self.eof = asyncio.Event()
        self._swap: dict[bytes, bytes] = {}

    async def run(self, host: str, port: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        parser = EslParser(commands=True)
        recorded = EslParser(commands=True)
        try:
            while data := await reader.read(65536):
                for msg in parser.feed(data):
                    i = len(self.received)
                    self.received.append(msg)
                    if i >= len(self.turns):
                        continue
                    cmd, answers = self.turns[i]
                    want = recorded.feed(cmd)[0].get("event-uuid")
                    got = msg.get("event-uuid")
                    if want and got and len(want) == len(got):
                        self._swap[want.encode()] = got.encode()
                    for chunk in answers:
                        for old, new in self._swap.items():
                            chunk = chunk.replace(old, new)
                        writer.write(chunk)
                    await writer.drain()
        finally:
            self.eof.set()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class RawAgent:
    """The agent's side at the byte level: accepts one connection (from the loopback) and exchanges raw ESL."""

    def __init__(self) -> None:
        self._conn: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] | None = None
        self._server: asyncio.Server | None = None
        self._parser = EslParser()
        self._ready: list[EslMessage] = []
        self.others: list[EslMessage] = []  # events and notices that arrived while waiting for a reply
        self.raw = bytearray()  # every byte received, in order

    async def start(self) -> int:
        self._conn = asyncio.get_running_loop().create_future()

        async def accept(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            assert self._conn is not None
            self._conn.set_result((r, w))

        self._server = await asyncio.start_server(accept, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def send(self, data: bytes) -> None:
        assert self._conn is not None
        _, w = await self._conn
        w.write(data)
        await w.drain()

    async def recv(self) -> EslMessage:
        """The next message (events kept aside by `request` come first)."""
        if self.others:
            return self.others.pop(0)
        assert self._conn is not None
        r, _ = await self._conn
        while not self._ready:
            data = await asyncio.wait_for(r.read(65536), 10)
            if not data:
                raise EOFError("the peer closed the connection")
            self.raw += data
            self._ready.extend(self._parser.feed(data))
        return self._ready.pop(0)

    async def at_eof(self) -> bool:
        assert self._conn is not None
        r, _ = await self._conn
        return await asyncio.wait_for(r.read(1), 10) == b""

    async def request(self, data: bytes) -> EslMessage:
        """Send a command and return its reply; events that arrive first are kept in `others`, in order."""
        await self.send(data)
        pending = list(self.others)
        self.others.clear()
        while True:
            msg = await self.recv()
            if msg.content_type in ("command/reply", "api/response"):
                self.others = pending + self.others
                return msg
            pending.append(msg)

    async def close(self) -> None:
        if self._conn is not None and self._conn.done():
            _, w = self._conn.result()
            w.close()
        if self._server is not None:
            self._server.close()
