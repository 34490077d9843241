"""FreeSWITCH's side of outbound ESL, for the demo and tests: one call dials the agent's ESL port.

Behaviour follows mod_event_socket / switch_ivr_parse_event (FreeSWITCH 1.10) and the real recordings in
`tests/data/freeswitch-1.10.12`, not what our server expects:
- `connect` -> command/reply whose headers are the channel data (URL-encoded), Content-Type/Reply-Text/Socket-Mode/
  Control last; `myevents [fmt]`, `event <fmt> NAMES [CUSTOM subclasses]`, `linger` -> `+OK ...`;
- `sendmsg` -> `+OK` at once; the channel then runs the application: CHANNEL_EXECUTE, (CHANNEL_ANSWER),
  CHANNEL_EXECUTE_COMPLETE with Application / Application-Data / Application-UUID (= event-uuid). The argument is
  `execute-app-arg`, or the body when that header is absent and `content-type: text/plain`;
- `sendmsg` hangup, `api uuid_kill` or `caller_hangup()` -> CHANNEL_HANGUP, the running application's completion,
  CHANNEL_UNPARK, the socket application's completion, CHANNEL_STATE x2, CHANNEL_HANGUP_COMPLETE, then with linger
  a `text/disconnect-notice` (linger) and the socket stays open until the agent closes it;
- `api <cmd>` -> api/response (the `on_api` hook first, e.g. for `uuid_storeagent`); `exit` -> `+OK bye` and a
  disconnect-notice with FreeSWITCH's goodbye body, then close;
- `bridge sofia/gateway/<gw>/<number>` dials a `StaffPhone` (mod_dptools audio_bridge_function,
  switch_ivr_originate.c, switch_ivr_bridge.c): an unknown gateway fails at once with INVALID_GATEWAY; a phone
  that rejects fails with its cause; one that never answers fails with NO_ANSWER after `call_timeout` (default
  60 s). A failure sets `originate_disposition` and `DIALSTATUS` (orig.c's mapping) and `originate_failed_cause`,
  then hangs the caller up with that cause unless `continue_on_fail` allows it (switch_channel_handle_cause).
  An answered bridge fires CHANNEL_BRIDGE (`originate_disposition` and DIALSTATUS SUCCESS, Other-Leg-* headers:
  as recorded on a real 1.10.12), and when the staff hang up CHANNEL_UNBRIDGE, then with `hangup_after_bridge`
  the caller's CHANNEL_HANGUP with the staff leg's cause, then the bridge's completion.
Events reach the agent only once it subscribed (myevents: the channel's own events; CUSTOM only by subclass).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import uuid as uuidlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from storeagent.agent.errors import ProtocolError
from storeagent.agent.loopback import esl_events as fs
from storeagent.agent.transport.esl_protocol import EslMessage, EslParser

log = logging.getLogger(__name__)

ApiHook = Callable[[str], "Awaitable[str | None] | str | None"]  # return None to fall through to built-ins
_EXEC = ("switch_core_session.c", "switch_core_session_exec", 2944)
_EXEC_DONE = ("switch_core_session.c", "switch_core_session_exec", 2988)
_STATE = ("switch_channel.c", "switch_channel_perform_set_running_state", 2408)


@dataclass(frozen=True, slots=True)
class StaffPhone:
    """What the far end of a `bridge` does. Default: rings and never answers."""

    answer_after_s: float | None = None  # None: never answers (NO_ANSWER at call_timeout)
    reject: str | None = None  # a hangup cause at once instead of ringing, e.g. USER_BUSY, CALL_REJECTED
    talk_s: float = 1.0  # after answering, the staff hang up after this long (NORMAL_CLEARING)


# DIALSTATUS for a failed originate (switch_ivr_originate.c); any other cause is its own name.
_DIALSTATUS = {"ORIGINATOR_CANCEL": "CANCEL", "USER_BUSY": "BUSY", "NO_ANSWER": "NOANSWER",
               "DESTINATION_OUT_OF_ORDER": "INVALIDARGS", "INVALID_PROFILE": "INVALIDARGS",
               "CALL_REJECTED": "DONTCALL"}


class LoopbackEslClient:
    """Plays one FreeSWITCH channel handed to the agent by `socket <host>:<port> async full`."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        uuid: str | None = None,
        caller_number: str = "+15555550123",
        destination_number: str = "1000",
        store: str = "bakery",
        read_rate: int = 8000,
        on_api: ApiHook | None = None,
        playback_seconds: float = 0.0,
        gateways: tuple[str, ...] = ("carrier",),
        staff: StaffPhone | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.channel = fs.Channel(
            uuid=uuid or str(uuidlib.uuid4()),
            caller_number=caller_number,
            destination_number=destination_number,
            store=store,
            read_rate=read_rate,
            socket_host=f"{host}:{port}",
        )
        self.on_api = on_api
        self.playback_seconds = playback_seconds  # how long `playback` runs unless broken or hung up
        self.gateways = gateways  # sofia gateways the conf defines (freeswitch/conf: `carrier`)
        self.staff = staff or StaffPhone()
        self.dialed: list[str] = []  # numbers `bridge` dialed through a known gateway
        self.received: list[EslMessage] = []  # every command the agent sent, in order (for tests)
        self.sent_events: list[str] = []  # Event-Name (or subclass) of every event written
        self.closed = asyncio.Event()  # the TCP connection is gone
        self.disconnect_sent = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._apps: asyncio.Queue[EslMessage] = asyncio.Queue()
        self._app_idle = asyncio.Event()
        self._app_idle.set()
        self._break = asyncio.Event()
        self._gone = asyncio.Event()  # the caller's channel hung up (a bridge ends on this, not on a DTMF)
        self._fmt = "plain"
        self._events_on = False
        self._custom: set[str] = set()
        self._names: set[str] = set()
        self._linger: int | None = None
        self._connected = False
        self._hung_up = False
        self._socket_app_uuid = str(uuidlib.uuid4())

    # ----------------------------------------------------------------------------------------- lifecycle
    @property
    def uuid(self) -> str:
        return self.channel.uuid

    @property
    def answered(self) -> bool:
        return self.channel.answered_us != 0

    @property
    def hung_up(self) -> bool:
        return self._hung_up

    async def start(self) -> None:
        reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self._spawn(self._read_loop(reader))
        self._spawn(self._app_loop())

    async def wait_closed(self) -> None:
        await self.closed.wait()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.closed.set()

    def send_raw(self, data: bytes) -> None:
        """Write arbitrary bytes to the agent (tests: malformed input)."""
        self._write(data)

    def commands(self, prefix: str = "") -> list[EslMessage]:
        return [m for m in self.received if (m.command or "").startswith(prefix)]

    # ----------------------------------------------------------------------------------- caller's side
    async def send_dtmf(self, digit: str, duration_ms: int = 2000) -> None:
        extra = [("DTMF-Digit", digit), ("DTMF-Duration", str(duration_ms * 8)), ("DTMF-Source", "RTP")]
        calling = ("switch_channel.c", "switch_channel_dequeue_dtmf", 677)
        self._emit("DTMF", self.channel.event("DTMF", calling, with_vars=False, extra=extra))
        self._break.set()  # like the capture: a digit ends a running playback

    async def caller_hangup(self, cause: str = "NORMAL_CLEARING") -> None:
        self.channel.variables.update(sip_hangup_disposition="recv_bye", sip_term_status="200")
        await self._hangup(cause)

    async def emit_custom(
        self, subclass: str, headers: Mapping[str, str] | None = None, body: str | None = None
    ) -> None:
        """Fire a CUSTOM event about this channel (e.g. `storeagent::mark` from mod_storeagent)."""
        extra = [("Event-Subclass", subclass), *(headers or {}).items()]
        calling = ("mod_storeagent.c", "storeagent_fire_event", 1)
        head = self.channel.event("CUSTOM", calling, with_vars=False, extra=extra)
        self._emit("CUSTOM", head, body, subclass=subclass)

    # ---------------------------------------------------------------------------------------- internals
    def _spawn(self, coro: Awaitable[Any]) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _write(self, data: bytes) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(data)

    def _emit(self, name: str, headers: fs.Headers, body: str | None = None, *, subclass: str = "") -> None:
        # mod_event_socket's filter: events enabled, the name subscribed (CUSTOM: by subclass), and with
        # myevents only events whose Unique-ID is this channel (all of ours are).
        if not self._events_on or self._writer is None:
            return
        if name == "CUSTOM":
            wanted = subclass in self._custom or "ALL" in self._names
        else:
            wanted = "ALL" in self._names or name in self._names
            wanted = wanted or ("myevents" in self._names and name in _MYEVENTS)
        if not wanted:
            return
        self._write(fs.frame_event(self._fmt, headers, body))
        self.sent_events.append(subclass or name)

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        parser = EslParser(commands=True)
        try:
            while data := await reader.read(65536):
                for msg in parser.feed(data):
                    self.received.append(msg)
                    await self._handle(msg)
        except ProtocolError as exc:
            log.warning("loopback esl %s: bad command bytes from the agent: %s", self.uuid, exc.reason)
        except ConnectionError:
            pass
        finally:
            if self._writer is not None:
                self._writer.close()
            self.closed.set()
            self._break.set()

    async def _handle(self, msg: EslMessage) -> None:
        line = (msg.command or "").strip()
        word, _, rest = line.partition(" ")
        word = word.lower()
        if word == "connect":
            self._connected = True
            reply = [("Content-Type", "command/reply"), ("Reply-Text", "+OK\n")]
            reply += [("Socket-Mode", "async"), ("Control", "full")]
            self._write(fs.serialize_plain(self.channel.channel_data() + reply))
        elif word == "myevents":
            self._myevents(rest)
        elif word == "event":
            self._event(rest.split())
        elif word == "linger":
            self._linger = int(rest) if rest.strip().lstrip("-").isdigit() else -1
            suffix = f" {self._linger} seconds" if rest.strip() else ""
            self._write(fs.command_reply(f"+OK will linger{suffix}"))
        elif word == "nolinger":
            self._linger = None
            self._write(fs.command_reply("+OK will not linger"))
        elif word == "sendmsg":
            self._sendmsg(msg)
        elif word == "api":
            self._write(fs.api_response(await self._api(rest)))
        elif word == "bgapi":
            job = msg.get("Job-UUID") or str(uuidlib.uuid4())
            self._write(fs.command_reply(f"+OK Job-UUID: {job}", [("Job-UUID", job)]))
            self._spawn(self._bgapi(rest, job))
        elif word == "exit":
            self._write(fs.command_reply("+OK bye"))
            self._write(fs.disconnect_goodbye(self.uuid))
            self.disconnect_sent.set()
            if self._writer is not None:
                self._writer.close()
        else:
            self._write(fs.command_reply("-ERR command not found"))

    def _myevents(self, rest: str) -> None:
        if self._events_on and "myevents" in self._names:
            self._write(fs.command_reply("-ERR aready enabled."))  # sic, FreeSWITCH's spelling
            return
        first_time = not self._events_on
        self._names.add("myevents")
        self._events_on = True
        for fmt in ("json", "xml", "plain"):
            if fmt in rest.lower():
                self._fmt = fmt if fmt != "xml" else "plain"  # xml is not modelled
                break
        self._write(fs.command_reply("+OK Events Enabled"))
        if first_time:  # the socket application parks the channel once connected (first event seen)
            self._emit("CHANNEL_PARK", self.channel.event("CHANNEL_PARK", ("switch_ivr.c", "switch_ivr_park", 1002)))

    def _event(self, words: list[str]) -> None:
        if words and words[0].lower() in ("plain", "json", "xml"):
            self._fmt = "plain" if words[0].lower() == "xml" else words[0].lower()
            words = words[1:]
        custom, keys = False, 0
        for w in words:
            if custom:
                self._custom.add(w)  # every word after CUSTOM is a subclass
            else:
                self._names.add(w.upper())
                keys += 1
                custom = w.upper() == "CUSTOM"
        if not keys:
            self._write(fs.command_reply("-ERR no keywords supplied"))
            return
        self._events_on = True
        self._write(fs.command_reply(f"+OK event listener enabled {self._fmt}"))

    def _sendmsg(self, msg: EslMessage) -> None:
        target = (msg.command or "")[7:].strip()
        if target and target != self.uuid:
            self._write(fs.command_reply(f"-ERR invalid session id [{target}]"))
            return
        self._write(fs.command_reply("+OK"))
        cmd = msg.get("call-command").lower()
        if cmd == "hangup":
            self._spawn(self._hangup(msg.get("hangup-cause") or "NORMAL_CLEARING"))
        elif cmd == "execute" and not self._hung_up:
            self._app_idle.clear()
            self._apps.put_nowait(msg)

    async def _app_loop(self) -> None:
        while True:
            msg = await self._apps.get()
            try:
                if not self._hung_up:
                    await self._run_app(msg)
            finally:
                if self._apps.empty():
                    self._app_idle.set()

    async def _run_app(self, msg: EslMessage) -> None:
        app = msg.get("execute-app-name")
        arg = execute_arg(msg)
        ids = [("Application", app)]
        if arg:
            ids.append(("Application-Data", arg))
        if msg.get("event-uuid"):
            ids.append(("Application-UUID", msg.get("event-uuid")))
        self.channel.variables.update(current_application=app)
        self.channel.variables.pop("current_application_data", None)
        if arg:
            self.channel.variables["current_application_data"] = arg
        self._emit("CHANNEL_EXECUTE", self.channel.event("CHANNEL_EXECUTE", _EXEC, extra=ids))
        self._break.clear()
        response = "_none_"
        if app == "answer":
            self._answer()
        elif app == "set" and "=" in arg:
            name, _, value = arg.partition("=")
            self.channel.variables[name] = value
        elif app in ("playback", "sleep"):
            seconds = self.playback_seconds if app == "playback" else _ms(arg) / 1000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._break.wait(), seconds)
            response = "FILE PLAYED" if app == "playback" else response
        elif app == "hangup":
            self._spawn(self._hangup(arg or "NORMAL_CLEARING"))
        elif app == "bridge":
            await self._bridge(arg)
        if response != "_none_":  # "_none_" means the application set no response variable
            self.channel.variables["current_application_response"] = response
        done = [*ids[:2], ("Application-Response", response), *ids[2:]]
        self._emit("CHANNEL_EXECUTE_COMPLETE", self.channel.event("CHANNEL_EXECUTE_COMPLETE", _EXEC_DONE, extra=done))

    async def _bridge(self, dial: str) -> None:
        v = self.channel.variables
        for name in ("originate_disposition", "DIALSTATUS", "originate_failed_cause", "originate_causes",
                     "originated_legs"):
            v.pop(name, None)
        kind, _, rest = dial.partition("/gateway/")
        gateway, _, number = rest.partition("/")
        if kind != "sofia" or not number:
            await self._bridge_failed("DESTINATION_OUT_OF_ORDER")  # not a dial string this stand-in knows
            return
        if gateway not in self.gateways:
            await self._bridge_failed("INVALID_GATEWAY")  # mod_sofia: "Invalid Gateway"
            return
        self.dialed.append(number)
        b_uuid = str(uuidlib.uuid4())
        v["originated_legs"] = f"{b_uuid};Outbound Call;{number}"
        staff = self.staff
        if staff.reject:
            await self._bridge_failed(staff.reject, b_uuid)
            return
        timeout = _seconds(v.get("call_timeout", ""), 60.0)
        ring = timeout if staff.answer_after_s is None else min(timeout, staff.answer_after_s)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._gone.wait(), ring)
        if self._hung_up:  # the caller hung up while it rang
            await self._bridge_failed("ORIGINATOR_CANCEL", b_uuid)
            return
        if staff.answer_after_s is None or staff.answer_after_s > timeout:
            await self._bridge_failed("NO_ANSWER", b_uuid)
            return
        self._answer()  # the caller's channel answers when the peer does, if it had not yet
        v.update(originate_disposition="SUCCESS", DIALSTATUS="SUCCESS", originate_causes=f"{b_uuid};NONE",
                 bridge_to=b_uuid)
        legs = [("Bridge-A-Unique-ID", self.uuid), ("Bridge-B-Unique-ID", b_uuid), ("Other-Type", "originatee"),
                ("Other-Leg-Direction", "outbound"), ("Other-Leg-Callee-ID-Number", number),
                ("Other-Leg-Destination-Number", number), ("Other-Leg-Unique-ID", b_uuid),
                ("Other-Leg-Source", "mod_sofia"), ("Other-Leg-Channel-Name", f"sofia/trunk/{number}")]
        calling = ("switch_ivr_bridge.c", "switch_ivr_multi_threaded_bridge", 1689)
        self._emit("CHANNEL_BRIDGE", self.channel.event("CHANNEL_BRIDGE", calling, extra=legs))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._gone.wait(), staff.talk_s)
        staff_hung_up = not self._hung_up
        v.pop("bridge_to", None)
        v.update(last_bridge_to=b_uuid, last_bridge_hangup_cause="NORMAL_CLEARING")
        calling = ("switch_ivr_bridge.c", "switch_ivr_multi_threaded_bridge", 1879)
        self._emit("CHANNEL_UNBRIDGE", self.channel.event("CHANNEL_UNBRIDGE", calling, extra=legs))
        if staff_hung_up and v.get("hangup_after_bridge", "").lower() in ("true", "yes", "on", "1"):
            await self._start_hangup("NORMAL_CLEARING")

    async def _bridge_failed(self, cause: str, b_uuid: str = "") -> None:
        v = self.channel.variables
        v.update(originate_disposition=cause, DIALSTATUS=_DIALSTATUS.get(cause, cause), originate_failed_cause=cause)
        if b_uuid:  # a staff leg existed (it rang or rejected): as recorded, its cause is also the bridge's
            v.update(originate_causes=f"{b_uuid};{cause}", last_bridge_hangup_cause=cause)
        # switch_channel_handle_cause: only continue_on_fail (true, or a list naming the cause) keeps the caller.
        allowed = [c.strip().upper() for c in v.get("continue_on_fail", "").split(",")]
        if not ({"TRUE", "YES", "ON", "1", cause} & set(allowed)):
            await self._start_hangup(cause)

    async def _start_hangup(self, cause: str) -> None:
        """Hang up from inside the running application: CHANNEL_HANGUP goes out before its completion."""
        self._spawn(self._hangup(cause))
        await asyncio.sleep(0)  # the hangup task runs up to its wait for this application to finish

    def _answer(self) -> None:
        if self.answered:
            return
        self.channel.answered_us = self.channel.created_us + 1
        self.channel.call_state, self.channel.answer_state = "ACTIVE", "answered"
        calling = ("switch_channel.c", "switch_channel_perform_mark_answered", 3846)
        self._emit("CHANNEL_ANSWER", self.channel.event("CHANNEL_ANSWER", calling))

    async def _hangup(self, cause: str) -> None:
        if self._hung_up:
            return
        self._hung_up = True
        ch = self.channel
        ch.hangup_cause, ch.answer_state, ch.state_number = cause, "hangup", 10
        ch.hangup_us = ch.created_us + 2
        self._emit(
            "CHANNEL_HANGUP", ch.event("CHANNEL_HANGUP", ("switch_channel.c", "switch_channel_perform_hangup", 3445))
        )
        self._break.set()
        self._gone.set()
        await self._app_idle.wait()  # the running application completes after CHANNEL_HANGUP (as captured)
        self._emit("CHANNEL_UNPARK", ch.event("CHANNEL_UNPARK", ("switch_ivr.c", "switch_ivr_park", 1230)))
        sock = [
            ("Application", "socket"),
            ("Application-Data", f"{ch.socket_host} async full"),
            ("Application-Response", "FILE PLAYED"),
            ("Application-UUID", self._socket_app_uuid),
        ]
        self._emit("CHANNEL_EXECUTE_COMPLETE", ch.event("CHANNEL_EXECUTE_COMPLETE", _EXEC_DONE, extra=sock))
        ch.state = "CS_HANGUP"
        self._emit("CHANNEL_STATE", ch.event("CHANNEL_STATE", _STATE, with_vars=False))
        ch.state, ch.call_state, ch.state_number = "CS_REPORTING", "HANGUP", 11
        self._emit("CHANNEL_STATE", ch.event("CHANNEL_STATE", _STATE, with_vars=False))
        calling = ("switch_core_state_machine.c", "switch_core_session_reporting_state", 946)
        self._emit("CHANNEL_HANGUP_COMPLETE", ch.event("CHANNEL_HANGUP_COMPLETE", calling))
        if self._linger is not None:
            self._write(fs.disconnect_linger(self.uuid, ch.name, self._linger))
            self.disconnect_sent.set()
        else:
            self._write(fs.disconnect_goodbye(self.uuid))
            self.disconnect_sent.set()
            if self._writer is not None:
                self._writer.close()

    async def _api(self, line: str) -> str:
        if self.on_api is not None:
            result = self.on_api(line)
            if inspect.isawaitable(result):
                result = await result
            if result is not None:
                return result
        name, *args = line.split()
        if name in ("uuid_getvar", "uuid_break", "uuid_kill", "uuid_setvar") and (not args or args[0] != self.uuid):
            return "-ERR No such channel!\n"
        if name == "uuid_getvar" and len(args) >= 2:
            return self.channel.variables.get(args[1], "_undef_")
        if name == "uuid_setvar" and len(args) >= 2:
            self.channel.variables[args[1]] = " ".join(args[2:])
            return "+OK\n"
        if name == "uuid_break":
            self._break.set()
            return "+OK\n"
        if name == "uuid_kill":
            self._spawn(self._hangup(args[1] if len(args) > 1 else "NORMAL_CLEARING"))
            return "+OK\n"
        return f"-ERR {name} Command not found!\n"

    async def _bgapi(self, line: str, job: str) -> None:
        result = await self._api(line)
        head = [("Event-Name", "BACKGROUND_JOB"), ("Job-UUID", job), ("Job-Command", line.split(" ", 1)[0])]
        head += [("Job-Command-Arg", line.partition(" ")[2]), ("Job-Owner-UUID", self.uuid)]
        if self._events_on and "BACKGROUND_JOB" in self._names:
            self._write(fs.frame_event(self._fmt, head, result))
            self.sent_events.append("BACKGROUND_JOB")


