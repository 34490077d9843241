"""Outbound-ESL server: FreeSWITCH's `socket agent:8084 async full` connects here, one TCP connection a call.

Each connection becomes an `EslCall` (the `CallControl` port): it sends `connect` (the reply is the channel
data), `myevents json`, `event json CUSTOM storeagent::...` and `linger`, then hands the call to the handler.

The reader task never waits for the consumer: events go to an unbounded queue whose depth is counted, because
FreeSWITCH kills a listener that falls 500 events behind. Command replies arrive in order, interleaved with
events, so every command appends a future to a FIFO in the same synchronous step that writes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid as uuidlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence

from storeagent.agent.errors import ProtocolError, StoreAgentError
from storeagent.agent.ports import ChannelEvent
from storeagent.agent.transport import esl_protocol as wire

log = logging.getLogger(__name__)

ProtocolErrorCallback = Callable[[str, str], None]  # (wire, reason) -> AgentMetrics.protocol_error
# Not storeagent::mark: the agent reads marks on the audio websocket. Each ESL copy carries the whole channel
# (~7 KB of JSON) and a reply sends one every 300 ms: on a real 1.10.12 they were 51 of 72 events and most of the
# 456 KB of one 38 s call's ESL traffic.
DEFAULT_SUBCLASSES = (
    "storeagent::connect",
    "storeagent::disconnect",
    "storeagent::error",
)
READ_CHUNK = 65536
BACKLOG_WARN = 500  # queued events at which a lagging consumer is logged (once); the reader never waits
CLOSE_TIMEOUT = 2.0  # seconds to flush and close a call's socket before aborting it


class EslError(StoreAgentError):
    """Base of ESL call-control failures."""


class EslCommandError(EslError):
    """FreeSWITCH refused a command (`-ERR ...`)."""

    def __init__(self, command: str, reply: str) -> None:
        super().__init__(f"ESL {command!r} refused: {reply}")
        self.command = command
        self.reply = reply


class EslConnectionClosed(EslError):
    """The ESL connection ended (or the channel went away) before the awaited reply or completion."""


_END = object()  # end-of-events marker in the queue


class EslCall:
    """One FreeSWITCH channel over one outbound-ESL connection; implements `ports.CallControl`."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        on_protocol_error: ProtocolErrorCallback | None = None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._on_protocol_error = on_protocol_error
        self._parser = wire.EslParser()
        self._replies: deque[tuple[str, asyncio.Future[wire.EslMessage]]] = deque()
        self._executions: dict[str, asyncio.Future[ChannelEvent]] = {}
        self._events: asyncio.Queue[object] = asyncio.Queue()  # unbounded on purpose: the reader never blocks
        self._events_ended = False
        self._channel: dict[str, str] = {}
        self._uuid = ""
        self._closed = False
        self._reader_task: asyncio.Task[None] | None = None
        self.events_received = 0
        self.max_event_backlog = 0  # deepest the queue got: how far the consumer lagged
        self.disconnect_notice: wire.EslMessage | None = None
        self.protocol_error: ProtocolError | None = None

    # ---------------------------------------------------------------------------------------- CallControl
    @property
    def uuid(self) -> str:
        return self._uuid

    @property
    def channel(self) -> Mapping[str, str]:
        return self._channel

    async def answer(self) -> None:
        await self.execute("answer")

    async def execute(self, app: str, arg: str = "", *, wait: bool = True) -> ChannelEvent | None:
        """sendmsg execute; with wait, until (and returning) the CHANNEL_EXECUTE_COMPLETE whose Application-UUID
        matches.

        Raises EslCommandError on `-ERR`, EslConnectionClosed when the channel or socket goes away first.
        """
        event_uuid = str(uuidlib.uuid4())
        done: asyncio.Future[ChannelEvent] | None = None
        if wait:
            if self.disconnect_notice is not None:
                raise EslConnectionClosed(f"execute {app}: channel hung up")
            done = asyncio.get_running_loop().create_future()
            self._executions[event_uuid] = done
        try:
            await self._command(wire.sendmsg_execute(app, arg, event_uuid=event_uuid), f"execute {app}")
            return await done if done is not None else None
        finally:
            self._executions.pop(event_uuid, None)

    async def api(self, command: str) -> str:
        """The api/response body; a body starting with `-ERR` raises EslCommandError."""
        what = f"api {command.split(' ', 1)[0]}"  # the command name only: arguments may carry tokens
        reply = await self._command(wire.api(command), what)
        text = reply.body.decode("utf-8", errors="replace")
        if text.startswith("-ERR"):
            raise EslCommandError(what, text.strip())
        return text

    async def hangup(self, cause: str = "NORMAL_CLEARING") -> None:
        """Hang the channel up; a no-op once the connection is closed (the call is gone either way)."""
        if self._closed:
            return
        try:
            await self._command(wire.sendmsg_hangup(cause), "hangup")
        except EslConnectionClosed:
            return

    async def bgapi(self, command: str, job_uuid: str | None = None) -> str:
        """Start a background API job; returns its Job-UUID (the result comes as a BACKGROUND_JOB event)."""
        job = job_uuid or str(uuidlib.uuid4())
        reply = await self._command(wire.bgapi(command, job), f"bgapi {command.split(' ', 1)[0]}")
        return reply.get("Job-UUID", job)

    async def exit(self) -> None:
        """Ask FreeSWITCH to close the socket (`+OK bye`, then a disconnect-notice)."""
        await self._command(wire.exit_(), "exit")

    async def events(self) -> AsyncIterator[ChannelEvent]:
        while True:
            item = await self._events.get()
            if item is _END:
                self._events.put_nowait(_END)  # a second iterator also ends
                return
            assert isinstance(item, ChannelEvent)
            yield item

    # ------------------------------------------------------------------------------------------ lifecycle
    @property
    def event_backlog(self) -> int:
        return self._events.qsize()

    @property
    def closed(self) -> bool:
        return self._closed

    async def setup(self, subclasses: Sequence[str] = DEFAULT_SUBCLASSES, names: Sequence[str] = ()) -> None:
        """Start reading, then `connect` / `myevents json` / `event json ...` / `linger`."""
        self._reader_task = asyncio.create_task(self._read_loop(), name="esl-reader")
        reply = await self._command(wire.connect(), "connect")
        self._channel = {k: v for k, v in reply.headers.items() if k not in _REPLY_ONLY}
        self._uuid = self._channel.get("Unique-ID") or self._channel.get("Channel-Unique-ID", "")
        if not self._uuid:
            raise EslError("connect reply carries no Unique-ID")
        await self._command(wire.myevents("json"), "myevents")
        if subclasses or names:
            await self._command(wire.event("json", names, subclasses), "event")
        await self._command(wire.linger(), "linger")

    async def close(self) -> None:
        """Close the socket (FreeSWITCH keeps it open after hangup because of linger) and stop the reader."""
        if not self._closed:
            self._closed = True
            self._writer.close()
        self._fail_pending("connection closed")
        self._end_events()
        if self._reader_task is not None and self._reader_task is not asyncio.current_task():
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader_task
        try:
            # A peer that stopped reading would keep unsent bytes (and the socket) alive: bound it, then abort.
            await asyncio.wait_for(self._writer.wait_closed(), CLOSE_TIMEOUT)
        except (TimeoutError, OSError):
            self._writer.transport.abort()

    # ----------------------------------------------------------------------------------------- internals
    async def _command(self, data: bytes, what: str) -> wire.EslMessage:
        if self._closed or self._writer.is_closing():
            raise EslConnectionClosed(f"{what}: connection closed")
        fut: asyncio.Future[wire.EslMessage] = asyncio.get_running_loop().create_future()
        # Appending and writing in one synchronous step keeps the FIFO in the order FreeSWITCH replies.
        self._replies.append((what, fut))
        self._writer.write(data)
        try:
            await self._writer.drain()
        except ConnectionError as exc:
            raise EslConnectionClosed(f"{what}: {exc}") from exc
        reply = await fut
        if reply.content_type == wire.CT_COMMAND_REPLY and not reply.ok:
            raise EslCommandError(what, reply.reply_text)
        return reply

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self._reader.read(READ_CHUNK)
                if not data:
                    break
                for msg in self._parser.feed(data):
                    self._dispatch(msg)
        except ProtocolError as exc:
            self.protocol_error = exc
            log.warning(
                "esl call %s: malformed input from FreeSWITCH (%s); closing this connection",
                self._uuid or "?",
                exc.reason,
            )
            if self._on_protocol_error is not None:
                self._on_protocol_error(exc.wire, exc.reason)
            self._closed = True
            self._writer.close()
        except (ConnectionError, OSError) as exc:
            log.info("esl call %s: connection lost: %s", self._uuid or "?", exc)
        finally:
            self._fail_pending("connection closed")
            self._end_events()

    def _dispatch(self, msg: wire.EslMessage) -> None:
        ct = msg.content_type
        if ct in (wire.CT_COMMAND_REPLY, wire.CT_API_RESPONSE):
            if not self._replies:
                raise ProtocolError(wire.WIRE, "unexpected_reply")
            _, fut = self._replies.popleft()
            if not fut.done():
                fut.set_result(msg)
        elif wire.is_event(msg):
            ev = wire.parse_event(msg)
            self.events_received += 1
            if ev.name == "CHANNEL_EXECUTE_COMPLETE":
                done = self._executions.pop(ev.headers.get("Application-UUID", ""), None)
                if done is not None and not done.done():
                    done.set_result(ev)
            self._events.put_nowait(ev)
            backlog = self._events.qsize()
            if backlog > self.max_event_backlog:
                if self.max_event_backlog < BACKLOG_WARN <= backlog:
                    log.warning("esl call %s: %d events wait for the call's consumer", self._uuid, backlog)
                self.max_event_backlog = backlog
        elif ct == wire.CT_DISCONNECT:
            # The channel is gone (linger) or the socket is about to close: nothing more will complete.
            self.disconnect_notice = msg
            log.debug("esl call %s: disconnect-notice (%s)", self._uuid, msg.get("Content-Disposition"))
            self._fail_executions("channel hung up")
            self._end_events()
        else:
            log.debug("esl call %s: ignoring %s message", self._uuid, ct or "untyped")

    def _fail_executions(self, why: str) -> None:
        for fut in self._executions.values():
            if not fut.done():
                fut.set_exception(EslConnectionClosed(why))
        self._executions.clear()

    def _fail_pending(self, why: str) -> None:
        while self._replies:
            what, fut = self._replies.popleft()
            if not fut.done():
                fut.set_exception(EslConnectionClosed(f"{what}: {why}"))
        self._fail_executions(why)

    def _end_events(self) -> None:
        if not self._events_ended:
            self._events_ended = True
            self._events.put_nowait(_END)


