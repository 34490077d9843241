"""A local ElevenLabs TTS server: the stream-input websocket and the HTTP streaming endpoint.

Websocket `/v1/text-to-speech/{voice_id}/stream-input?model_id=..&output_format=pcm_16000|ulaw_8000`, key in the
`xi-api-key` header (or the first message's `xi-api-key`). First message `{"text": " ", ...settings}`; then text
chunks (ending in a space) with optional `flush`/`try_trigger_generation`; `{"text": ""}` ends the input. Down:
`{"audio": base64, "isFinal": null, "normalizedAlignment": {...}, "alignment": {"chars", "charStartTimesMs",
"charDurationsMs"}}` messages (each chunk's alignment lists the input characters whose audio starts in it,
times from the chunk's start), as many flushes per stream as the client sends, then `{"isFinal": true}` and a
normal close after `{"text": ""}`.
`generation_config.chunk_length_schedule` must be integers 50-500 (1008 otherwise, like a refused setting).
No text for `inactivity_timeout` s closes with 1008 and the documented
reason. HTTP `POST /v1/text-to-speech/{voice_id}/stream?output_format=..` streams raw audio bytes. Errors:
`{"detail": {"status", "message"}}` with 401 / 429.

The audio is a 440 Hz tone, 60 ms per character (so tests can check length and format). `behaviour`: "ok",
"slow" (first audio `slow_seconds` late), "drop" (connection cut after the first audio), "auth", "rate_limit",
"quota" (1008 close with the quota reason after the first text).
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from storeagent.agent.transport.codec import ulaw_encode
from support.local_server import serve

MS_PER_CHAR = 60
CHUNK_MS = 100


def tone(rate: int, ms: int) -> bytes:
    n = rate * ms // 1000
    return struct.pack(f"<{n}h", *(int(8000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(n)))


def render(text: str, output_format: str) -> bytes:
    rate = 16000 if output_format == "pcm_16000" else 8000
    pcm = tone(rate, MS_PER_CHAR * len(text.strip()))
    return pcm if output_format == "pcm_16000" else ulaw_encode(pcm)


@dataclass
class WSSession:
    voice_id: str
    query: dict[str, str]
    messages: list[dict[str, Any]] = field(default_factory=list)
    keepalives: int = 0
    close_code: int | None = None
    flushes: int = 0
    ended_by_client: bool = False  # the client closed before ending the input: generation stopped


@dataclass
class FakeElevenLabs:
    api_key: str = "xi-test-key"
    behaviour: str = "ok"
    slow_seconds: float = 5.0
    inactivity_timeout: float = 20.0
    sessions: list[WSSession] = field(default_factory=list)
    http_requests: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0  # requests / handshakes, refused ones included
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> FakeElevenLabs:
        app = web.Application()
        app.router.add_get("/v1/text-to-speech/{voice_id}/stream-input", self._stream_input)
        app.router.add_post("/v1/text-to-speech/{voice_id}/stream", self._http_stream)
        self._runner, base = await serve(app)
        self.url = base
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _refuse(self, request: web.Request) -> web.Response | None:
        self.attempts += 1
        if self.behaviour == "rate_limit":
            return web.json_response({"detail": {"status": "too_many_concurrent_requests",
                                                 "message": "Too many concurrent requests."}}, status=429)
        if self.behaviour == "auth" or request.headers.get("xi-api-key") != self.api_key:
            return web.json_response({"detail": {"status": "invalid_api_key", "message": "Invalid API key"}},
                                     status=401)
        fmt = request.query.get("output_format")
        if fmt not in ("pcm_16000", "ulaw_8000"):
            return web.json_response({"detail": {"status": "invalid_output_format", "message": str(fmt)}},
                                     status=400)
        return None

    async def _stream_input(self, request: web.Request) -> web.StreamResponse:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        session = WSSession(request.match_info["voice_id"], dict(request.query))
        self.sessions.append(session)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        fmt = request.query["output_format"]
        buffered: list[str] = []
        sent_audio = False
        while True:
            try:
                msg = await ws.receive(timeout=self.inactivity_timeout)
            except TimeoutError:
                reason = (f"Have not received a new text input within the timeout of {self.inactivity_timeout:g} "
                          "seconds. Streaming input terminated. Please make sure to either feed the input in "
                          "the timely manner, or to send the end of input text (empty string \"\") when done.")
                await ws.close(code=1008, message=reason[:120].encode())
                session.close_code = 1008
                return ws
            if msg.type != WSMsgType.TEXT:
                session.ended_by_client = True
                return ws
            data = json.loads(msg.data)
            session.messages.append(data)
            text = data.get("text")
            if len(session.messages) == 1:
                if text != " ":
                    await ws.close(code=1008, message=b"The first message must contain a single space")
                    return ws
                schedule = (data.get("generation_config") or {}).get("chunk_length_schedule")
                if schedule is not None and not all(type(n) is int and 50 <= n <= 500 for n in schedule):
                    await ws.close(code=1008, message=b"chunk_length_schedule must be integers from 50 to 500")
                    session.close_code = 1008
                    return ws
                continue
            if text == " ":
                session.keepalives += 1
                continue
            if self.behaviour == "quota":
                await ws.close(code=1008, message=b"This request exceeds your quota. You have 0 credits remaining.")
                session.close_code = 1008
                return ws
            if text:
                buffered.append(text)
            if (data.get("flush") or text == "") and buffered:
                session.flushes += 1
                spoken = "".join(buffered).strip()
                audio = render(spoken, fmt)
                buffered.clear()
                if self.behaviour == "slow":
                    await asyncio.sleep(self.slow_seconds)
                step = (32 if fmt == "pcm_16000" else 8) * CHUNK_MS
                for n, i in enumerate(range(0, len(audio), step)):
                    here = [j for j in range(len(spoken)) if n * CHUNK_MS <= j * MS_PER_CHAR < (n + 1) * CHUNK_MS]
                    alignment = {"chars": [spoken[j] for j in here],
                                 "charStartTimesMs": [j * MS_PER_CHAR - n * CHUNK_MS for j in here],
                                 "charDurationsMs": [MS_PER_CHAR for _ in here]}
                    await ws.send_json({"audio": base64.b64encode(audio[i:i + step]).decode(), "isFinal": None,
                                        "normalizedAlignment": alignment, "alignment": alignment})
                    if self.behaviour == "drop" and not sent_audio:
                        assert request.transport is not None
                        request.transport.abort()
                        return ws
                    sent_audio = True
            if text == "":
                await ws.send_json({"isFinal": True})
                await ws.close(code=1000)
                session.close_code = 1000
                return ws

    async def _http_stream(self, request: web.Request) -> web.StreamResponse:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        body = await request.json()
        self.http_requests.append({"voice_id": request.match_info["voice_id"], "query": dict(request.query), **body})
        audio = render(str(body.get("text", "")), request.query["output_format"])
        resp = web.StreamResponse(headers={"Content-Type": "audio/basic" if "ulaw" in request.query[
            "output_format"] else "audio/pcm"})
        await resp.prepare(request)
        if self.behaviour == "slow":
            await asyncio.sleep(self.slow_seconds)
        for i in range(0, len(audio), 1601):  # odd chunks: the client must re-align PCM samples
            await resp.write(audio[i:i + 1601])
            if self.behaviour == "drop":
                assert request.transport is not None
                request.transport.abort()
                return resp
        await resp.write_eof()
        return resp