def execute_arg(msg: EslMessage) -> str:
    """The application argument as switch_ivr_parse_event reads it: the header, else a text/plain body."""
    arg = msg.get("execute-app-arg")
    if not arg and msg.get("content-type").lower() == "text/plain":
        arg = msg.body.decode("utf-8", errors="replace")
    return arg


def _seconds(text: str, default: float) -> float:
    try:
        value = float(text)
    except ValueError:
        return default
    return value if value > 0 else default


def _ms(arg: str) -> float:
    try:
        return max(0.0, float(arg))
    except ValueError:
        return 0.0


# Event types `myevents` enables (mod_event_socket.c), besides what `event` adds by name.
_MYEVENTS = frozenset(
    {
        "CHANNEL_ANSWER",
        "CHANNEL_APPLICATION",
        "CHANNEL_BRIDGE",
        "CHANNEL_CREATE",
        "CHANNEL_DATA",
        "CHANNEL_DESTROY",
        "CHANNEL_EXECUTE",
        "CHANNEL_EXECUTE_COMPLETE",
        "CHANNEL_HANGUP",
        "CHANNEL_HANGUP_COMPLETE",
        "CHANNEL_ORIGINATE",
        "CHANNEL_UUID",
        "CHANNEL_OUTGOING",
        "CHANNEL_PARK",
        "CHANNEL_PROGRESS",
        "CHANNEL_PROGRESS_MEDIA",
        "CHANNEL_STATE",
        "CHANNEL_UNBRIDGE",
        "CHANNEL_UNPARK",
        "DETECTED_SPEECH",
        "DTMF",
        "NOTALK",
        "TALK",
    }
)