_REPLY_ONLY = frozenset({"Content-Type", "Reply-Text", "Socket-Mode", "Control"})

CallHandler = Callable[[EslCall], Awaitable[None]]


class EslServer:
    """Accepts FreeSWITCH's outbound-ESL connections and runs `handler(call)` for each, isolated per call."""

    def __init__(
        self,
        host: str,
        port: int,
        handler: CallHandler,
        *,
        on_protocol_error: ProtocolErrorCallback | None = None,
        setup_timeout: float = 10.0,
        subclasses: Sequence[str] = DEFAULT_SUBCLASSES,
    ) -> None:
        self._host = host
        self._port = port
        self._handler = handler
        self._on_protocol_error = on_protocol_error
        self._setup_timeout = setup_timeout
        self._subclasses = tuple(subclasses)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def active_connections(self) -> int:
        return len(self._tasks)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self._host, self._port)
        log.info("esl server listening on %s:%d", self._host, self.port)

    async def stop(self) -> None:
        """Stop accepting new calls; live calls go on (drain). FreeSWITCH then takes the dialplan fallback."""
        if self._server is not None:
            self._server.close()

    async def wait_idle(self) -> None:
        """Wait until every live call has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """Stop accepting and cut every live call (hard shutdown, tests)."""
        await self.stop()
        for task in list(self._tasks):
            task.cancel()
        await self.wait_idle()
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)  # even when cancelled inside the finally below
        call = EslCall(reader, writer, on_protocol_error=self._on_protocol_error)
        try:
            try:
                await asyncio.wait_for(call.setup(self._subclasses), self._setup_timeout)
            except (EslError, TimeoutError) as exc:
                log.warning("esl call %s: setup failed: %s", call.uuid or "?", str(exc) or "timed out")
                return
            try:
                await self._handler(call)
            except EslError as exc:
                log.info("esl call %s: handler ended: %s", call.uuid, exc)
            except Exception:
                log.exception("esl call %s: handler failed", call.uuid)
        finally:
            await call.close()
