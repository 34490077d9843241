"""FreeSWITCH Event Socket (ESL) wire format, sans-IO: bytes in, messages out, and command serializers.

Framing follows mod_event_socket (FreeSWITCH 1.10): a message is a header block of `Name: value` lines ended
by a blank line; when the block has `Content-Length`, that many BYTES of body follow. Header values that
FreeSWITCH sends are URL-encoded (the official libesl URL-decodes every one), so the parser decodes them; a
command the agent sends is NOT decoded by FreeSWITCH, so serializers write values raw and refuse line breaks.

Event bodies (`text/event-plain`, `text/event-json`) are turned into `ChannelEvent`s by `parse_event`.
No sockets and no asyncio here: the parser is fed whatever a read returned, split anywhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

from storeagent.agent.errors import ProtocolError
from storeagent.agent.ports import ChannelEvent

WIRE = "esl"
MAX_HEADER_BYTES = 64 * 1024  # the real CHANNEL_DATA block is ~6 KiB; 10x headroom
MAX_CONTENT_LENGTH = 8 * 1024 * 1024  # real events are < 16 KiB; FreeSWITCH's own cap is 16 MiB

CT_COMMAND_REPLY = "command/reply"
CT_API_RESPONSE = "api/response"
CT_EVENT_PLAIN = "text/event-plain"
CT_EVENT_JSON = "text/event-json"
CT_DISCONNECT = "text/disconnect-notice"

_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class EslMessage:
    """One framed message. `command` is the first line when parsing commands (FreeSWITCH's side)."""

    headers: dict[str, str]
    body: bytes = b""
    command: str | None = None
    _lower: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for k, v in self.headers.items():
            self._lower.setdefault(k.lower(), v)

    def get(self, name: str, default: str = "") -> str:
        """Header value by case-insensitive name (ESL header names are case-insensitive)."""
        return self._lower.get(name.lower(), default)

    @property
    def content_type(self) -> str:
        return self.get("Content-Type")

    @property
    def reply_text(self) -> str:
        """Reply-Text without the trailing newline the `connect` reply carries (`+OK\\n`)."""
        return self.get("Reply-Text").strip()

    @property
    def ok(self) -> bool:
        return self.reply_text.startswith("+OK")


class EslParser:
    """Incremental framer. `feed()` returns every message completed by the new bytes, in order.

    With `commands=True` it parses what the agent sends (first line is the command, values are raw), which is
    what the loopback needs to play FreeSWITCH's side. Any violation raises ProtocolError("esl", reason); the
    parser is then unusable and the connection must be closed.
    """

    def __init__(
        self,
        *,
        commands: bool = False,
        max_header_bytes: int = MAX_HEADER_BYTES,
        max_content_length: int = MAX_CONTENT_LENGTH,
    ) -> None:
        self._commands = commands
        self._max_header = max_header_bytes
        self._max_body = max_content_length
        self._buf = bytearray()
        self._scan_from = 0  # where to resume looking for the blank line (avoids rescanning on tiny reads)
        self._pending: tuple[dict[str, str], str | None, int] | None = None  # headers awaiting a body
        self._failed: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[EslMessage]:
        if self._failed is not None:
            raise self._failed
        self._buf += data
        out: list[EslMessage] = []
        try:
            while True:
                msg = self._next()
                if msg is None:
                    return out
                out.append(msg)
        except ProtocolError as exc:
            self._failed = exc
            raise

    def _next(self) -> EslMessage | None:
        if self._pending is None:
            # FreeSWITCH skips stray line breaks between messages; so do we.
            strip = 0
            while strip < len(self._buf) and self._buf[strip] in b"\r\n":
                strip += 1
            if strip:
                del self._buf[:strip]
                self._scan_from = 0
            m = _BLANK_LINE.search(self._buf, max(0, self._scan_from - 3))
            if m is None:
                if len(self._buf) > self._max_header:
                    raise ProtocolError(WIRE, "header_too_large")
                self._scan_from = len(self._buf)
                return None
            if m.start() > self._max_header:
                raise ProtocolError(WIRE, "header_too_large")
            block = bytes(self._buf[: m.start()])
            del self._buf[: m.end()]
            self._scan_from = 0
            headers, command = self._parse_block(block)
            length = self._content_length(headers)
            self._pending = (headers, command, length)
        headers, command, length = self._pending
        if len(self._buf) < length:
            return None
        body = bytes(self._buf[:length])
        del self._buf[:length]
        self._pending = None
        return EslMessage(headers=headers, body=body, command=command)

    def _parse_block(self, block: bytes) -> tuple[dict[str, str], str | None]:
        text = block.decode("utf-8", errors="replace")
        lines = text.split("\n")
        command: str | None = None
        if self._commands:
            command = lines.pop(0).rstrip("\r")
        headers: dict[str, str] = {}
        for raw in lines:
            line = raw.rstrip("\r")
            if not line:
                continue
            name, sep, value = line.partition(":")
            name = name.strip()
            if not sep or not name:
                raise ProtocolError(WIRE, "bad_header_line")
            value = value.lstrip(" \t")
            headers[name] = value if self._commands else unquote(value, errors="replace")
        return headers, command

    def _content_length(self, headers: Mapping[str, str]) -> int:
        values = [v for k, v in headers.items() if k.lower() == "content-length"]
        if not values:
            return 0
        value = values[-1].strip()
        if not _DIGITS.fullmatch(value):
            raise ProtocolError(WIRE, "bad_content_length")
        if len(value) > 12 or int(value) > self._max_body:
            raise ProtocolError(WIRE, "content_too_large")
        return int(value)


# ------------------------------------------------------------------------------------------------ events
def is_event(msg: EslMessage) -> bool:
    return msg.content_type in (CT_EVENT_PLAIN, CT_EVENT_JSON)


def parse_event(msg: EslMessage) -> ChannelEvent:
    """Turn a `text/event-plain|json` message into a ChannelEvent (URL-decoded headers, optional body).

    The name is Event-Name, or Event-Subclass for CUSTOM events (e.g. `storeagent::mark`). Array headers come
    as `ARRAY::a|:b` from both formats, the way plain events carry them.
    """
    if msg.content_type == CT_EVENT_JSON:
        headers, body = _json_event(msg.body)
    elif msg.content_type == CT_EVENT_PLAIN:
        headers, body = _plain_event(msg.body)
    else:
        raise ProtocolError(WIRE, "not_an_event")
    name = headers.get("Event-Name", "")
    if not name:
        raise ProtocolError(WIRE, "event_without_name")
    if name == "CUSTOM" and headers.get("Event-Subclass"):
        name = headers["Event-Subclass"]
    return ChannelEvent(name=name, headers=headers, body=body)


def _json_event(raw: bytes) -> tuple[dict[str, str], str | None]:
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ProtocolError(WIRE, "bad_event_json") from None
    if not isinstance(obj, dict):
        raise ProtocolError(WIRE, "bad_event_json")
    headers: dict[str, str] = {}
    body: str | None = None
    for key, value in obj.items():
        if key == "_body":
            if not isinstance(value, str):
                raise ProtocolError(WIRE, "bad_event_json")
            body = value
        elif isinstance(value, str):
            headers[key] = value
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            headers[key] = "ARRAY::" + "|:".join(value)  # FreeSWITCH's plain form of an array header
        else:
            raise ProtocolError(WIRE, "bad_event_json")
    return headers, body


def _plain_event(raw: bytes) -> tuple[dict[str, str], str | None]:
    # Headers end at the first blank line; a body (e.g. BACKGROUND_JOB) follows with its own Content-Length.
    m = _BLANK_LINE.search(raw)
    block, rest = (raw[: m.start()], raw[m.end() :]) if m else (raw, b"")
    headers: dict[str, str] = {}
    for line in block.decode("utf-8", errors="replace").split("\n"):
        line = line.rstrip("\r")
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise ProtocolError(WIRE, "bad_event_header")
        headers[name.strip()] = unquote(value.lstrip(" "), errors="replace")
    body: str | None = None
    length = headers.get("Content-Length")
    if length is not None:
        if not _DIGITS.fullmatch(length) or int(length) > len(rest):
            raise ProtocolError(WIRE, "bad_event_body")
        body = rest[: int(length)].decode("utf-8", errors="replace")
    return headers, body


# ------------------------------------------------------------------------------------------- serializers
def _check_line(value: str, what: str) -> str:
    if any(c in value for c in "\r\n\0"):
        raise ValueError(f"ESL {what} must be one line without NUL: {value[:40]!r}")
    return value


def command(line: str, headers: Iterable[tuple[str, str]] = (), body: bytes | None = None) -> bytes:
    """Serialize any command: first line, `name: value` headers (raw), optional byte-counted body."""
    parts = [_check_line(line, "command")]
    for name, value in headers:
        if not name or ":" in name or name != name.strip():
            raise ValueError(f"ESL header name is invalid: {name!r}")
        parts.append(f"{_check_line(name, 'header name')}: {_check_line(value, 'header ' + name)}")
    if body:
        parts.append(f"content-length: {len(body)}")
    data = ("\n".join(parts) + "\n\n").encode("utf-8")
    return data + body if body else data


def _word(value: str, what: str) -> str:
    if not value or any(c.isspace() for c in value) or "\0" in value:
        raise ValueError(f"ESL {what} must be one non-empty word: {value!r}")
    return value


def connect() -> bytes:
    return command("connect")


def myevents(fmt: str = "json") -> bytes:
    return command(f"myevents {_word(fmt, 'event format')}")


def event(fmt: str, names: Iterable[str] = (), subclasses: Iterable[str] = ()) -> bytes:
    """`event <fmt> NAME... [CUSTOM sub...]`: every word after CUSTOM is a subclass, so names go first."""
    words = [_word(n, "event name") for n in names]
    if "CUSTOM" in (w.upper() for w in words):
        raise ValueError("pass CUSTOM subclasses through `subclasses`, not as an event name")
    subs = [_word(s, "event subclass") for s in subclasses]
    if subs:
        words += ["CUSTOM", *subs]
    if not words:
        raise ValueError("event needs at least one event name or subclass")
    return command(f"event {_word(fmt, 'event format')} " + " ".join(words))


def linger(seconds: int | None = None) -> bytes:
    return command("linger" if seconds is None else f"linger {int(seconds)}")


def _arg_needs_body(arg: str) -> bool:
    # FreeSWITCH strips leading spaces and trailing CR from header values and splits headers at CR/LF; a body
    # (content-type: text/plain) is taken verbatim when execute-app-arg is absent (switch_ivr_parse_event).
    return not arg.isascii() or not arg.isprintable() or arg != arg.strip()


def sendmsg_execute(
    app: str,
    arg: str = "",
    *,
    event_uuid: str | None = None,
    event_lock: bool = False,
    uuid: str | None = None,
) -> bytes:
    """sendmsg call-command: execute. Multi-line, non-ASCII or space-padded args go in a text/plain body."""
    if "\0" in arg:
        raise ValueError("application argument must not contain NUL")
    headers = [("call-command", "execute"), ("execute-app-name", _word(app, "application name"))]
    body: bytes | None = None
    if arg and _arg_needs_body(arg):
        headers.append(("content-type", "text/plain"))
        body = arg.encode("utf-8")
    elif arg:
        headers.append(("execute-app-arg", arg))
    if event_uuid:
        headers.append(("event-uuid", _word(event_uuid, "event-uuid")))
    if event_lock:
        headers.append(("event-lock", "true"))
    return command(f"sendmsg {_word(uuid, 'uuid')}" if uuid else "sendmsg", headers, body)


def sendmsg_hangup(cause: str = "NORMAL_CLEARING", *, uuid: str | None = None) -> bytes:
    headers = [("call-command", "hangup"), ("hangup-cause", _word(cause, "hangup cause"))]
    return command(f"sendmsg {_word(uuid, 'uuid')}" if uuid else "sendmsg", headers)


def api(cmd: str) -> bytes:
    return command(f"api {_check_line(cmd, 'api command').strip()}")


def bgapi(cmd: str, job_uuid: str | None = None) -> bytes:
    headers = [("Job-UUID", _word(job_uuid, "Job-UUID"))] if job_uuid else []
    return command(f"bgapi {_check_line(cmd, 'api command').strip()}", headers)


def exit_() -> bytes:
    return command("exit")
