"""The audio websocket endpoint and the loopback audio client, over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp import web

from storeagent.agent.loopback.audio_client import AudioClient
from storeagent.agent.ports import AudioFormat, AudioFrame, LinkStats, MarkReport, UplinkItem
from storeagent.agent.transport.audio_ws import (
    CLOSE_NO_CALL,
    CLOSE_NORMAL,
    CLOSE_PROTOCOL,
    CLOSE_TOO_BIG,
    AudioWsLimits,
    WebSocketAudioLink,
    add_audio_route,
)
from storeagent.agent.transport.tokens import StreamTokens

FB = 320  # 20 ms at 8 kHz
WAIT = 10.0  # generous: a loaded 2-core machine


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Server:
    base: str
    tokens: StreamTokens
    clock: Clock
    waiting: set[str] = field(default_factory=set)
    links: dict[str, WebSocketAudioLink] = field(default_factory=dict)
    attached: dict[str, asyncio.Event] = field(default_factory=dict)
    errors: list[tuple[str, str]] = field(default_factory=list)

    def url(self, uuid: str) -> str:
        return f"{self.base}/v1/calls/{uuid}/audio"

    async def link(self, uuid: str) -> WebSocketAudioLink:
        await asyncio.wait_for(self.attached.setdefault(uuid, asyncio.Event()).wait(), WAIT)
        return self.links[uuid]

    def reasons(self) -> list[str]:
        return [r for _, r in self.errors]


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    clock = Clock()
    app = web.Application()
    srv = Server("", StreamTokens(ttl=30.0, clock=clock), clock)

    async def attach(uuid: str, link: WebSocketAudioLink) -> bool:
        if uuid not in srv.waiting:
            return False
        srv.links[uuid] = link
        srv.attached.setdefault(uuid, asyncio.Event()).set()
        return True

    add_audio_route(
        app,
        tokens=srv.tokens,
        attach=attach,
        on_protocol_error=lambda wire, reason: srv.errors.append((wire, reason)),
        limits=AudioWsLimits(max_bad_frames=5, start_timeout=2.0, heartbeat=None),
    )
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    srv.base = f"ws://{host}:{port}"
    yield srv
    await runner.cleanup()


async def open_call(server: Server, uuid: str, **kw: Any) -> tuple[AudioClient, WebSocketAudioLink]:
    server.waiting.add(uuid)
    client = AudioClient(server.url(uuid), uuid=uuid, token=server.tokens.mint(uuid), **kw)
    await client.connect()
    return client, await server.link(uuid)


async def take(link: WebSocketAudioLink, until: Any, kinds: tuple[type, ...] = (MarkReport,)) -> list[UplinkItem]:
    """Uplink items of `kinds` until `until(items)` is true."""
    items: list[UplinkItem] = []
    async with asyncio.timeout(WAIT):
        async for item in link.uplink():
            if isinstance(item, kinds):
                items.append(item)
                if until(items):
                    return items
    raise AssertionError(f"uplink ended early with {items}")


async def until(predicate: Callable[[], bool]) -> None:
    """Poll a condition another task makes true (generous deadline: a loaded 2-core machine)."""
    async with asyncio.timeout(WAIT):
        while not predicate():  # noqa: ASYNC110 - the condition lives in plain lists the client fills
            await asyncio.sleep(0.02)


def ramp(nbytes: int) -> bytes:
    return (np.arange(nbytes // 2) % 20000 + 100).astype("<i2").tobytes()


# ------------------------------------------------------------------------------------------------ streaming
async def test_start_and_uplink_frames_arrive_in_order(server: Server) -> None:
    client, link = await open_call(server, "call-up")
    assert link.fmt == AudioFormat(8000)
    spoken = b"".join(np.full(160, k, dtype="<i2").tobytes() for k in range(1, 11))
    client.feed(spoken)
    got = [f for f in await take(link, lambda x: sum(f.pcm != bytes(FB) for f in x) == 10, (AudioFrame,))]
    assert all(isinstance(f, AudioFrame) and len(f.pcm) == FB for f in got)
    assert b"".join(f.pcm for f in got if f.pcm != bytes(FB)) == spoken
    await client.close()
    assert server.errors == []


async def test_downlink_odd_chunks_played_in_order_and_marks_played_in_order(server: Server) -> None:
    client, link = await open_call(server, "call-down")
    speech = ramp(50 * FB)  # 1 s
    sizes = [1, 3, 7, 333, 2, 1001, 64, 5]
    pos = i = 0
    while pos < 20 * FB:
        await link.send_audio(speech[pos : min(pos + sizes[i % len(sizes)], 20 * FB)])
        pos = min(pos + sizes[i % len(sizes)], 20 * FB)
        i += 1
    await link.send_mark("first")
    while pos < len(speech):
        await link.send_audio(speech[pos : pos + sizes[i % len(sizes)]])
        pos += sizes[i % len(sizes)]
        i += 1
    await link.send_mark("second")
    reports = await take(link, lambda x: len(x) == 2)
    assert reports == [MarkReport("first", "played"), MarkReport("second", "played")]
    assert bytes(client.record.received) == speech
    assert client.record.played_audio() == speech
    marks = client.record.marks
    assert [(m.name, m.event) for m in marks] == [("first", "played"), ("second", "played")]
    # "first" sits after 20 frames of speech: it is reported with the tick that played the last of them.
    played_by = b"".join(client.record.agent[: marks[0].frame_index + 1])
    assert np.count_nonzero(np.frombuffer(played_by, dtype="<i2")) == 20 * FB // 2  # ramp samples are never 0
    await client.close()


async def test_clear_is_honoured_within_one_frame_and_marks_cleared(server: Server) -> None:
    client, link = await open_call(server, "call-clear")
    await link.send_audio(ramp(100 * FB))  # 2 s
    await link.send_mark("m1")
    await link.send_audio(ramp(100 * FB))
    await link.send_mark("m2")
    await until(lambda: sum(client.record.agent_active) >= 5)
    await link.send_clear()
    reports = await take(link, lambda x: len(x) == 2)
    assert sorted(reports, key=lambda r: r.name) == [MarkReport("m1", "cleared"), MarkReport("m2", "cleared")]
    [clear] = client.record.clears
    assert clear.dropped_bytes > 0 and clear.marks_cleared == ("m1", "m2")
    await until(lambda: len(client.record.agent_active) > clear.frame_index + 2)
    # Nothing of the cleared speech played after the clear arrived; the next tick was silence.
    assert client.record.active_after(clear.received_at + 1e-9) == 0
    assert client.record.agent_active[clear.frame_index] is False
    # New speech after the clear plays normally.
    await link.send_audio(ramp(5 * FB))
    await link.send_mark("after")
    assert await take(link, lambda x: len(x) == 1) == [MarkReport("after", "played")]
    await client.close()


async def test_stats_frames_become_link_stats(server: Server) -> None:
    client, link = await open_call(server, "call-stats", stats_interval=0.05)
    [stats] = await take(link, lambda x: len(x) == 1, (LinkStats,))
    assert isinstance(stats, LinkStats) and stats.underruns == 0 and stats.buffered_ms >= 0
    await client.close()


async def test_call_side_close_ends_both_ends(server: Server) -> None:
    client, link = await open_call(server, "call-hangup")
    await link.send_audio(ramp(10 * FB))
    await link.close()
    async with asyncio.timeout(WAIT):
        await client.wait_closed()
        assert [i async for i in link.uplink() if not isinstance(i, AudioFrame)] == []  # uplink ended
    assert client.close_code == CLOSE_NORMAL
    await link.send_audio(b"\x00\x00")  # after close: a no-op, not an error
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("audio_ws-writer-call-hangup")]


async def test_far_end_close_ends_uplink(server: Server) -> None:
    client, link = await open_call(server, "call-far")
    await client.close()
    async with asyncio.timeout(WAIT):
        async for _ in link.uplink():
            pass
    assert link.closed


# ------------------------------------------------------------------------------------------------ refusals
async def handshake_status(server: Server, uuid: str, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.WSServerHandshakeError) as e:
            await s.ws_connect(server.url(uuid), headers=headers)
    return e.value.status


@pytest.mark.parametrize(
    ("make_headers", "status", "reason"),
    [
        (lambda srv: {}, 401, "token_missing"),
        (lambda srv: {"Authorization": "Bearer not-a-token"}, 401, "token_malformed"),
        (lambda srv: {"Authorization": "Basic dXNlcjpwYXNz"}, 401, "token_missing"),
        (lambda srv: {"Authorization": f"Bearer {StreamTokens().mint('call-x')}"}, 401, "token_bad_signature"),
        (lambda srv: {"Authorization": f"Bearer {srv.tokens.mint('call-other')}"}, 403, "token_wrong_call"),
    ],
)
async def test_bad_token_refused_before_upgrade(server: Server, make_headers: Any, status: int, reason: str) -> None:
    server.waiting.add("call-x")
    assert await handshake_status(server, "call-x", make_headers(server)) == status
    assert server.errors == [("audio_ws", reason)]
    assert server.links == {}


async def test_expired_token_refused(server: Server) -> None:
    server.waiting.add("call-x")
    token = server.tokens.mint("call-x")
    server.clock.now += 31
    assert await handshake_status(server, "call-x", {"Authorization": f"Bearer {token}"}) == 401
    assert server.reasons() == ["token_expired"] and server.links == {}


async def test_reused_token_refused_while_first_connection_streams(server: Server) -> None:
    server.waiting.add("call-x")
    token = server.tokens.mint("call-x")
    client = AudioClient(server.url("call-x"), uuid="call-x", token=token)
    await client.connect()
    link = await server.link("call-x")
    assert await handshake_status(server, "call-x", {"Authorization": f"Bearer {token}"}) == 403
    assert server.reasons() == ["token_reused"]
    await take(link, lambda x: len(x) == 3, (AudioFrame,))  # the legitimate connection is untouched
    await client.close()


async def test_plain_http_get_is_refused(server: Server) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(server.url("call-x").replace("ws://", "http://")) as r:
            assert r.status == 400
    assert server.reasons() == ["not_websocket"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"sample_rate": 44100}, "start_bad_sample_rate"),
        ({"sample_rate": "8000"}, "start_bad_sample_rate"),
        ({"encoding": "PCMU"}, "start_bad_encoding"),
        ({"uuid": "call-other"}, "start_bad_uuid"),
        ({"channels": 2}, "start_bad_channels"),
        ({"type": "hello"}, "start_bad_type"),
    ],
)
async def test_bad_start_frame_closes_4400(server: Server, change: dict[str, Any], reason: str) -> None:
    server.waiting.add("call-x")
    start = {"type": "start", "uuid": "call-x", "sample_rate": 8000, "encoding": "L16", "channels": 1, **change}
    client = AudioClient(server.url("call-x"), uuid="call-x", token=server.tokens.mint("call-x"), start_frame=start)
    await client.connect()
    async with asyncio.timeout(WAIT):
        await client.wait_closed()
    assert client.close_code == CLOSE_PROTOCOL
    assert server.reasons() == [reason] and server.links == {}


async def test_audio_before_start_and_missing_start(server: Server) -> None:
    server.waiting.update({"call-a", "call-b"})
    async with aiohttp.ClientSession() as s:
        auth = {"Authorization": f"Bearer {server.tokens.mint('call-a')}"}
        async with s.ws_connect(server.url("call-a"), headers=auth) as ws:
            await ws.send_bytes(bytes(FB))
            msg = await ws.receive(timeout=WAIT)
            assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == CLOSE_PROTOCOL
        auth = {"Authorization": f"Bearer {server.tokens.mint('call-b')}"}
        async with s.ws_connect(server.url("call-b"), headers=auth) as ws:
            msg = await ws.receive(timeout=WAIT)  # start_timeout is 2 s in this fixture
            assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 4408
    assert server.reasons() == ["audio_before_start", "start_timeout"] and server.links == {}


async def test_no_call_waiting_closes_4404(server: Server) -> None:
    client = AudioClient(server.url("call-gone"), uuid="call-gone", token=server.tokens.mint("call-gone"))
    await client.connect()
    async with asyncio.timeout(WAIT):
        await client.wait_closed()
    assert client.close_code == CLOSE_NO_CALL
    assert server.reasons() == ["unknown_call"]


# ------------------------------------------------------------------------------------------------ isolation
async def raw_call(session: aiohttp.ClientSession, server: Server, uuid: str) -> aiohttp.ClientWebSocketResponse:
    server.waiting.add(uuid)
    ws = await session.ws_connect(server.url(uuid), headers={"Authorization": f"Bearer {server.tokens.mint(uuid)}"})
    await ws.send_str(json.dumps({"type": "start", "uuid": uuid, "sample_rate": 8000, "encoding": "L16"}))
    await server.link(uuid)
    return ws


async def test_garbage_and_oversize_close_only_their_connection(server: Server) -> None:
    good, good_link = await open_call(server, "call-good")
    frames_seen = 0

    async def count_frames() -> None:
        nonlocal frames_seen
        async for item in good_link.uplink():
            frames_seen += isinstance(item, AudioFrame)

    counter = asyncio.create_task(count_frames())
    async with aiohttp.ClientSession() as s:
        # A few malformed frames are dropped and counted; the connection lives on.
        ws = await raw_call(s, server, "call-sloppy")
        sloppy = server.links["call-sloppy"]
        await ws.send_str("not json")
        await ws.send_str("[" * 60_000)  # nesting deep enough to overflow a recursive parser
        await ws.send_bytes(b"\x01\x02\x03")  # not a whole number of samples
        await ws.send_bytes(bytes(FB))
        [frame] = await take(sloppy, lambda x: True, (AudioFrame,))
        assert frame.pcm == bytes(FB) and not ws.closed
        # Garbage past the limit closes that connection.
        ws2 = await raw_call(s, server, "call-garbage")
        for text in ['{"type":"dance"}', "[1,2]", '{"type":"mark"}', '{"type":"mark","name":"x","event":"played"}'] * 2:
            await ws2.send_str(text)
        msg = await ws2.receive(timeout=WAIT)
        assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == CLOSE_PROTOCOL
        # An oversized frame closes its connection at once.
        ws3 = await raw_call(s, server, "call-huge")
        await ws3.send_bytes(bytes(70 * 1024))
        msg = await ws3.receive(timeout=WAIT)
        assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == CLOSE_TOO_BIG
        await ws.close()
        # The endpoint counts once its side of the close handshake is done.
        await until(lambda: all(server.links[u].closed for u in ("call-sloppy", "call-garbage", "call-huge")))

    reasons = server.reasons()
    assert reasons.count("bad_json") == 2 and reasons.count("bad_audio_frame") == 1
    for reason in ("unknown_type", "bad_mark", "unknown_mark", "too_many_bad_frames", "oversize_frame"):
        assert reason in reasons
    assert all(wire == "audio_ws" for wire, _ in server.errors)
    # The good call kept streaming all along, and still does.
    before = frames_seen
    await until(lambda: frames_seen >= before + 10)
    assert not good_link.closed and good.close_code is None
    await good_link.send_audio(ramp(3 * FB))
    await good_link.send_mark("still-here")
    await until(lambda: any(m.name == "still-here" for m in good.record.marks))
    await good.close()
    await counter


async def test_app_shutdown_closes_live_calls_promptly() -> None:
    app = web.Application()
    tokens = StreamTokens()

    async def attach(uuid: str, _link: WebSocketAudioLink) -> bool:
        return True

    add_audio_route(app, tokens=tokens, attach=attach, on_protocol_error=lambda w, r: None)
    runner = web.AppRunner(app, shutdown_timeout=30.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    client = AudioClient(f"ws://{host}:{port}/v1/calls/c1/audio", uuid="c1", token=tokens.mint("c1"))
    await client.connect()
    await until(lambda: len(client.record.caller) >= 3)
    async with asyncio.timeout(WAIT):  # well under the 30 s shutdown timeout a stuck handler would cost
        await runner.cleanup()
        await client.wait_closed()
    assert client.close_code == 1001
