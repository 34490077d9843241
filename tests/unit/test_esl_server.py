"""The outbound-ESL server against replays of real FreeSWITCH recordings and against the loopback peer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from storeagent.agent.loopback.esl_client import LoopbackEslClient
from storeagent.agent.ports import CallControl, ChannelEvent
from storeagent.agent.transport.esl_server import EslCall, EslCommandError, EslConnectionClosed, EslServer
from support.captures import ESL_CAPTURES, read_capture
from support.esl_peers import CaptureReplayFs

AGENT_HANGS_UP, CALLER_HANGS_UP, PLAIN_UTF8 = ESL_CAPTURES
Handler = Callable[[EslCall], Awaitable[None]]


async def _within(aw: Awaitable[object], seconds: float = 20.0) -> object:
    return await asyncio.wait_for(aw, seconds)  # generous: only guards against a hang


@pytest.fixture
async def errors() -> list[tuple[str, str]]:
    return []


async def _server(handler: Handler, errors: list[tuple[str, str]], **kw: float) -> EslServer:
    server = EslServer("127.0.0.1", 0, handler, on_protocol_error=lambda w, r: errors.append((w, r)), **kw)
    await server.start()
    return server


@pytest.fixture
async def servers() -> AsyncIterator[list[EslServer]]:
    made: list[EslServer] = []
    yield made
    for s in made:
        await s.aclose()


async def _names(call: CallControl, until: str | None = None) -> list[ChannelEvent]:
    out = []
    async for ev in call.events():
        out.append(ev)
        if ev.name == until:
            break
    return out


# ------------------------------------------------------------------------------------------ capture replays
async def test_replay_agent_hangs_up(servers: list[EslServer], errors: list[tuple[str, str]]) -> None:
    result: dict[str, object] = {}

    async def handler(call: EslCall) -> None:
        result["store"] = call.channel["variable_storeagent_store"]
        result["uuid"] = call.uuid
        # pipelined in the capture's order: each command is written when its task first runs
        answer = asyncio.ensure_future(call.answer())
        var = asyncio.ensure_future(call.api(f"uuid_getvar {call.uuid} storeagent_store"))
        playback = asyncio.ensure_future(call.execute("playback", "tone_stream://%(200,0,440)"))
        brk = asyncio.ensure_future(call.api(f"uuid_break {call.uuid}"))
        await answer  # CHANNEL_EXECUTE_COMPLETE correlated by Application-UUID
        result["var"], result["break"] = await var, await brk
        async for ev in call.events():  # until the playback starts
            if ev.name == "CHANNEL_EXECUTE" and ev.headers.get("Application") == "playback":
                break
        await call.hangup()
        await playback  # its CHANNEL_EXECUTE_COMPLETE arrives after CHANNEL_HANGUP, as recorded
        result["rest"] = [e.name for e in await _names(call)]

    fs = CaptureReplayFs(read_capture(AGENT_HANGS_UP))
    server = await _server(handler, errors)
    servers.append(server)
    await _within(fs.run("127.0.0.1", server.port))  # returns when the agent closes the socket
    assert result["store"] == "bakery" and result["uuid"] == "fe20eecb-0dbf-436e-b074-9a11b98b4fd4"
    assert result["var"] == "bakery" and result["break"] == "+OK\n"
    assert result["rest"] == [
        "CHANNEL_HANGUP",
        "CHANNEL_EXECUTE_COMPLETE",
        "CHANNEL_UNPARK",
        "CHANNEL_EXECUTE_COMPLETE",
        "CHANNEL_STATE",
        "CHANNEL_STATE",
        "CHANNEL_HANGUP_COMPLETE",
    ]
    assert [m.command for m in fs.received][:4] == [
        "connect",
        "myevents json",
        "event json CUSTOM storeagent::connect storeagent::disconnect storeagent::error",
        "linger",
    ]
    assert errors == [] and server.active_connections == 0


async def test_replay_caller_hangs_up_after_dtmf(servers: list[EslServer], errors: list[tuple[str, str]]) -> None:
    seen: list[ChannelEvent] = []
    after: list[str] = []

    async def handler(call: EslCall) -> None:
        play_task = None

        async def pipelined() -> None:
            nonlocal play_task
            answer = asyncio.ensure_future(call.answer())
            var = asyncio.ensure_future(call.api(f"uuid_getvar {call.uuid} storeagent_store"))
            play_task = asyncio.ensure_future(call.execute("playback", "tone_stream://%(200,0,440)"))
            brk = asyncio.ensure_future(call.api(f"uuid_break {call.uuid}"))
            await asyncio.gather(answer, var, brk)

        await pipelined()
        seen.extend(await _names(call))  # ends with the linger disconnect-notice
        assert play_task is not None
        await play_task  # ended by the DTMF, correlated by Application-UUID
        await call.hangup()  # the socket is still open (linger): FreeSWITCH still replies +OK
        after.append("hangup-ok")
        with pytest.raises(EslConnectionClosed):
            await call.execute("playback", "x")  # the channel is gone: waiting would never end

    fs = CaptureReplayFs(read_capture(CALLER_HANGS_UP))
    server = await _server(handler, errors)
    servers.append(server)
    await _within(fs.run("127.0.0.1", server.port))
    names = [e.name for e in seen]
    assert names[names.index("DTMF") :] == [
        "DTMF",
        "CHANNEL_EXECUTE_COMPLETE",
        "CHANNEL_HANGUP",
        "CHANNEL_UNPARK",
        "CHANNEL_EXECUTE_COMPLETE",
        "CHANNEL_STATE",
        "CHANNEL_STATE",
        "CHANNEL_HANGUP_COMPLETE",
    ]
    dtmf = seen[names.index("DTMF")]
    assert dtmf.headers["DTMF-Digit"] == "0" and dtmf.headers["DTMF-Source"] == "RTP"
    assert after == ["hangup-ok"] and errors == []


async def test_replay_plain_events_bgapi_utf8_and_exit(servers: list[EslServer], errors: list[tuple[str, str]]) -> None:
    got: dict[str, object] = {}

    async def handler(call: EslCall) -> None:
        await asyncio.gather(
            call.answer(),
            call.api(f"uuid_getvar {call.uuid} storeagent_store"),
            call.execute("playback", "tone_stream://%(200,0,440)", wait=False),
            call.api(f"uuid_break {call.uuid}"),
            call.bgapi(f"uuid_getvar {call.uuid} caller_id_number", "11111111-2222-3333-4444-555555555555"),
            call.execute("set", "storeagent_note=café 한글"),
        )
        got["events"] = await _names(call)
        await call.hangup()
        await call.exit()

    fs = CaptureReplayFs(read_capture(PLAIN_UTF8))
    server = await _server(handler, errors)
    servers.append(server)
    await _within(fs.run("127.0.0.1", server.port))
    events = got["events"]
    assert isinstance(events, list)
    sets = [e for e in events if e.headers.get("Application") == "set"]
    assert sets and all(e.headers["Application-Data"] == "storeagent_note=café 한글" for e in sets)
    assert fs.received[9].get("content-type") == "text/plain"  # our UTF-8 argument travelled in the body
    assert fs.received[-1].command == "exit" and errors == []


# ------------------------------------------------------------------------------------------ loopback peer
async def test_full_call_against_the_loopback(servers: list[EslServer], errors: list[tuple[str, str]]) -> None:
    api_calls: list[str] = []
    result: dict[str, object] = {}

    async def on_api(cmd: str) -> str | None:
        if cmd.startswith("uuid_storeagent "):
            api_calls.append(cmd)
            return "+OK started\n"
        return None

    async def handler(call: EslCall) -> None:
        result["number"] = call.channel["Caller-Caller-ID-Number"]
        result["rate"] = call.channel["Channel-Read-Codec-Rate"]
        await call.answer()
        result["start"] = await call.api(f"uuid_storeagent {call.uuid} start ws://127.0.0.1:1/v1/calls/x 16000 tok")
        await call.execute("set", "note=line one\nline two 한글")
        result["note"] = await call.api(f"uuid_getvar {call.uuid} note")
        with pytest.raises(EslCommandError):
            await call.api("no_such_command arg")
        result["events"] = [e.name for e in await _names(call)]

    server = await _server(handler, errors)
    servers.append(server)
    fs = LoopbackEslClient("127.0.0.1", server.port, caller_number="+821055551234", read_rate=16000, on_api=on_api)
    await fs.start()
    while not (fs.answered and api_calls and len(fs.commands("api")) >= 3):
        await _within(asyncio.sleep(0.01))
    await fs.emit_custom("storeagent::error", {"Reason": "websocket closed"})
    await fs.emit_custom("storeagent::mark", {"Mark-Name": "greeting", "Mark-Event": "played"})  # not subscribed
    await fs.emit_custom("storeagent::unsubscribed", {})
    await fs.send_dtmf("7")
    await fs.caller_hangup()
    await _within(fs.wait_closed())  # the agent closes the lingering socket once the session is done
    assert result["number"] == "+821055551234" and result["rate"] == "16000"
    assert result["start"] == "+OK started\n" and result["note"] == "line one\nline two 한글"
    assert api_calls == [f"uuid_storeagent {fs.uuid} start ws://127.0.0.1:1/v1/calls/x 16000 tok"]
    events = result["events"]
    assert isinstance(events, list)
    assert events[-8:] == [
        "storeagent::error",
        "DTMF",
        "CHANNEL_HANGUP",
        "CHANNEL_UNPARK",
        "CHANNEL_EXECUTE_COMPLETE",
        "CHANNEL_STATE",
        "CHANNEL_STATE",
        "CHANNEL_HANGUP_COMPLETE",
    ]
    assert "storeagent::unsubscribed" not in events
    assert errors == [] and server.active_connections == 0


async def test_agent_hangup_through_the_loopback(servers: list[EslServer], errors: list[tuple[str, str]]) -> None:
    async def handler(call: EslCall) -> None:
        await call.answer()
        await call.hangup("USER_BUSY")
        async for _ in call.events():
            pass

    server = await _server(handler, errors)
    servers.append(server)
    fs = LoopbackEslClient("127.0.0.1", server.port)
    await fs.start()
    await _within(fs.wait_closed())
    hangup = [m for m in fs.commands("sendmsg") if m.get("call-command") == "hangup"]
    assert [m.get("hangup-cause") for m in hangup] == ["USER_BUSY"]
    assert fs.hung_up and fs.channel.hangup_cause == "USER_BUSY" and server.active_connections == 0


async def test_malformed_esl_closes_only_that_connection(
    servers: list[EslServer], errors: list[tuple[str, str]]
) -> None:
    gate = asyncio.Event()
    outcome: dict[str, object] = {}

    async def handler(call: EslCall) -> None:
        await call.answer()
        if call.channel["Caller-Caller-ID-Number"] == "+100":
            gate.set()
            try:
                await _names(call)  # ends when the malformed bytes kill this connection
                await call.api(f"uuid_getvar {call.uuid} storeagent_store")
            except EslConnectionClosed:
                outcome["bad"] = "closed"
            return
        await gate.wait()
        await asyncio.sleep(0.05)
        outcome["good"] = await call.api(f"uuid_getvar {call.uuid} storeagent_store")
        await call.hangup()
        await _names(call)

    server = await _server(handler, errors)
    servers.append(server)
    bad = LoopbackEslClient("127.0.0.1", server.port, caller_number="+100")
    good = LoopbackEslClient("127.0.0.1", server.port, caller_number="+200", store="salon")
    await bad.start()
    await good.start()
    await _within(gate.wait())
    bad.send_raw(b"Content-Length: twelve\nContent-Type: text/event-json\n\n")
    await _within(bad.wait_closed())
    await _within(good.wait_closed())
    assert errors == [("esl", "bad_content_length")]
    assert outcome == {"bad": "closed", "good": "salon"}
    assert good.hung_up and not bad.hung_up


async def test_reader_never_waits_for_the_consumer(servers: list[EslServer], errors: list[tuple[str, str]]) -> None:
    done = asyncio.Event()
    seen: dict[str, int] = {}

    async def handler(call: EslCall) -> None:
        await call.answer()
        await done.wait()  # nobody reads events() while FreeSWITCH floods them
        seen["api"] = len(await call.api(f"uuid_getvar {call.uuid} storeagent_store"))
        seen["backlog"] = call.max_event_backlog
        await call.hangup()

    server = await _server(handler, errors)
    servers.append(server)
    fs = LoopbackEslClient("127.0.0.1", server.port)
    await fs.start()
    while not fs.answered:
        await _within(asyncio.sleep(0.01))
    for _ in range(2000):
        await fs.send_dtmf("1")
    done.set()
    await _within(fs.wait_closed())
    assert seen["api"] == len("bakery") and seen["backlog"] >= 2000


async def test_stop_refuses_new_calls_while_live_ones_finish(
    servers: list[EslServer], errors: list[tuple[str, str]]
) -> None:
    release = asyncio.Event()

    async def handler(call: EslCall) -> None:
        await call.answer()
        await release.wait()
        await call.hangup()

    server = await _server(handler, errors)
    servers.append(server)
    live = LoopbackEslClient("127.0.0.1", server.port)
    await live.start()
    while not live.answered:
        await _within(asyncio.sleep(0.01))
    port = server.port
    await server.stop()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    release.set()
    await _within(live.wait_closed())
    assert live.hung_up and server.active_connections == 0


async def test_silent_peer_times_out_in_setup(servers: list[EslServer], errors: list[tuple[str, str]]) -> None:
    called = []

    async def handler(call: EslCall) -> None:
        called.append(call)

    server = await _server(handler, errors, setup_timeout=0.2)
    servers.append(server)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    assert await _within(reader.readuntil(b"\n\n")) == b"connect\n\n"
    assert await _within(reader.read()) == b""  # closed by the agent after the setup timeout
    writer.close()
    await _within(server.wait_idle())
    assert called == [] and server.active_connections == 0


async def test_refused_command_raises(servers: list[EslServer], errors: list[tuple[str, str]]) -> None:
    """A FreeSWITCH that refuses `linger` (e.g. not controlling a session) fails setup with a clear error."""
    called = []

    async def handler(call: EslCall) -> None:
        called.append(call)

    server = await _server(handler, errors)
    servers.append(server)
    fs = LoopbackEslClient("127.0.0.1", server.port)
    original = fs._handle

    async def refuse_linger(msg):  # type: ignore[no-untyped-def]
        if (msg.command or "").startswith("linger"):
            fs.send_raw(b"Content-Type: command/reply\nReply-Text: -ERR not controlling a session\n\n")
            return
        await original(msg)

    fs._handle = refuse_linger  # type: ignore[method-assign]
    await fs.start()
    await _within(fs.wait_closed())
    assert called == [] and errors == []
