"""What FreeSWITCH 1.10 writes on an outbound-ESL socket, as pure builders (no I/O).

Written from mod_event_socket.c / switch_event.c behaviour and checked against the recordings in
`tests/data/freeswitch-1.10.12`: plain serialization URL-encodes every value with FreeSWITCH's unsafe set
(leaving an existing `%XX` alone), ends with a blank line or `Content-Length: n` + body; JSON is cJSON's
unformatted output with array headers as lists and the body under `_body`; events are framed as
`Content-Length` + `Content-Type: text/event-<fmt>`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

Headers = list[tuple[str, str]]

_URL_UNSAFE = set(b'\r\n #%&+:;<=>?@[\\]^`{|}"')
_UPPER_HEX = set(b"0123456789ABCDEF")
GOODBYE = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"


def fs_url_encode(value: str) -> str:
    """switch_url_encode (no double encoding): bytes outside ' '..'~' and unsafe ones become %XX."""
    raw = value.encode("utf-8")
    out: list[str] = []
    i = 0
    while i < len(raw):
        b = raw[i]
        keep_pct = b == 0x25 and i + 2 < len(raw) and raw[i + 1] in _UPPER_HEX and raw[i + 2] in _UPPER_HEX
        if not keep_pct and (b < 0x20 or b > 0x7E or b in _URL_UNSAFE):
            out.append(f"%{b:02X}")
        else:
            out.append(chr(b))
        i += 1
    return "".join(out)


def serialize_plain(headers: Iterable[tuple[str, str]], body: str | None = None) -> bytes:
    lines = [f"{name}: {fs_url_encode(value) or '_undef_'}\n" for name, value in headers]
    text = "".join(lines)
    if body:
        text += f"Content-Length: {len(body.encode('utf-8'))}\n\n{body}"
    else:
        text += "\n"
    return text.encode("utf-8")


def serialize_json(headers: Iterable[tuple[str, str]], body: str | None = None) -> bytes:
    obj: dict[str, str | list[str]] = {}
    for name, value in headers:
        obj[name] = value[7:].split("|:") if value.startswith("ARRAY::") else value
    if body is not None:
        obj["Content-Length"] = str(len(body.encode("utf-8")))
        obj["_body"] = body
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def frame_event(fmt: str, headers: Iterable[tuple[str, str]], body: str | None = None) -> bytes:
    payload = serialize_json(headers, body) if fmt == "json" else serialize_plain(headers, body)
    return f"Content-Length: {len(payload)}\nContent-Type: text/event-{fmt}\n\n".encode() + payload


def command_reply(text: str, extra: Sequence[tuple[str, str]] = ()) -> bytes:
    more = "".join(f"{k}: {v}\n" for k, v in extra)
    return f"Content-Type: command/reply\nReply-Text: {text}\n{more}\n".encode()


def api_response(body: str) -> bytes:
    data = body.encode("utf-8")
    return f"Content-Type: api/response\nContent-Length: {len(data)}\n\n".encode() + data


def disconnect_linger(uuid: str, channel_name: str, linger_time: int = -1) -> bytes:
    return (
        "Content-Type: text/disconnect-notice\n"
        f"Controlled-Session-UUID: {uuid}\n"
        "Content-Disposition: linger\n"
        f"Channel-Name: {channel_name}\n"
        f"Linger-Time: {linger_time}\n"
        "Content-Length: 0\n\n"
    ).encode()


def disconnect_goodbye(uuid: str) -> bytes:
    body = GOODBYE.encode()
    head = (
        "Content-Type: text/disconnect-notice\n"
        f"Controlled-Session-UUID: {uuid}\n"
        "Content-Disposition: disconnect\n"
        f"Content-Length: {len(body)}\n\n"
    )
    return head.encode() + body


# --------------------------------------------------------------------------------------- channel model
@dataclass
class Channel:
    """One inbound SIP channel as FreeSWITCH describes it in CHANNEL_DATA and channel events."""

    uuid: str
    caller_number: str = "+15555550123"
    destination_number: str = "1000"
    store: str = "bakery"
    read_rate: int = 8000
    socket_host: str = "127.0.0.1:8084"
    core_uuid: str = "2293a30f-9541-4c8e-9bb5-d4f2bb554b7d"
    hostname: str = "loopback"
    state: str = "CS_EXECUTE"
    state_number: int = 4
    call_state: str = "RINGING"
    answer_state: str = "ringing"
    hangup_cause: str | None = None
    created_us: int = field(default_factory=lambda: int(time.time() * 1_000_000))
    answered_us: int = 0
    hangup_us: int = 0
    variables: dict[str, str] = field(default_factory=dict)
    _sequence: int = 400

    def __post_init__(self) -> None:
        codec = "PCMU" if self.read_rate == 8000 else "L16"
        num = self.caller_number
        self.variables = {
            "direction": "inbound",
            "uuid": self.uuid,
            "session_id": "1",
            "sip_from_user": num,
            "sip_from_uri": f"{num}@127.0.0.1:5098",
            "sip_from_host": "127.0.0.1",
            "channel_name": self.name,
            "sip_req_user": self.destination_number,
            "sip_to_user": self.destination_number,
            "sip_to_uri": f"{self.destination_number}@127.0.0.1:5080",
            "read_codec": codec,
            "original_read_codec": codec,
            "read_rate": str(self.read_rate),
            "original_read_rate": str(self.read_rate),
            "write_codec": codec,
            "write_rate": str(self.read_rate),
            "dtmf_type": "rfc2833",
            "endpoint_disposition": "RECEIVED",
            "DP_MATCH": f"ARRAY::{self.destination_number}|:{self.destination_number}",
            "call_uuid": self.uuid,
            "storeagent_store": self.store,
            "current_application_data": f"{self.socket_host} async full",
            "current_application": "socket",
            "socket_host": self.socket_host.rsplit(":", 1)[0],
            **self.variables,
        }

    @property
    def name(self) -> str:
        return f"sofia/public/{self.caller_number}@127.0.0.1:5098"

    @property
    def codec(self) -> tuple[str, str, str]:
        if self.read_rate == 8000:
            return ("PCMU", "8000", "64000")
        return ("L16", str(self.read_rate), str(self.read_rate * 16))

    def _core(self, name: str, calling: tuple[str, str, int]) -> Headers:
        self._sequence += 1
        now = time.time()
        return [
            ("Event-Name", name),
            ("Core-UUID", self.core_uuid),
            ("FreeSWITCH-Hostname", self.hostname),
            ("FreeSWITCH-Switchname", self.hostname),
            ("FreeSWITCH-IPv4", "127.0.0.1"),
            ("FreeSWITCH-IPv6", "::1"),
            ("Event-Date-Local", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))),
            ("Event-Date-GMT", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now))),
            ("Event-Date-Timestamp", str(int(now * 1_000_000))),
            ("Event-Calling-File", calling[0]),
            ("Event-Calling-Function", calling[1]),
            ("Event-Calling-Line-Number", str(calling[2])),
            ("Event-Sequence", str(self._sequence)),
        ]

    def _profile(self, prefix: str) -> Headers:
        num, dest = self.caller_number, self.destination_number
        fields = [
            ("Direction", "inbound"),
            ("Logical-Direction", "inbound"),
            ("Username", num),
            ("Dialplan", "XML"),
            ("Caller-ID-Name", "Caller"),
            ("Caller-ID-Number", num),
            ("Orig-Caller-ID-Name", "Caller"),
            ("Orig-Caller-ID-Number", num),
            ("Network-Addr", "127.0.0.1"),
            ("ANI", num),
            ("Destination-Number", dest),
            ("Unique-ID", self.uuid),
            ("Source", "mod_sofia"),
            ("Context", "public"),
            ("Channel-Name", self.name),
            ("Profile-Index", "1"),
            ("Profile-Created-Time", str(self.created_us)),
            ("Channel-Created-Time", str(self.created_us)),
            ("Channel-Answered-Time", str(self.answered_us)),
            ("Channel-Hangup-Time", str(self.hangup_us)),
            ("Screen-Bit", "true"),
        ]
        return [(f"{prefix}-{k}", v) for k, v in fields]

    def _channel(self) -> Headers:
        codec, rate, bits = self.codec
        out = [
            ("Channel-State", self.state),
            ("Channel-Call-State", self.call_state),
            ("Channel-State-Number", str(self.state_number)),
            ("Channel-Name", self.name),
            ("Unique-ID", self.uuid),
            ("Call-Direction", "inbound"),
            ("Presence-Call-Direction", "inbound"),
            ("Channel-HIT-Dialplan", "true"),
            ("Channel-Call-UUID", self.uuid),
            ("Answer-State", self.answer_state),
        ]
        if self.hangup_cause:
            out.append(("Hangup-Cause", self.hangup_cause))
        out += [
            ("Channel-Read-Codec-Name", codec),
            ("Channel-Read-Codec-Rate", rate),
            ("Channel-Read-Codec-Bit-Rate", bits),
            ("Channel-Write-Codec-Name", codec),
            ("Channel-Write-Codec-Rate", rate),
            ("Channel-Write-Codec-Bit-Rate", bits),
        ]
        return out

    def channel_data(self) -> Headers:
        """The `connect` reply's headers before Content-Type/Reply-Text/Socket-Mode/Control."""
        core = self._core("CHANNEL_DATA", ("mod_event_socket.c", "parse_command", 2021))
        return core + self._profile("Channel") + self._channel() + self._profile("Caller") + self._vars()

    def _vars(self) -> Headers:
        return [(f"variable_{k}", v) for k, v in self.variables.items()]

    def event(
        self,
        name: str,
        calling: tuple[str, str, int],
        *,
        with_vars: bool = True,
        extra: Sequence[tuple[str, str]] = (),
    ) -> Headers:
        """A channel event: core headers, channel state, caller profile, [variables], then `extra`."""
        out = self._core(name, calling) + self._channel() + self._profile("Caller")
        if with_vars:
            out += self._vars()
        return out + list(extra)
