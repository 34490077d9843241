"""Cross-language: mod_storeagent's C core (the `harness` binary, built with ASan+UBSan) against the real Python
audio endpoint. The harness plays FreeSWITCH's media side on its own 20 ms clock exactly as the module's writer
thread does; these tests check what a caller would hear: order, no underrun after the prebuffer, clear honoured
within one frame, marks reported in order.

1. a whole call through the real agent app (ESL played by the loopback, whose `on_api` hook runs the harness
   when the agent sends `uuid_storeagent <uuid> start ...`): greeting, a question, a long answer, a barge-in;
2. the bare endpoint with a scripted agent: exact sample order (a counter ramp in odd-sized chunks), the caller's
   audio arriving byte-exact, marks played/cleared, clear.
"""

from __future__ import annotations

import asyncio
import json
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web

from storeagent.agent.loopback.esl_client import LoopbackEslClient
from storeagent.agent.ports import AudioFrame, MarkReport, ProviderSet
from storeagent.agent.providers.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS
from storeagent.agent.transport.audio_link import WebSocketAudioLink
from storeagent.agent.transport.audio_ws import add_audio_route
from storeagent.agent.transport.tokens import StreamTokens
from support.agent_harness import running_agent
from support.audio import silence, voiced

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODULE_DIR = Path(__file__).resolve().parents[2] / "freeswitch" / "mod_storeagent"
HARNESS = MODULE_DIR / "build" / "asan" / "harness"
RATE = 8000
FRAME = RATE // 50


@pytest.fixture(scope="module")
def harness() -> Path:
    """The ASan-built core and harness, which `make cbuild` builds before pytest (a test never compiles)."""
    if not HARNESS.is_file():
        pytest.fail(f"{HARNESS} missing; run `make cbuild` (`make test` runs it before pytest)")
    return HARNESS


def write_wav(path: Path, pcm: bytes) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm)
    return path


