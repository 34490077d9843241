"""WebSocketAudioLink without a network: the outbound priority scheduler and property tests of its parsing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import aiohttp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from storeagent.agent.ports import AudioFormat, LinkStats, MarkReport
from storeagent.agent.transport.audio_ws import (
    CLOSE_NORMAL,
    AudioWsLimits,
    StartError,
    WebSocketAudioLink,
    parse_start,
)

FB = 320
WAIT = 10.0


async def until(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not predicate():  # noqa: ASYNC110 - the condition lives in plain lists the socket fills
            await asyncio.sleep(0.01)


def ramp(nbytes: int) -> bytes:
    return (np.arange(nbytes // 2) % 20000 + 100).astype("<i2").tobytes()


# ------------------------------------------------------------------------------------------------ scheduler
class SlowSocket:
    """The server side of a websocket whose peer reads slowly: a binary write blocks until `release`."""

    def __init__(self) -> None:
        self.sent: list[bytes | str] = []
        self.writing = asyncio.Event()
        self.release = asyncio.Event()
        self.closed = False
        self.close_code: int | None = None
        self._gone = asyncio.Event()

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append(data)
        self.writing.set()
        await self.release.wait()

    async def send_str(self, data: str) -> None:
        self.sent.append(data)

    async def receive(self, timeout: float | None = None) -> aiohttp.WSMessage:
        await self._gone.wait()
        return aiohttp.WSMessage(aiohttp.WSMsgType.CLOSED, None, None)

    async def close(self, *, code: int = 1000, message: bytes = b"") -> bool:
        self.closed, self.close_code = True, code
        self._gone.set()
        return True


async def test_clear_jumps_ahead_of_queued_audio_and_drops_what_was_not_written() -> None:
    sock = SlowSocket()
    errors: list[tuple[str, str]] = []
    link = WebSocketAudioLink(
        "call-s", AudioFormat(8000), sock, lambda w, r: errors.append((w, r)), AudioWsLimits(downlink_chunk_ms=20)
    )  # type: ignore[arg-type]  # a stand-in for web.WebSocketResponse

    async def attach(uuid: str, _link: WebSocketAudioLink) -> bool:
        return True

    serving = asyncio.create_task(link.serve(attach))
    speech = ramp(10 * FB)
    await link.send_audio(speech)  # 10 pieces of 20 ms
    await link.send_mark("m")
    await asyncio.wait_for(sock.writing.wait(), WAIT)  # the first piece is stuck in a slow write
    await link.send_clear()
    uplink = link.uplink()
    assert await asyncio.wait_for(anext(uplink), WAIT) == MarkReport("m", "cleared")  # never sent: reported here
    sock.release.set()
    await until(lambda: len(sock.sent) >= 2)
    assert sock.sent == [speech[:FB], json.dumps({"type": "clear"})]
    await link.send_audio(b"\x01\x00" * 160)
    await until(lambda: len(sock.sent) == 3)
    assert sock.sent[2] == b"\x01\x00" * 160
    await link.close()
    await asyncio.wait_for(serving, WAIT)
    assert sock.close_code == CLOSE_NORMAL and errors == []


async def test_pause_and_resume_jump_ahead_of_queued_audio_and_drop_nothing() -> None:
    sock = SlowSocket()
    link = WebSocketAudioLink(
        "call-p", AudioFormat(8000), sock, lambda w, r: None, AudioWsLimits(downlink_chunk_ms=20)
    )  # type: ignore[arg-type]

    async def attach(uuid: str, _link: WebSocketAudioLink) -> bool:
        return True

    serving = asyncio.create_task(link.serve(attach))
    speech = ramp(4 * FB)
    await link.send_audio(speech)
    await link.send_mark("m")
    await asyncio.wait_for(sock.writing.wait(), WAIT)  # the first piece is stuck in a slow write
    await link.send_pause()
    await link.send_resume()
    sock.release.set()
    await until(lambda: len(sock.sent) >= 7)
    pause, resume = json.dumps({"type": "pause"}), json.dumps({"type": "resume"})
    # the control frames go right after the write in progress; every piece of speech and the mark still follow
    assert sock.sent == [speech[:FB], pause, resume, speech[FB : 2 * FB], speech[2 * FB : 3 * FB],
                         speech[3 * FB :], json.dumps({"type": "mark", "name": "m"})]
    await link.close()
    await asyncio.wait_for(serving, WAIT)


# ------------------------------------------------------------------------------------------------ fuzz
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=12,
)
_texts = st.one_of(
    st.text(max_size=200),
    _json_values.map(json.dumps),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["start", "mark", "stats", "clear"])},
        optional={
            "uuid": st.sampled_from(["call-f", "other"]),
            "sample_rate": st.sampled_from([8000, 16000, 44100, "8000", 8000.0, True]),
            "encoding": st.sampled_from(["L16", "PCMU", 1]),
            "channels": st.sampled_from([1, 2, "1"]),
            "name": st.sampled_from(["m", "", 3]),
            "event": st.sampled_from(["played", "cleared", "x"]),
            "buffered_ms": st.sampled_from([0, 12.5, -1, "5", None]),
            "underruns": st.sampled_from([0, 3, -1, 2.5, False]),
        },
    ).map(json.dumps),
)


@given(_texts)
@settings(max_examples=300, deadline=None)
def test_any_start_text_is_a_format_or_a_named_refusal(text: str) -> None:
    try:
        fmt = parse_start(text, "call-f")
    except StartError as e:
        assert e.reason.startswith("start_") and e.detail
    else:
        assert fmt.sample_rate in (8000, 16000)


@given(st.lists(_texts, max_size=8))
@settings(max_examples=200, deadline=None)
def test_any_uplink_text_is_an_item_or_counted(texts: list[str]) -> None:
    errors: list[tuple[str, str]] = []
    link = WebSocketAudioLink("call-f", AudioFormat(8000), SlowSocket(), lambda w, r: errors.append((w, r)))  # type: ignore[arg-type]
    for text in texts:
        link._on_text(text)
    items = list(link._up)
    assert len(items) + len(errors) == len(texts)  # every frame is either delivered or dropped and counted
    assert all(isinstance(i, LinkStats) for i in items)  # no mark was sent, so no mark report is believed
