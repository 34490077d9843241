"""A local Deepgram live-transcription server (`/v1/listen` websocket) speaking the documented wire protocol.

Handshake: `Authorization: Token <key>` (HTTP 401 with Deepgram's JSON error body otherwise), query options as
the SDK sends them; 429 for rate limiting. Session: binary audio up; text `KeepAlive`, `Finalize`, `CloseStream`;
down `SpeechStarted` (vad_events), interim and final `Results` (`is_final`, `speech_final`, `from_finalize`),
`UtteranceEnd`, and `Metadata` before a normal close. No audio nor KeepAlive within `idle_timeout` seconds closes
with 1011 and a NET-0001 reason, like the real service after ~10 s.

`behaviour` switches fault injection: "ok", "slow" (the final result after Finalize comes `slow_seconds` late),
"drop" (TCP connection cut after the first audio), "auth" (every key refused), "rate_limit", "server_error".
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from support.local_server import serve

SPEECH_BYTES = 3200  # after this much audio the fake "hears" speech (0.1-0.2 s of L16)


@dataclass
class Session:
    query: dict[str, str]
    headers: dict[str, str]
    audio_bytes: int = 0
    keepalives: int = 0
    finalizes: int = 0
    closed_by_client: bool = False
    close_code: int | None = None


@dataclass
class FakeDeepgram:
    api_key: str = "dg-test-key"
    transcripts: dict[str, str] = field(default_factory=lambda: {"en": "what time do you close today",
                                                                  "ko": "오늘 몇 시에 문 닫아요"})
    behaviour: str = "ok"
    slow_seconds: float = 5.0
    idle_timeout: float = 10.0
    sessions: list[Session] = field(default_factory=list)
    attempts: int = 0  # requests / handshakes, refused ones included
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> FakeDeepgram:
        app = web.Application()
        app.router.add_get("/v1/listen", self._listen)
        self._runner, base = await serve(app)
        self.url = base
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @staticmethod
    def _error(status: int, code: str, msg: str) -> web.Response:
        body = {"err_code": code, "err_msg": msg, "request_id": str(uuid.uuid4())}
        return web.json_response(body, status=status, headers={"dg-error": msg})

    async def _listen(self, request: web.Request) -> web.StreamResponse:
        self.attempts += 1
        if self.behaviour == "rate_limit":
            return self._error(429, "TOO_MANY_REQUESTS", "Too many requests. Please try again later.")
        if self.behaviour == "server_error":
            return self._error(503, "SERVICE_UNAVAILABLE", "Service unavailable.")
        if self.behaviour == "auth" or request.headers.get("Authorization") != f"Token {self.api_key}":
            return self._error(401, "INVALID_AUTH", "Invalid credentials.")
        q = dict(request.query)
        if q.get("encoding") != "linear16" or q.get("sample_rate") not in ("8000", "16000") or "model" not in q:
            return self._error(400, "Bad Request", "encoding=linear16 needs sample_rate 8000/16000 and a model")
        session = Session(q, {k: v for k, v in request.headers.items()})
        self.sessions.append(session)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await self._session(ws, session)
        return ws

    def _results(self, session: Session, text: str, *, final: bool, from_finalize: bool = False) -> dict[str, Any]:
        seconds = session.audio_bytes / (int(session.query["sample_rate"]) * 2)
        return {
            "type": "Results", "channel_index": [0, 1], "duration": seconds, "start": 0.0,
            "is_final": final, "speech_final": final and not from_finalize, "from_finalize": from_finalize,
            "channel": {"alternatives": [{"transcript": text, "confidence": 0.97 if final else 0.6, "words": []}]},
            "metadata": {"request_id": "fake", "model_uuid": "fake",
                         "model_info": {"name": session.query["model"], "version": "fake", "arch": "fake"}},
        }

    async def _session(self, ws: web.WebSocketResponse, session: Session) -> None:
        language = session.query.get("language", "en").split("-")[0]
        text = self.transcripts.get(language, "")
        spoke = False
        pending: set[asyncio.Task[None]] = set()
        try:
            while True:
                try:
                    msg = await ws.receive(timeout=self.idle_timeout)
                except TimeoutError:
                    await ws.close(code=1011, message=b"Deepgram did not receive audio data or a text message "
                                                      b"within the timeout window. See https://dpgr.am/net0001")
                    session.close_code = 1011
                    return
                if msg.type == WSMsgType.BINARY:
                    session.audio_bytes += len(msg.data)
                    if self.behaviour == "drop":
                        assert ws._req is not None and ws._req.transport is not None
                        ws._req.transport.abort()
                        return
                    if not spoke and session.audio_bytes >= SPEECH_BYTES:
                        spoke = True
                        if session.query.get("vad_events") == "true":
                            await ws.send_json({"type": "SpeechStarted", "channel": [0], "timestamp": 0.1})
                        if session.query.get("interim_results") == "true":
                            await ws.send_json(self._results(session, text.split(" ")[0], final=False))
                elif msg.type == WSMsgType.TEXT:
                    kind = json.loads(msg.data).get("type")
                    if kind == "KeepAlive":
                        session.keepalives += 1
                    elif kind == "Finalize":
                        session.finalizes += 1
                        final = self._results(session, text if spoke else "", final=True, from_finalize=True)
                        task = asyncio.create_task(self._send_final(ws, session, final))
                        pending.add(task)
                        task.add_done_callback(pending.discard)
                    elif kind == "CloseStream":
                        session.closed_by_client = True
                        await ws.send_json({"type": "Metadata", "transaction_key": "deprecated",
                                            "request_id": str(uuid.uuid4()), "sha256": "0" * 64,
                                            "created": "2026-01-01T00:00:00.000Z", "duration": 0.0,
                                            "channels": 1, "models": [], "model_info": {}})
                        await ws.close(code=1000)
                        session.close_code = 1000
                        return
                else:  # CLOSE / CLOSED / ERROR
                    return
        finally:
            for task in pending:
                task.cancel()

    async def _send_final(self, ws: web.WebSocketResponse, session: Session, final: dict[str, Any]) -> None:
        if self.behaviour == "slow":
            await asyncio.sleep(self.slow_seconds)
        if ws.closed:
            return
        await ws.send_json(final)
        if session.query.get("utterance_end_ms"):
            await ws.send_json({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": final["duration"]})
