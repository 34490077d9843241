"""LLM over the `openai` SDK's streaming Chat Completions, against OpenAI or any compatible server
(`base_url` per shop, e.g. an in-cluster model server).

Pure part: `to_openai_messages()` / `to_openai_tools()` build the request, `ToolCallAssembler` joins the
streamed `delta.tool_calls` fragments by index into whole `ToolCall`s, `classify_openai_error()` says whether
a retry can help. The run loop only iterates the SDK's stream. The SDK's own retries are off
(`max_retries=0`): retries and fallback are decided once, in `resilience.py`, within the call's time budget.
"""

from __future__ import annotations

import email.utils
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import openai

from storeagent.agent.errors import ProviderError
from storeagent.agent.netguard import policy_httpx_client
from storeagent.agent.ports import LLMChunk, Message, TextDelta, ToolCall, ToolSpec
from storeagent.policy import UrlPolicy, redact_url

log = logging.getLogger(__name__)
NAME = "openai"
DEFAULT_MODEL = "gpt-4o-mini"


# ------------------------------------------------------------------------------------------------ pure
def to_openai_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.tool_call_id or "", "content": m.content})
        elif m.role == "assistant" and m.tool_calls:
            out.append({"role": "assistant", "content": m.content or None, "tool_calls": [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in m.tool_calls]})
        else:
            out.append({"role": m.role, "content": m.content})
    return out


def to_openai_tools(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {
        "name": t.name, "description": t.description,
        "parameters": dict(t.parameters) or {"type": "object", "properties": {}}}} for t in tools]


@dataclass
class _Partial:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class ToolCallAssembler:
    """Joins `delta.tool_calls` fragments: the first fragment of an index carries id and name, later ones
    carry pieces of the JSON arguments (which are only valid JSON once joined)."""

    def __init__(self) -> None:
        self._parts: dict[int, _Partial] = {}

    def feed(self, fragments: Sequence[Mapping[str, Any]]) -> None:
        for frag in fragments:
            part = self._parts.setdefault(int(frag.get("index", 0)), _Partial())
            if frag.get("id"):
                part.id = str(frag["id"])
            fn = frag.get("function") or {}
            if fn.get("name"):
                part.name += str(fn["name"])
            if fn.get("arguments"):
                part.arguments.append(str(fn["arguments"]))

    def finish(self) -> list[ToolCall]:
        calls = []
        for index in sorted(self._parts):
            p = self._parts[index]
            if not p.name:
                raise ProviderError(NAME, "protocol", f"tool call {index} has no function name", retryable=True)
            calls.append(ToolCall(p.id or f"call_{index}", p.name, "".join(p.arguments) or "{}"))
        self._parts.clear()
        return calls


