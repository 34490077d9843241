"""A local OpenAI-compatible Chat Completions server (`POST /v1/chat/completions`, streaming only).

Wire shape as documented: `Authorization: Bearer <key>`; a stream of Server-Sent Events `data: {chunk}` where
each chunk is a `chat.completion.chunk` with `choices[0].delta.content` or `delta.tool_calls[i]` fragments
(`index`, then `id` + `function.name` once, then `function.arguments` pieces), a last chunk with
`finish_reason`, then `data: [DONE]`. Errors are JSON bodies `{"error": {"message", "type", "param", "code"}}`
with 401 (invalid_api_key), 429 (rate_limit_exceeded, with `retry-after` in seconds and `retry-after-ms`, and
`x-ratelimit-*` headers as OpenAI sends them) and 500 (server_error).

`replies` are consumed one per request (the last one repeats): a str is spoken text; a `ToolReply` asks for a
tool call. `behaviour`: "ok", "slow" (first chunk `slow_seconds` late), "drop" (connection cut after the first
chunk), "auth", "rate_limit" (every request; "rate_limit_once": the first only), "server_error".
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from support.local_server import serve


@dataclass(frozen=True)
class ToolReply:
    name: str
    arguments: str  # JSON text, streamed in fragments


@dataclass
class FakeOpenAI:
    api_key: str = "sk-test-key"
    replies: list[str | ToolReply] = field(default_factory=lambda: ["We close at six tonight."])
    behaviour: str = "ok"
    slow_seconds: float = 5.0
    retry_after: float = 1.0  # seconds the 429 asks the client to wait
    request_times: list[float] = field(default_factory=list)  # time.monotonic() of each request
    requests: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0  # requests / handshakes, refused ones included
    url: str = ""  # base URL for the SDK, ending in /v1
    _runner: web.AppRunner | None = None

    async def start(self) -> FakeOpenAI:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        self._runner, base = await serve(app)
        self.url = base + "/v1"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @staticmethod
    def _error(status: int, message: str, type_: str, code: str | None,
               headers: dict[str, str] | None = None) -> web.Response:
        body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
        return web.json_response(body, status=status,
                                 headers={"x-request-id": f"req_{uuid.uuid4().hex}", **(headers or {})})

    def _rate_limited(self) -> web.Response:
        wait = self.retry_after
        headers = {"retry-after": str(round(wait)), "retry-after-ms": str(int(wait * 1000)),
                   "x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "0",
                   "x-ratelimit-reset-requests": f"{wait}s"}
        return self._error(429, f"Rate limit reached for requests. Please try again in {wait}s.", "requests",
                           "rate_limit_exceeded", headers)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        self.attempts += 1
        self.request_times.append(time.monotonic())
        if self.behaviour == "rate_limit" or (self.behaviour == "rate_limit_once" and self.attempts == 1):
            return self._rate_limited()
        if self.behaviour == "server_error":
            return self._error(500, "The server had an error while processing your request.", "server_error", None)
        if self.behaviour == "auth" or request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        body = await request.json()
        self.requests.append(body)
        if not body.get("stream") or not isinstance(body.get("messages"), list) or not body.get("model"):
            return self._error(400, "this fake serves streaming requests with a model and messages",
                               "invalid_request_error", None)
        reply = self.replies[min(len(self.requests) - 1, len(self.replies) - 1)]
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        try:
            await self._stream(request, resp, body, reply)
        except ConnectionResetError:  # the client gave up (timeout test): nothing left to send
            pass
        return resp

    async def _stream(self, request: web.Request, resp: web.StreamResponse, body: dict[str, Any],
                      reply: str | ToolReply) -> None:
        if self.behaviour == "slow":
            await asyncio.sleep(self.slow_seconds)
        chunk_id, created, model = f"chatcmpl-{uuid.uuid4().hex[:12]}", int(time.time()), body["model"]

        async def send(delta: dict[str, Any], finish: str | None = None) -> None:
            chunk = {"id": chunk_id, "object": "chat.completion.chunk", "created": created, "model": model,
                     "system_fingerprint": "fp_fake",
                     "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            await resp.write(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode())

        await send({"role": "assistant", "content": "" if isinstance(reply, str) else None})
        if self.behaviour == "drop":
            await resp.write(b"data: {\"id\": \"x\", \"object\": \"chat.completion.chunk\", \"choi")
            assert request.transport is not None
            request.transport.abort()
            return
        if isinstance(reply, str):
            for word in reply.split(" "):
                await send({"content": word + " " if word != reply.split(" ")[-1] else word})
            await send({}, "stop")
        else:
            call_id = f"call_{uuid.uuid4().hex[:24]}"
            await send({"tool_calls": [{"index": 0, "id": call_id, "type": "function",
                                        "function": {"name": reply.name, "arguments": ""}}]})
            args = reply.arguments
            for i in range(0, len(args), 7):
                await send({"tool_calls": [{"index": 0, "function": {"arguments": args[i:i + 7]}}]})
            await send({}, "tool_calls")
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