class HarnessRun:
    """One harness process: started from the agent's `uuid_storeagent ... start` command."""

    def __init__(self, exe: Path, tmp: Path, caller: bytes, max_s: float) -> None:
        self.exe, self.tmp, self.max_s = exe, tmp, max_s
        self.wav = write_wav(tmp / "caller.wav", caller)
        self.report_path, self.played_path = tmp / "report.json", tmp / "played.raw"
        self.proc: asyncio.subprocess.Process | None = None
        self.started = asyncio.Event()

    async def start(self, url: str, rate: int, token: str, uuid: str) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            str(self.exe), url, str(rate), token, uuid, str(self.wav), str(self.report_path), str(self.played_path),
            env={"SA_HARNESS_MAX_S": str(self.max_s), "ASAN_OPTIONS": "detect_leaks=1",
                 "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        self.started.set()

    async def caller_done(self, timeout: float) -> None:
        """Wait until the harness has fed the whole caller WAV (its own 20 ms clock, however late it started)."""
        await asyncio.wait_for(self.started.wait(), timeout)
        assert self.proc is not None and self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        assert line == b"caller-audio-sent\n", line

    async def finish(self, timeout: float) -> dict[str, Any]:
        await asyncio.wait_for(self.started.wait(), timeout)
        assert self.proc is not None
        _out, err = await asyncio.wait_for(self.proc.communicate(), timeout)
        assert self.proc.returncode == 0, f"harness exit {self.proc.returncode}:\n{err.decode(errors='replace')}"
        assert b"ERROR: AddressSanitizer" not in err and b"runtime error" not in err, err.decode(errors="replace")
        report: dict[str, Any] = json.loads(self.report_path.read_text())
        return report

    def played(self) -> np.ndarray:
        return np.frombuffer(self.played_path.read_bytes(), dtype="<i2")


def sine_breaks(x: np.ndarray, freq: float = 440.0, tol: float = 40.0) -> int:
    """Samples where a pure tone's recurrence x[n+1] + x[n-1] = 2cos(w) x[n] fails: a reordered, dropped or
    duplicated 20 ms frame of the agent's tone shows up as a break; clause starts and the clear add a few."""
    if len(x) < 3:
        return 0
    f = x.astype(np.float64)
    c = 2 * np.cos(2 * np.pi * freq / RATE)
    err = np.abs(f[2:] + f[:-2] - c * f[1:-1])
    breaks = np.flatnonzero(err > tol)
    return int(np.count_nonzero(np.diff(breaks) > 3) + (1 if len(breaks) else 0))  # clusters, not samples


def check_marks_in_order(report: dict[str, Any]) -> None:
    marks = report["marks"]
    names = [m["name"] for m in marks]
    assert len(names) == len(set(names)), f"a mark was reported twice: {names}"
    ticks = [m["tick"] for m in marks]
    assert ticks == sorted(ticks), f"marks out of order: {marks}"


# ------------------------------------------------------------------------------------------ through the agent
LONG = " ".join(f"Sentence number {i} of a long answer about our many fine breads." for i in range(12))


async def test_call_through_the_real_agent(harness: Path, tmp_path: Path) -> None:
    providers = ProviderSet(
        # the barge-in's words ask something: voice alone keeps the pause until they come, then clears (a
        # backchannel there, "thanks", would resume instead: bargein.py)
        stt=ScriptedSTT(("tell me about bread", "wait what about sunday"), final_delay=0.01),  # type: ignore[arg-type]
        llm=ScriptedLLM(LONG, first_token_delay=0.01),  # type: ignore[arg-type]
        tts=ScriptedTTS(first_audio_delay=0.01, seconds_per_char=0.02),
    )
    # greeting (3 s of listening), the question, the answer starts; 3 s into it the caller talks over it
    caller = silence(3000) + voiced(700) + silence(4000) + voiced(900) + silence(3000)
    run = HarnessRun(harness, tmp_path, caller, max_s=40)
    tasks: set[asyncio.Future[None]] = set()

    def on_api(line: str) -> str | None:
        words = line.split()
        if words[:1] != ["uuid_storeagent"]:
            return None
        if len(words) == 6 and words[2] == "start":
            tasks.add(asyncio.ensure_future(run.start(words[3], int(words[4]), words[5], words[1])))
            return "+OK\n"
        return "+OK\n"  # stop / clear: the agent closes the websocket itself

    async with running_agent(providers) as (app, finished):
        esl = LoopbackEslClient("127.0.0.1", app.esl_port, store="sunrise-bakery", read_rate=RATE, on_api=on_api)
        await esl.start()
        await run.caller_done(timeout=len(caller) / (2 * RATE) + 30)
        await asyncio.sleep(0.2)  # the last frames reach the agent
        await esl.caller_hangup()
        report = await run.finish(timeout=30)
        await finished.wait_for(esl.uuid)
        await esl.close()

    assert report["connected"] and not report["error"], report["detail"]
    assert report["disconnected"], "the agent never closed the websocket after the hangup"
    assert report["uplink_frames_real"] >= len(caller) // (2 * FRAME) - 2
    assert report["audio_frames"] > 50, "the caller heard (almost) nothing"
    assert report["malformed"] == 0
    assert report["underruns"] == 0, "playout ran dry mid-speech after the prebuffer"
    check_marks_in_order(report)
    events = [m["event"] for m in report["marks"]]
    assert "played" in events, "no mark was ever played"
    assert report["clears"], "the barge-in produced no clear"
    # the agent paused the core at the onset (pause over the real websocket), then cleared; nothing resumed
    assert report["pauses"] and report["pauses"][0]["tick"] <= report["clears"][0]["tick"], report["pauses"]
    assert not report["resumes"]
    assert all(n == 0 for n in report["real_samples_after_clear"]), "speech played in the frame after a clear"
    # cleared marks are reported at the clear, after every played mark before it
    first_cleared = next((i for i, e in enumerate(events) if e == "cleared"), len(events))
    clear_tick = report["clears"][0]["tick"]
    assert all(m["tick"] <= clear_tick for m in report["marks"][:first_cleared])
    played = run.played()
    assert len(played) == report["played_samples"]
    assert sine_breaks(played) <= 2 * (len(report["marks"]) + len(report["clears"]) + 2)


# -------------------------------------------------------------------------------- bare endpoint, scripted agent
def ramp(start: int, n: int) -> bytes:
    return (np.arange(start, start + n) % 30000 + 1).astype("<i2").tobytes()


async def test_order_marks_and_clear_against_the_audio_endpoint(harness: Path, tmp_path: Path) -> None:
    uuid = "c0ffee00-0000-4000-8000-000000000001"
    tokens = StreamTokens()
    caller = voiced(1000) + silence(200)
    got_up: list[bytes] = []
    tasks: set[asyncio.Future[None]] = set()
    reports: list[MarkReport] = []
    done = asyncio.Event()

    async def read_uplink(link: WebSocketAudioLink, a_end: asyncio.Event) -> None:
        async for item in link.uplink():  # until the websocket closes
            if isinstance(item, AudioFrame):
                got_up.append(item.pcm)
            elif isinstance(item, MarkReport):
                reports.append(item)
                if item.name == "a-end":
                    a_end.set()
        done.set()

    async def scripted_agent(link: WebSocketAudioLink) -> None:
        a_end = asyncio.Event()
        reader = asyncio.ensure_future(read_uplink(link, a_end))
        first = ramp(0, RATE)  # 1 s of counter samples, sent in odd-sized chunks with marks every 250 ms
        for i in range(0, len(first), 333):
            await link.send_audio(first[i : i + 333])
            if (i // 333) % 12 == 11:
                await link.send_mark(f"a{i}")
        await link.send_mark("a-end")
        await asyncio.wait_for(a_end.wait(), 10)
        await link.send_audio(ramp(50000, 3 * RATE))  # 3 s more, interrupted after 0.5 s
        await link.send_mark("b-mid")
        await link.send_audio(ramp(80000, RATE))
        await link.send_mark("b-end")
        await asyncio.sleep(0.5)
        await link.send_clear()
        await asyncio.sleep(1.0)  # the caller's audio keeps coming up (silence once the WAV ends)
        await link.close()
        await reader

    async def attach(call_uuid: str, link: WebSocketAudioLink) -> bool:
        assert call_uuid == uuid
        tasks.add(asyncio.ensure_future(scripted_agent(link)))
        return True

    app = web.Application()
    add_audio_route(app, tokens=tokens, attach=attach, on_protocol_error=lambda wire, reason: None)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        run = HarnessRun(harness, tmp_path, caller, max_s=20)
        await run.start(f"ws://127.0.0.1:{port}/v1/calls/{uuid}/audio", RATE, tokens.mint(uuid), uuid)
        report = await run.finish(timeout=30)
        await asyncio.wait_for(done.wait(), 5)
    finally:
        await runner.cleanup()

    assert report["connected"] and report["disconnected"] and report["close_code"] == 1000
    # uplink: the caller's audio arrives byte-exact, in 20 ms frames, followed by silence (RTP stopped)
    up = b"".join(got_up)
    assert all(len(f) == 2 * FRAME for f in got_up)
    assert up[: len(caller)] == caller
    assert not any(up[len(caller):]), "after the caller's RTP stopped only silence may go up"
    # downlink: exactly the ramp, in order, nothing lost or repeated, up to the clear
    played = run.played()
    first = np.frombuffer(ramp(0, RATE), dtype="<i2")
    assert np.array_equal(played[:RATE], first)
    second = np.frombuffer(ramp(50000, 3 * RATE), dtype="<i2")
    rest = played[RATE:]
    assert 0 < len(rest) < len(second), "the clear did not cut the second reply"
    assert np.array_equal(rest, second[: len(rest)])
    assert report["underruns"] == 0
    assert report["real_samples_after_clear"] == [0]
    check_marks_in_order(report)
    events = [(m["name"], m["event"]) for m in report["marks"]]
    assert events[-2:] == [("b-mid", "cleared"), ("b-end", "cleared")]
    assert all(e == "played" for _, e in events[:-2]) and events[-3] == ("a-end", "played")
    assert [r.name for r in reports[: len(events) - 2]] == [n for n, _ in events[:-2]]