def translate_chunk(chunk: Mapping[str, Any], tools: ToolCallAssembler) -> list[LLMChunk]:
    """Port chunks for one `chat.completion.chunk`; tool calls come out whole when the choice finishes."""
    out: list[LLMChunk] = []
    for choice in chunk.get("choices") or []:
        if choice.get("index", 0) != 0:
            continue
        delta = choice.get("delta") or {}
        if delta.get("content"):
            out.append(TextDelta(str(delta["content"])))
        if delta.get("tool_calls"):
            tools.feed(delta["tool_calls"])
        if choice.get("finish_reason"):
            out.extend(tools.finish())
    return out


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """The wait a 429/503 asks for: `retry-after-ms` (OpenAI's, precise) or `retry-after` in seconds or as an
    HTTP date (RFC 9110 10.2.3); None when absent or unreadable."""
    if not headers:
        return None
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        if "retry-after-ms" in lower:
            return max(0.0, float(lower["retry-after-ms"]) / 1000)
        if "retry-after" in lower:
            raw = lower["retry-after"].strip()
            try:
                return max(0.0, float(raw))
            except ValueError:
                when = email.utils.parsedate_to_datetime(raw)
                return max(0.0, (when - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError, OverflowError):
        return None
    return None


def classify_openai_error(exc: BaseException) -> ProviderError:
    """Only status and error code go into the message: the SDK's text can echo request details."""
    if isinstance(exc, openai.APIStatusError):
        status, code = exc.status_code, exc.code or ""
        detail = f"HTTP {status} {code}".strip()
        if status in (401, 403):
            return ProviderError(NAME, "auth", detail, retryable=False)
        if status == 429:
            # No quota left is a billing state, not a burst: retrying cannot help.
            return ProviderError(NAME, "rate_limit", detail, retryable=code != "insufficient_quota",
                                 retry_after=retry_after_seconds(exc.response.headers))
        if status == 408:
            return ProviderError(NAME, "timeout", detail, retryable=True)
        if 400 <= status < 500:
            return ProviderError(NAME, "bad_request", detail, retryable=False)
        return ProviderError(NAME, "server", detail, retryable=True,
                             retry_after=retry_after_seconds(exc.response.headers))
    if isinstance(exc, openai.APITimeoutError):
        return ProviderError(NAME, "timeout", "request timed out", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        return ProviderError(NAME, "connect", "connection failed", retryable=True)
    if isinstance(exc, openai.APIError):  # e.g. an error event inside the stream
        return ProviderError(NAME, "server", f"stream error {getattr(exc, 'code', '') or ''}".strip(), retryable=True)
    # Transport errors raised while reading the body (peer reset mid-stream) come from the HTTP stack.
    if type(exc).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore", "h11", "anyio") or isinstance(
            exc, OSError):
        return ProviderError(NAME, "connect", f"{type(exc).__name__} mid-stream", retryable=True)
    return ProviderError(NAME, "internal", type(exc).__name__, retryable=False)


# ------------------------------------------------------------------------------------------------ I/O
class OpenAILLM:
    """LLM port over `AsyncOpenAI.chat.completions.create(stream=True, tools=...)`."""

    def __init__(self, api_key: str, *, model: str = "", base_url: str = "", name: str = NAME,
                 temperature: float = 0.3, request_timeout: float = 30.0, url_policy: UrlPolicy | None = None
                 ) -> None:
        if not api_key:
            raise ProviderError(NAME, "auth", "no API key configured", retryable=False)
        self.name = name  # distinct names give a secondary model its own circuit breaker
        self.model = model or DEFAULT_MODEL
        self._temperature = temperature
        # With the platform's URL policy, every connection goes to a resolved-and-checked address.
        http = policy_httpx_client(url_policy, timeout=request_timeout) if url_policy is not None else None
        # openai 3.x annotates httpx2 but accepts a legacy httpx client at runtime (openai/_httpx2.py).
        self._client = openai.AsyncOpenAI(api_key=api_key, base_url=base_url or None, max_retries=0,
                                          timeout=request_timeout, http_client=http)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        base = redact_url(str(self._client.base_url))
        return f"OpenAILLM(name={self.name!r}, model={self.model!r}, base_url={base!r})"

    async def stream(self, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> AsyncIterator[LLMChunk]:
        request: dict[str, Any] = {"model": self.model, "messages": to_openai_messages(messages),
                                   "stream": True, "temperature": self._temperature}
        if tools:
            request["tools"] = to_openai_tools(tools)
        assembler = ToolCallAssembler()
        try:
            stream = await self._client.chat.completions.create(**request)
            async with stream:
                async for chunk in stream:
                    for out in translate_chunk(chunk.model_dump(exclude_none=True), assembler):
                        yield out
            # A server that ends without finish_reason still owes us the calls it announced.
            for call in assembler.finish():
                yield call
        except ProviderError:
            raise
        except GeneratorExit:
            raise
        except Exception as exc:
            raise classify_openai_error(exc) from None

    async def aclose(self) -> None:
        await self._client.close()
