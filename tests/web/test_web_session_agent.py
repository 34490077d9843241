"""The agent's websocket-only session (agent/websession.py), as the web relay uses it: a token minted with the
shared key for a `web-` uuid opens a call with no ESL; without `web_sessions` the same token gets no call."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from storeagent.agent.app import AgentApp
from storeagent.agent.ports import ProviderSet
from storeagent.agent.providers.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS
from storeagent.agent.settings import AgentSettings
from storeagent.agent.store.tools import ShopTools
from storeagent.agent.transport.tokens import StreamTokens
from support.agent_harness import Finished, bakery
from support.audio import silence, voiced

KEY = b"k" * 32


async def _app(tmp: Path, web_sessions: bool) -> tuple[AgentApp, Finished]:
    key = tmp / "key"
    key.write_bytes(KEY)
    settings = AgentSettings(host="127.0.0.1", esl_port=0, http_port=0, data_dir=tmp, stream_token_key_file=key,
                             web_sessions=web_sessions)
    providers = ProviderSet(stt=ScriptedSTT(("when do you open",), final_delay=0.01),  # type: ignore[arg-type]
                            llm=ScriptedLLM("We open at 8 AM on Saturday.", first_token_delay=0.01),  # type: ignore[arg-type]
                            tts=ScriptedTTS(first_audio_delay=0.01, seconds_per_char=0.01))
    shop = bakery()
    finished = Finished()
    app = AgentApp(settings, shop, providers, lambda call: ShopTools(shop), on_finished=finished)
    await app.start()
    return app, finished


async def _connect(http: aiohttp.ClientSession, app: AgentApp, uuid: str) -> aiohttp.ClientWebSocketResponse:
    token = StreamTokens(KEY).mint(uuid)  # what the web service does (same key, same scheme)
    ws = await http.ws_connect(f"http://127.0.0.1:{app.http_port}/v1/calls/{uuid}/audio",
                               headers={"Authorization": f"Bearer {token}"})
    await ws.send_json({"type": "start", "uuid": uuid, "sample_rate": 16000, "encoding": "L16", "channels": 1})
    return ws


async def test_a_web_session_is_a_call_without_esl(tmp_path: Path) -> None:
    app, finished = await _app(tmp_path, web_sessions=True)
    try:
        async with aiohttp.ClientSession() as http:
            ws = await _connect(http, app, "web-test-1")
            lines: list[dict[str, str]] = []
            audio = 0

            async def read_until(pred: object, timeout: float = 15) -> None:
                nonlocal audio
                async with asyncio.timeout(timeout):
                    while not pred():  # type: ignore[operator]
                        msg = await ws.receive()
                        if msg.type is aiohttp.WSMsgType.BINARY:
                            audio += len(msg.data)
                        elif msg.type is aiohttp.WSMsgType.TEXT:
                            m = json.loads(msg.data)
                            if m["type"] == "transcript":
                                lines.append(m)
                            elif m["type"] == "mark":  # play everything at once, as a browser would report it
                                await ws.send_json({"type": "mark", "name": m["name"], "event": "played"})
                        else:
                            raise AssertionError(f"socket closed: {msg}")

            await read_until(lambda: any(x["role"] == "agent" for x in lines))  # the greeting
            for i in range(0, len(pcm := voiced(700, 16000) + silence(800, 16000)), 640):
                await ws.send_bytes(pcm[i:i + 640])
                await asyncio.sleep(0.02)
            await read_until(lambda: any("8 AM" in x["text"] for x in lines))
            assert audio > 0 and any(x["role"] == "caller" for x in lines)
            await ws.close()
        out = await finished.wait_for("web-test-1")
        assert ("agent", "We open at 8 AM on Saturday.") in [(x.role, x.text) for x in out.transcript]
        await asyncio.sleep(0.1)
        assert app.sessions == {} and not app._web_calls
    finally:
        await app.drain(0)
        await app.stop()


@pytest.mark.parametrize("uuid", ["web-test-2", "not-web"])
async def test_without_web_sessions_a_token_opens_no_call(tmp_path: Path, uuid: str) -> None:
    app, _ = await _app(tmp_path, web_sessions=uuid != "web-test-2")  # web on: a non-web uuid still needs ESL
    try:
        async with aiohttp.ClientSession() as http:
            ws = await _connect(http, app, uuid)
            msg = await ws.receive(timeout=5)
            assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 4404
        assert app.sessions == {}
    finally:
        await app.stop()
