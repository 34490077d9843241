"""ESL framing and events against the real FreeSWITCH recordings, split reads, limits and fuzzing."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storeagent.agent.errors import ProtocolError
from storeagent.agent.loopback.esl_client import execute_arg
from storeagent.agent.loopback.esl_events import frame_event, fs_url_encode
from storeagent.agent.transport import esl_protocol as esl
from support.captures import ESL_CAPTURES, agent_bytes, fs_bytes, read_capture

AGENT_HANGS_UP, CALLER_HANGS_UP, PLAIN_UTF8 = ESL_CAPTURES

# What each recording shows FreeSWITCH sending, in order (Event-Name, or the content type of non-events).
EXPECTED = {
    AGENT_HANGS_UP: [
        "command/reply",
        "command/reply",
        "command/reply",
        "command/reply",
        "command/reply",
        "api/response",
        "command/reply",
        "api/response",
        "CHANNEL_PARK",
        "CHANNEL_EXECUTE",
        "CHANNEL_ANSWER",
        "CHANNEL_EXECUTE_COMPLETE",
        "CHANNEL_EXECUTE",
        "command/reply",
        "CHANNEL_HANGUP",
        "CHANNEL_EXECUTE_COMPLETE",
        "CHANNEL_UNPARK",
        "CHANNEL_EXECUTE_COMPLETE",
        "CHANNEL_STATE",
        "CHANNEL_STATE",
        "CHANNEL_HANGUP_COMPLETE",
        "text/disconnect-notice",
    ],
    CALLER_HANGS_UP: [
        "command/reply",
        "command/reply",
        "command/reply",
        "command/reply",
        "CHANNEL_PARK",
        "command/reply",
        "api/response",
        "command/reply",
        "api/response",
        "CHANNEL_EXECUTE",
        "CHANNEL_ANSWER",
        "CHANNEL_EXECUTE_COMPLETE",
        "CHANNEL_EXECUTE",
        "DTMF",
        "CHANNEL_EXECUTE_COMPLETE",
        "CHANNEL_HANGUP",
        "CHANNEL_UNPARK",
        "CHANNEL_EXECUTE_COMPLETE",
        "CHANNEL_STATE",
        "CHANNEL_STATE",
        "CHANNEL_HANGUP_COMPLETE",
        "text/disconnect-notice",
        "command/reply",
    ],
    PLAIN_UTF8: [
        "command/reply",
        "command/reply",
        "command/reply",
        "command/reply",
        "CHANNEL_PARK",
        "command/reply",
        "api/response",
        "command/reply",
        "api/response",
        "command/reply",
        "command/reply",
        "CHANNEL_EXECUTE",
        "CHANNEL_ANSWER",
        "CHANNEL_EXECUTE_COMPLETE",
        "CHANNEL_EXECUTE",
        "CHANNEL_EXECUTE",
        "CHANNEL_EXECUTE_COMPLETE",
        "DTMF",
        "CHANNEL_EXECUTE_COMPLETE",
        "CHANNEL_HANGUP",
        "CHANNEL_UNPARK",
        "CHANNEL_EXECUTE_COMPLETE",
        "CHANNEL_STATE",
        "CHANNEL_STATE",
        "CHANNEL_HANGUP_COMPLETE",
        "text/disconnect-notice",
        "command/reply",
        "command/reply",
        "text/disconnect-notice",
    ],
}


def _kinds(msgs: list[esl.EslMessage]) -> list[str]:
    return [esl.parse_event(m).name if esl.is_event(m) else m.content_type for m in msgs]


def _stream(name: str) -> bytes:
    return b"".join(fs_bytes(read_capture(name)))


def _feed_chunks(data: bytes, cuts: list[int]) -> list[esl.EslMessage]:
    parser = esl.EslParser()
    out: list[esl.EslMessage] = []
    prev = 0
    for cut in [*sorted(cuts), len(data)]:
        out += parser.feed(data[prev:cut])
        prev = cut
    assert parser.buffered == 0
    return out


@pytest.mark.parametrize("name", ESL_CAPTURES)
def test_each_record_is_one_message_with_the_recorded_sequence(name: str) -> None:
    parser = esl.EslParser()
    msgs = []
    for record in fs_bytes(read_capture(name)):
        got = parser.feed(record)
        assert len(got) == 1, record[:80]
        msgs += got
    assert _kinds(msgs) == EXPECTED[name]


@pytest.mark.parametrize("name", ESL_CAPTURES)
def test_byte_by_byte_and_random_chunks_equal_one_shot(name: str) -> None:
    data = _stream(name)
    whole = esl.EslParser().feed(data)
    assert _kinds(whole) == EXPECTED[name]
    assert _feed_chunks(data, list(range(1, len(data)))) == whole  # a split at every byte boundary
    rng = random.Random(name)
    for _ in range(20):
        assert _feed_chunks(data, rng.sample(range(1, len(data)), rng.randint(1, 200))) == whole


@pytest.mark.parametrize("name", ESL_CAPTURES)
def test_every_single_split_of_small_records_and_header_regions(name: str) -> None:
    for record in fs_bytes(read_capture(name)):
        whole = esl.EslParser().feed(record)
        head = record.find(b"\n\n") + 2
        cuts = (
            range(1, len(record)) if len(record) < 600 else [*range(1, head + 2), *range(len(record) - 40, len(record))]
        )
        for cut in cuts:
            assert _feed_chunks(record, [cut]) == whole


def test_connect_reply_is_decoded_channel_data() -> None:
    reply = esl.EslParser().feed(fs_bytes(read_capture(CALLER_HANGS_UP))[0])[0]
    assert reply.content_type == "command/reply"
    assert reply.reply_text == "+OK" and reply.ok
    assert reply.get("Reply-Text") == "+OK\n"  # %2BOK%0A on the wire
    assert reply.get("Caller-Caller-ID-Number") == "+821055551234"
    assert reply.get("Channel-Name") == "sofia/public/+821055551234@127.0.0.1:5098"
    assert reply.get("variable_storeagent_store") == "bakery"
    assert reply.get("Unique-ID") == "70c40f8e-7f44-4a59-b1cd-73e1cc1d5dcc"
    assert list(reply.headers)[-4:] == ["Content-Type", "Reply-Text", "Socket-Mode", "Control"]
    assert reply.get("variable_DP_MATCH") == "ARRAY::1000|:1000"


def test_utf8_survives_plain_events_and_json_split_mid_character() -> None:
    msgs = esl.EslParser().feed(_stream(PLAIN_UTF8))
    sets = [esl.parse_event(m) for m in msgs if esl.is_event(m)]
    sets = [e for e in sets if e.headers.get("Application") == "set"]
    assert [e.headers["Application-Data"] for e in sets] == ["storeagent_note=café 한글"] * 2
    assert sets[1].headers["variable_storeagent_note"] == "café 한글"
    framed = frame_event("json", [("Event-Name", "CUSTOM"), ("Event-Subclass", "storeagent::mark")], "café 한글")
    first = _feed_chunks(framed, [])
    for cut in range(1, len(framed)):
        assert _feed_chunks(framed, [cut]) == first
    ev = esl.parse_event(first[0])
    assert ev.name == "storeagent::mark" and ev.body == "café 한글"


@pytest.mark.parametrize("name", ESL_CAPTURES)
def test_application_uuid_matches_the_event_uuid_sent(name: str) -> None:
    records = read_capture(name)
    cmds = [m for b in agent_bytes(records) for m in esl.EslParser(commands=True).feed(b)]
    sent = {m.get("event-uuid"): m.get("execute-app-name") for m in cmds if m.get("event-uuid")}
    events = [esl.parse_event(m) for m in esl.EslParser().feed(_stream(name)) if esl.is_event(m)]
    done = {
        e.headers["Application-UUID"]: e.headers["Application"]
        for e in events
        if e.name == "CHANNEL_EXECUTE_COMPLETE" and e.headers["Application-UUID"] in sent
    }
    assert done == sent


def test_disconnect_notices() -> None:
    linger = esl.EslParser().feed(fs_bytes(read_capture(AGENT_HANGS_UP))[-1])[0]
    assert linger.content_type == esl.CT_DISCONNECT
    assert linger.get("Content-Disposition") == "linger" and linger.get("Linger-Time") == "-1"
    assert linger.get("Channel-Name") == "sofia/public/sipp@127.0.0.1:5099" and linger.body == b""
    bye = esl.EslParser().feed(fs_bytes(read_capture(PLAIN_UTF8))[-1])[0]
    assert bye.get("Content-Disposition") == "disconnect"
    assert bye.body.startswith(b"Disconnected, goodbye.\n")


def test_plain_event_with_its_own_body() -> None:
    payload = b"Event-Name: BACKGROUND_JOB\nJob-UUID: j1\nContent-Length: 12\n\n+OK caf\xc3\xa9 \xed\n"
    msg = esl.EslParser().feed(b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(payload) + payload)
    ev = esl.parse_event(msg[0])
    assert ev.name == "BACKGROUND_JOB" and ev.headers["Job-UUID"] == "j1"
    assert ev.body is not None and ev.body.startswith("+OK café")


@pytest.mark.parametrize("name", ESL_CAPTURES)
def test_serializers_reproduce_the_recorded_commands(name: str) -> None:
    for raw in agent_bytes(read_capture(name)):
        msg = esl.EslParser(commands=True).feed(raw)[0]
        line = msg.command or ""
        word, _, rest = line.partition(" ")
        if word == "sendmsg" and msg.get("call-command") == "hangup":
            ours = esl.sendmsg_hangup(msg.get("hangup-cause"))
        elif word == "sendmsg":
            arg = msg.get("execute-app-arg")
            ours = esl.sendmsg_execute(msg.get("execute-app-name"), arg, event_uuid=msg.get("event-uuid"))
            if not arg.isascii():  # we send non-ASCII in a text/plain body; FreeSWITCH reads the same argument
                assert execute_arg(esl.EslParser(commands=True).feed(ours)[0]) == arg
                continue
        elif word == "event":
            words = rest.split()
            i = words.index("CUSTOM")
            ours = esl.event(words[0], words[1:i], words[i + 1 :])
        elif word == "bgapi":
            ours = esl.bgapi(rest, msg.get("Job-UUID"))
        else:
            ours = {"connect": esl.connect(), "linger": esl.linger(), "exit": esl.exit_()}.get(line) or (
                esl.myevents(rest) if word == "myevents" else esl.api(rest)
            )
        assert ours == raw


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"Content-Length: 12a\n\n", "bad_content_length"),
        (b"Content-Length: -1\n\n", "bad_content_length"),
        (b"Content-Length: 99999999999999999999\n\n", "content_too_large"),
        (b"Content-Length: 8388609\n\n", "content_too_large"),
        (b"Content-Type: command/reply\nno colon here\n\n", "bad_header_line"),
        (b"X: " + b"a" * (70 * 1024), "header_too_large"),
    ],
)
def test_limits_raise_protocol_error(data: bytes, reason: str) -> None:
    parser = esl.EslParser()
    with pytest.raises(ProtocolError) as exc:
        parser.feed(data)
    assert exc.value.wire == "esl" and exc.value.reason == reason
    with pytest.raises(ProtocolError):
        parser.feed(b"Content-Type: command/reply\n\n")  # a failed parser stays failed


@pytest.mark.parametrize(
    ("body", "ctype", "reason"),
    [
        (b"{not json", "text/event-json", "bad_event_json"),
        (b"[1,2]", "text/event-json", "bad_event_json"),
        (b'{"Event-Name": {"x": 1}}', "text/event-json", "bad_event_json"),
        (b'{"Core-UUID": "x"}', "text/event-json", "event_without_name"),
        (b"Event-Name: X\nContent-Length: 50\n\nshort", "text/event-plain", "bad_event_body"),
        (b"garbage line\n\n", "text/event-plain", "bad_event_header"),
    ],
)
def test_bad_event_bodies(body: bytes, ctype: str, reason: str) -> None:
    msg = esl.EslParser().feed(b"Content-Length: %d\nContent-Type: %s\n\n" % (len(body), ctype.encode()) + body)[0]
    with pytest.raises(ProtocolError) as exc:
        esl.parse_event(msg)
    assert exc.value.reason == reason


def test_serializers_refuse_line_breaks_and_misplaced_custom() -> None:
    with pytest.raises(ValueError, match="one line"):
        esl.api("uuid_kill x\n\nexit")
    with pytest.raises(ValueError, match="subclasses"):
        esl.event("json", ["DTMF", "CUSTOM"], ["storeagent::mark"])
    with pytest.raises(ValueError, match="NUL"):
        esl.sendmsg_execute("set", "a\0b")
    assert esl.event("json", ["DTMF"], ["storeagent::mark"]) == b"event json DTMF CUSTOM storeagent::mark\n\n"


def test_multiline_arg_goes_in_a_byte_counted_body() -> None:
    arg = "line one\nline two: 한글"
    raw = esl.sendmsg_execute("speak", arg, event_uuid="u1")
    msg = esl.EslParser(commands=True).feed(raw)[0]
    assert msg.get("execute-app-arg") == "" and msg.get("content-type") == "text/plain"
    assert int(msg.get("content-length")) == len(arg.encode()) and execute_arg(msg) == arg


# -------------------------------------------------------------------------------------------- property tests
_names = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,20}", fullmatch=True).filter(lambda n: n.lower() != "content-length")
_values = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="%"), max_size=40)


@given(
    st.lists(st.tuples(_names, _values), min_size=1, max_size=8, unique_by=lambda t: t[0].lower()),
    st.binary(max_size=300),
    st.data(),
)
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_round_trip_of_what_freeswitch_writes(headers: list[tuple[str, str]], body: bytes, data: st.DataObject) -> None:
    head = "".join(f"{k}: {fs_url_encode(v)}\n" for k, v in headers)
    raw = (head + (f"Content-Length: {len(body)}\n" if body else "") + "\n").encode() + body
    cuts = data.draw(st.lists(st.integers(1, max(1, len(raw) - 1)), max_size=10))
    msgs = _feed_chunks(raw * 2, [c for c in cuts if c < len(raw) * 2])
    assert len(msgs) == 2
    for msg in msgs:
        assert [(k, v) for k, v in msg.headers.items() if k != "Content-Length"] == headers
        assert msg.body == body


@given(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=200))
@settings(max_examples=200)
def test_any_app_arg_reaches_freeswitch_intact(arg: str) -> None:
    msg = esl.EslParser(commands=True).feed(esl.sendmsg_execute("set", arg, event_uuid="e"))[0]
    assert execute_arg(msg) == arg
    assert msg.get("event-uuid") == "e" and msg.get("execute-app-name") == "set"


@given(st.lists(st.integers(1, 60000), max_size=30))
@settings(max_examples=40, deadline=None)
def test_arbitrary_chunking_equals_one_shot(cuts: list[int]) -> None:
    data = _stream(CALLER_HANGS_UP)
    assert _feed_chunks(data, [c for c in cuts if c < len(data)]) == esl.EslParser().feed(data)


@given(st.binary(max_size=2000), st.lists(st.integers(0, 2000), max_size=8), st.booleans())
@settings(max_examples=400)
def test_garbage_only_ever_raises_protocol_error(junk: bytes, cuts: list[int], prefix_valid: bool) -> None:
    data = (b"Content-Type: command/reply\nReply-Text: +OK\n\n" if prefix_valid else b"") + junk
    parser = esl.EslParser(max_header_bytes=512, max_content_length=1024)
    prev = 0
    try:
        for cut in [*sorted(c for c in cuts if c <= len(data)), len(data)]:
            for msg in parser.feed(data[prev:cut]):
                if esl.is_event(msg):
                    esl.parse_event(msg)
            prev = cut
    except ProtocolError as exc:
        assert exc.wire == "esl" and exc.reason.isidentifier()
    assert parser.buffered <= 512 + 1024 + len(data)


@given(st.sampled_from(["text/event-json", "text/event-plain"]), st.binary(max_size=500))
@settings(max_examples=300)
def test_garbage_event_bodies_only_raise_protocol_error(ctype: str, body: bytes) -> None:
    msg = esl.EslMessage(headers={"Content-Type": ctype}, body=body)
    try:
        ev = esl.parse_event(msg)
    except ProtocolError:
        return
    assert ev.name
