"""The loopback plays FreeSWITCH's side of outbound ESL: checked byte-for-byte against the real recordings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from storeagent.agent.loopback.esl_client import LoopbackEslClient
from storeagent.agent.loopback.esl_events import fs_url_encode
from storeagent.agent.transport import esl_protocol as esl
from support.captures import ESL_CAPTURES, fs_bytes, read_capture
from support.esl_peers import RawAgent

AGENT_HANGS_UP, CALLER_HANGS_UP, PLAIN_UTF8 = ESL_CAPTURES
SETUP = [esl.connect(), esl.myevents("json"), esl.event("json", (), ["storeagent::mark"]), esl.linger()]


def _real(name: str) -> list[esl.EslMessage]:
    return esl.EslParser().feed(b"".join(fs_bytes(read_capture(name))))


def _names(msgs: list[esl.EslMessage]) -> list[str]:
    return [esl.parse_event(m).name if esl.is_event(m) else m.content_type for m in msgs]


def _real_header_names() -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    for cap in ESL_CAPTURES:
        for m in _real(cap):
            if esl.is_event(m):
                ev = esl.parse_event(m)
                names.setdefault(ev.name, set()).update(ev.headers)
    return names


@pytest.fixture
async def pair() -> AsyncIterator[tuple[RawAgent, LoopbackEslClient]]:
    agent = RawAgent()
    port = await agent.start()
    fs = LoopbackEslClient("127.0.0.1", port, caller_number="+821055551234", playback_seconds=30)
    await fs.start()
    yield agent, fs
    await fs.close()
    await agent.close()


async def _until(agent: RawAgent, name: str, **headers: str) -> list[esl.EslMessage]:
    got = []
    while True:
        msg = await agent.recv()
        got.append(msg)
        if not esl.is_event(msg):
            if msg.content_type == name:
                return got
            continue
        ev = esl.parse_event(msg)
        if ev.name == name and all(ev.headers.get(k) == v for k, v in headers.items()):
            return got


async def test_connect_reply_is_shaped_like_the_real_one(pair: tuple[RawAgent, LoopbackEslClient]) -> None:
    agent, fs = pair
    reply = await agent.request(esl.connect())
    raw = bytes(agent.raw)
    real_raw = fs_bytes(read_capture(CALLER_HANGS_UP))[0]
    tail = b"Content-Type: command/reply\nReply-Text: %2BOK%0A\nSocket-Mode: async\nControl: full\n\n"
    assert raw.endswith(tail) and real_raw.endswith(tail) and b"Content-Length" not in raw
    assert raw.startswith(b"Event-Name: CHANNEL_DATA\nCore-UUID: ")
    assert b"\nCaller-Caller-ID-Number: %2B821055551234\n" in raw
    assert b"\nChannel-Name: sofia/public/%2B821055551234%40127.0.0.1%3A5098\n" in raw
    real = esl.EslParser().feed(real_raw)[0]
    assert set(reply.headers) <= set(real.headers)  # every header we invent exists on the real switch
    assert reply.get("Unique-ID") == fs.uuid and reply.get("variable_storeagent_store") == "bakery"
    assert reply.get("Caller-Destination-Number") == "1000" and reply.get("Channel-Read-Codec-Rate") == "8000"
    assert reply.reply_text == "+OK"


def test_url_encoding_matches_freeswitch_on_every_recorded_value() -> None:
    for cap in ESL_CAPTURES:
        raw = fs_bytes(read_capture(cap))[0].decode()
        for line in raw.split("\n"):
            if ": " in line:
                value = line.split(": ", 1)[1]
                decoded = esl.EslParser().feed(f"X: {value}\n\n".encode())[0].get("X")
                assert fs_url_encode(decoded) == value, line


async def test_agent_hangs_up_mid_playback_like_the_capture(pair: tuple[RawAgent, LoopbackEslClient]) -> None:
    agent, fs = pair
    for cmd in SETUP:
        assert (await agent.request(cmd)).ok
    assert (await agent.request(esl.sendmsg_execute("answer", event_uuid="a" * 36))).ok
    assert (await agent.request(esl.api(f"uuid_getvar {fs.uuid} storeagent_store"))).body == b"bakery"
    assert (await agent.request(esl.sendmsg_execute("playback", "tone_stream://%(200,0,440)", event_uuid="b" * 36))).ok
    got = await _until(agent, "CHANNEL_EXECUTE", Application="playback")
    assert (await agent.request(esl.sendmsg_hangup())).ok
    got += await _until(agent, esl.CT_DISCONNECT)
    want = [n for n in _names(_real(AGENT_HANGS_UP)) if n not in ("command/reply", "api/response")]
    assert _names(got) == want
    events = [esl.parse_event(m) for m in got if esl.is_event(m)]
    done = [e for e in events if e.name == "CHANNEL_EXECUTE_COMPLETE"]
    assert [(e.headers["Application"], e.headers.get("Application-UUID")) for e in done][:2] == [
        ("answer", "a" * 36),
        ("playback", "b" * 36),
    ]
    assert done[1].headers["Application-Response"] == "FILE PLAYED" and done[1].headers["Hangup-Cause"]
    real_names = _real_header_names()
    for e in events:
        assert set(e.headers) <= real_names[e.name], e.name
    notice = got[-1]
    assert notice.get("Content-Disposition") == "linger" and notice.get("Controlled-Session-UUID") == fs.uuid
    assert (await agent.request(esl.sendmsg_hangup())).ok  # the socket lingers; FreeSWITCH still answers
    await agent.close()
    await asyncio.wait_for(fs.wait_closed(), 10)


async def test_dtmf_then_caller_hangup_like_the_capture(pair: tuple[RawAgent, LoopbackEslClient]) -> None:
    agent, fs = pair
    for cmd in SETUP:
        assert (await agent.request(cmd)).ok
    await agent.send(esl.sendmsg_execute("answer", event_uuid="a" * 36))
    await agent.send(esl.api(f"uuid_getvar {fs.uuid} storeagent_store"))
    await agent.send(esl.sendmsg_execute("playback", "tone_stream://%(200,0,440)", event_uuid="b" * 36))
    got = await _until(agent, "CHANNEL_EXECUTE", Application="playback")
    await fs.send_dtmf("0")
    got += await _until(agent, "CHANNEL_EXECUTE_COMPLETE", Application="playback")
    await fs.caller_hangup()
    got += await _until(agent, esl.CT_DISCONNECT)
    real = [n for n in _names(_real(CALLER_HANGS_UP)) if n not in ("command/reply", "api/response")]
    assert [n for n in _names(got) if n not in ("command/reply", "api/response")] == real[
        : real.index(esl.CT_DISCONNECT) + 1
    ]
    dtmf = next(esl.parse_event(m) for m in got if esl.is_event(m) and esl.parse_event(m).name == "DTMF")
    assert dtmf.headers["DTMF-Digit"] == "0" and dtmf.headers["Unique-ID"] == fs.uuid
    assert not fs.closed.is_set()  # linger: open until the agent acts


async def test_plain_events_bgapi_utf8_body_and_exit(pair: tuple[RawAgent, LoopbackEslClient]) -> None:
    agent, fs = pair
    await agent.request(esl.connect())
    assert (await agent.request(esl.myevents("plain"))).reply_text == "+OK Events Enabled"
    reply = await agent.request(esl.event("plain", (), ["storeagent::mark", "BACKGROUND_JOB"]))
    assert reply.reply_text == "+OK event listener enabled plain"
    job = await agent.request(esl.bgapi(f"uuid_getvar {fs.uuid} caller_id_number", "1" * 36))
    assert job.reply_text == "+OK Job-UUID: " + "1" * 36 and job.get("Job-UUID") == "1" * 36
    assert (await agent.request(esl.sendmsg_execute("set", "storeagent_note=café 한글", event_uuid="9" * 36))).ok
    got = await _until(agent, "CHANNEL_EXECUTE_COMPLETE", Application="set")
    assert b"\nApplication-Data: storeagent_note%3Dcaf%C3%A9%20%ED%95%9C%EA%B8%80\n" in bytes(agent.raw)
    assert b"Content-Type: text/event-plain\n\nEvent-Name: CHANNEL_PARK\n" in bytes(agent.raw)
    assert "BACKGROUND_JOB" not in _names(got)  # it was subscribed as a CUSTOM subclass, as in the capture
    assert fs.channel.variables["storeagent_note"] == "café 한글"
    bye = await agent.request(esl.exit_())
    assert bye.reply_text == "+OK bye"
    notice = await agent.recv()
    real_notice = _real(PLAIN_UTF8)[-1]
    assert notice.body == real_notice.body and notice.get("Content-Disposition") == "disconnect"
    assert await agent.at_eof()


async def test_custom_events_need_a_subscription(pair: tuple[RawAgent, LoopbackEslClient]) -> None:
    agent, fs = pair
    await agent.request(esl.connect())
    await agent.request(esl.myevents("json"))
    await fs.emit_custom("storeagent::mark", {"Mark-Name": "m0"})  # myevents alone does not carry CUSTOM
    await agent.request(esl.event("json", ["DTMF"], ["storeagent::mark"]))
    await fs.emit_custom("storeagent::other", {"Mark-Name": "x"})
    await fs.emit_custom("storeagent::mark", {"Mark-Name": "m1", "Mark-Event": "played"})
    got = await _until(agent, "storeagent::mark")
    ev = esl.parse_event(got[-1])
    assert ev.headers["Mark-Name"] == "m1" and ev.headers["Unique-ID"] == fs.uuid
    assert [n for n in _names(got) if n.startswith("storeagent::")] == ["storeagent::mark"]


async def test_api_hook_builtins_and_errors() -> None:
    agent = RawAgent()
    port = await agent.start()
    seen: list[str] = []

    def hook(cmd: str) -> str | None:
        seen.append(cmd)
        return "+OK streaming\n" if cmd.startswith("uuid_storeagent") else None

    fs = LoopbackEslClient("127.0.0.1", port, on_api=hook, store="salon")
    await fs.start()
    try:
        await agent.request(esl.connect())
        start = await agent.request(esl.api(f"uuid_storeagent {fs.uuid} start ws://h/v1/calls/{fs.uuid}/audio 8000 t"))
        assert start.body == b"+OK streaming\n" and seen[0].startswith("uuid_storeagent")
        assert (await agent.request(esl.api(f"uuid_getvar {fs.uuid} storeagent_store"))).body == b"salon"
        assert (await agent.request(esl.api("uuid_getvar other-uuid x"))).body == b"-ERR No such channel!\n"
        assert (await agent.request(esl.api("frobnicate"))).body == b"-ERR frobnicate Command not found!\n"
        bad = await agent.request(esl.sendmsg_execute("answer", uuid="not-this-call"))
        assert bad.reply_text == "-ERR invalid session id [not-this-call]" and not bad.ok
        assert (
            fs.commands("api")[0].command
            == f"api uuid_storeagent {fs.uuid} start ws://h/v1/calls/{fs.uuid}/audio 8000 t"
        )
    finally:
        await fs.close()
        await agent.close()
