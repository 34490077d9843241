"""A local Deepgram live-transcription server (`/v1/listen` websocket) speaking the documented wire protocol.

Handshake: `Authorization: Token <key>` (HTTP 401 with Deepgram's JSON error body otherwise), query options as
the SDK sends them; 429 (with `Retry-After`) for rate limiting. Session: binary audio up; text `KeepAlive`,
`Finalize`, `CloseStream`; down `SpeechStarted` (vad_events), interim and final `Results` (`is_final`,
`speech_final`, `from_finalize`, `start`/`duration` on the stream's audio clock), `UtteranceEnd`, and `Metadata`
before a normal close. No audio nor KeepAlive within `idle_timeout` seconds closes with 1011 and a NET-0001
reason, like the real service after ~10 s.

Timing follows the audio, as the service's does:
- a frame is speech when its mean absolute sample exceeds `SPEECH_LEVEL` (digital silence is not);
- endpointing (`endpointing=<ms>`, Deepgram's default 10, `false` = off): after that much *audio* of silence
  following speech, the segment is finalized with `is_final` and `speech_final` true;
- `Finalize` flushes a segment that still holds speech (`from_finalize` true, `speech_final` false); with no
  speech buffered it sends nothing (the docs: a response "typically occurs when there is a noticeable amount of
  audio buffered");
- `UtteranceEnd` (needs `interim_results=true` and `utterance_end_ms`) after that much audio without words
  following the last word — so only while audio keeps flowing;
- every result leaves `result_delay` s after its audio (the service's processing latency).

`behaviour` switches fault injection: "ok", "slow" (a Finalize result comes `slow_seconds` late), "drop" (TCP
connection cut after the first audio), "auth" (every key refused), "rate_limit", "server_error". `fault` hits the
first `fault_sessions` sessions after `fault_after_s` s of audio: "close_1011", "close_1000" or "abort";
`refuse_after_fault` then refuses every later handshake with 503.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from support.local_server import serve

SPEECH_BYTES = 3200  # kept for callers: about this much speech before the first interim result
SPEECH_LEVEL = 4  # mean |sample| above this is speech (the tests' synthetic voice is far above, silence is 0)


@dataclass
class Session:
    query: dict[str, str]
    headers: dict[str, str]
    audio_bytes: int = 0
    keepalives: int = 0
    finalizes: int = 0
    closed_by_client: bool = False
    close_code: int | None = None
    sent: list[dict[str, Any]] = field(default_factory=list)  # every JSON message sent down, in order
    opened_at: float = field(default_factory=time.monotonic)


@dataclass
class _Clock:
    """One session's view of its audio: segment bounds and speech on the stream's own clock (seconds)."""

    rate: int
    audio_s: float = 0.0
    seg_start: float = 0.0
    seg_speech_s: float = 0.0
    last_speech_end: float = 0.0
    words_pending: bool = False  # words heard since the last UtteranceEnd
    segments: int = 0  # speech segments finalized so far (picks the scripted text)
    interim_sent: bool = False


@dataclass
class FakeDeepgram:
    api_key: str = "dg-test-key"
    transcripts: dict[str, str] = field(default_factory=lambda: {"en": "what time do you close today",
                                                                  "ko": "오늘 몇 시에 문 닫아요"})
    segments: dict[str, list[str]] = field(default_factory=dict)  # per language: text of the n-th segment
    behaviour: str = "ok"
    slow_seconds: float = 5.0
    result_delay: float = 0.0
    retry_after: str = "1"
    idle_timeout: float = 10.0
    fault: str = ""
    fault_after_s: float = 0.4
    fault_sessions: int = 1
    refuse_after_fault: bool = False  # every handshake after the fault gets HTTP 503 (the service is down)
    sessions: list[Session] = field(default_factory=list)
    faulted_at: float | None = None  # time.monotonic() of the injected fault
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
    def _error(status: int, code: str, msg: str, headers: dict[str, str] | None = None) -> web.Response:
        body = {"err_code": code, "err_msg": msg, "request_id": str(uuid.uuid4())}
        return web.json_response(body, status=status, headers={"dg-error": msg, **(headers or {})})

    async def _listen(self, request: web.Request) -> web.StreamResponse:
        self.attempts += 1
        if self.behaviour == "rate_limit":
            return self._error(429, "TOO_MANY_REQUESTS", "Too many requests. Please try again later.",
                               {"Retry-After": self.retry_after})
        if self.behaviour == "server_error" or (self.refuse_after_fault and self.faulted_at is not None):
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
        await self._session(ws, session, faulty=len(self.sessions) <= self.fault_sessions and bool(self.fault))
        return ws

    # ------------------------------------------------------------------------------------------ messages
    def _text(self, session: Session, clock: _Clock) -> str:
        language = session.query.get("language", "en").split("-")[0]
        script = self.segments.get(language)
        if script:
            return script[clock.segments] if clock.segments < len(script) else ""
        return self.transcripts.get(language, "")

    @staticmethod
    def _results(session: Session, text: str, start: float, end: float, *, final: bool, speech_final: bool,
                 from_finalize: bool = False) -> dict[str, Any]:
        return {
            "type": "Results", "channel_index": [0, 1], "duration": round(end - start, 3), "start": round(start, 3),
            "is_final": final, "speech_final": speech_final, "from_finalize": from_finalize,
            "channel": {"alternatives": [{"transcript": text, "confidence": 0.97 if final else 0.6, "words": []}]},
            "metadata": {"request_id": "fake", "model_uuid": "fake",
                         "model_info": {"name": session.query["model"], "version": "fake", "arch": "fake"}},
        }

    def _finalize_segment(self, session: Session, clock: _Clock, *, from_finalize: bool) -> dict[str, Any]:
        text = self._text(session, clock)
        msg = self._results(session, text, clock.seg_start, clock.audio_s, final=True,
                            speech_final=not from_finalize, from_finalize=from_finalize)
        clock.segments += 1
        clock.seg_start, clock.seg_speech_s, clock.interim_sent = clock.audio_s, 0.0, False
        return msg

    # ------------------------------------------------------------------------------------------ session
    async def _session(self, ws: web.WebSocketResponse, session: Session, *, faulty: bool) -> None:
        clock = _Clock(int(session.query["sample_rate"]))
        raw = session.query.get("endpointing", "10")
        endpointing = None if raw == "false" else int(raw) / 1000
        utterance_end = int(session.query["utterance_end_ms"]) / 1000 if (
            session.query.get("utterance_end_ms") and session.query.get("interim_results") == "true") else None
        out: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue()
        sender = asyncio.create_task(self._sender(ws, session, out))

        def emit(msg: dict[str, Any], delay: float) -> None:
            out.put_nowait((time.monotonic() + delay, msg))

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
                        self._abort(ws)
                        return
                    self._on_audio(session, clock, msg.data, endpointing, utterance_end, emit)
                    if faulty and clock.audio_s >= self.fault_after_s:
                        await self._inject(ws, session)
                        return
                elif msg.type == WSMsgType.TEXT:
                    kind = json.loads(msg.data).get("type")
                    if kind == "KeepAlive":
                        session.keepalives += 1
                    elif kind == "Finalize":
                        session.finalizes += 1
                        if clock.seg_speech_s > 0:
                            delay = self.slow_seconds if self.behaviour == "slow" else self.result_delay
                            emit(self._finalize_segment(session, clock, from_finalize=True), delay)
                    elif kind == "CloseStream":
                        session.closed_by_client = True
                        await out.join()  # what was due goes out first
                        await ws.send_json({"type": "Metadata", "transaction_key": "deprecated",
                                            "request_id": str(uuid.uuid4()), "sha256": "0" * 64,
                                            "created": "2026-01-01T00:00:00.000Z", "duration": clock.audio_s,
                                            "channels": 1, "models": [], "model_info": {}})
                        await ws.close(code=1000)
                        session.close_code = 1000
                        return
                else:  # CLOSE / CLOSED / ERROR
                    return
        finally:
            sender.cancel()

    def _on_audio(self, session: Session, clock: _Clock, data: bytes, endpointing: float | None,
                  utterance_end: float | None, emit: Any) -> None:
        frame = clock.rate * 2 // 50  # 20 ms
        for i in range(0, len(data), frame):
            chunk = data[i:i + frame]
            n = len(chunk) // 2
            if not n:
                continue
            level = sum(abs(int.from_bytes(chunk[j:j + 2], "little", signed=True)) for j in range(0, 2 * n, 2)) / n
            clock.audio_s += n / clock.rate
            if level > SPEECH_LEVEL:
                if clock.seg_speech_s == 0 and clock.audio_s - clock.seg_start > 1.0:
                    clock.seg_start = clock.audio_s - n / clock.rate  # a segment starts near its speech
                clock.seg_speech_s += n / clock.rate
                clock.last_speech_end = clock.audio_s
                clock.words_pending = True
                if not clock.interim_sent and clock.seg_speech_s * clock.rate * 2 >= SPEECH_BYTES:
                    clock.interim_sent = True
                    if session.query.get("vad_events") == "true":
                        emit({"type": "SpeechStarted", "channel": [0], "timestamp": round(clock.seg_start, 3)}, 0)
                    if session.query.get("interim_results") == "true":
                        first = self._text(session, clock).split(" ")[0]
                        emit(self._results(session, first, clock.seg_start, clock.audio_s, final=False,
                                           speech_final=False), self.result_delay)
                continue
            gap = clock.audio_s - clock.last_speech_end
            if endpointing is not None and clock.seg_speech_s > 0 and gap >= endpointing:
                emit(self._finalize_segment(session, clock, from_finalize=False), self.result_delay)
            if utterance_end is not None and clock.words_pending and gap >= utterance_end:
                clock.words_pending = False
                emit({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": round(clock.last_speech_end, 3)},
                     self.result_delay)

    async def _sender(self, ws: web.WebSocketResponse, session: Session,
                      out: asyncio.Queue[tuple[float, dict[str, Any]]]) -> None:
        while True:
            due, msg = await out.get()
            try:
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                if not ws.closed:
                    session.sent.append(msg)
                    await ws.send_json(msg)
            except ConnectionError:
                pass
            finally:
                out.task_done()

    @staticmethod
    def _abort(ws: web.WebSocketResponse) -> None:
        assert ws._req is not None and ws._req.transport is not None
        ws._req.transport.abort()

    async def _inject(self, ws: web.WebSocketResponse, session: Session) -> None:
        self.faulted_at = time.monotonic()
        if self.fault == "abort":
            self._abort(ws)
            return
        code = 1011 if self.fault == "close_1011" else 1000
        reason = b"Deepgram encountered an internal error. See https://dpgr.am/net0000" if code == 1011 else b""
        await ws.close(code=code, message=reason)
        session.close_code = code
