"""Real traffic for the dashboards test: the real agent server (AgentApp: ESL server, audio websocket, /metrics)
on 127.0.0.1 answering loopback calls of every kind a dashboard shows.

Providers are the scripted ones (no network), but the LLM stage is a real fallback chain whose primary always
fails with an auth error, so provider errors and fallbacks are recorded by the production resilience code.
Calls: a question (answered), a barge-in, a message taken with the take_message tool, a goodbye with the
end_call tool, plus audio-websocket requests with a forged token (protocol errors).

Swap-in point: once `storeagent agent serve` runs from the CLI, the same calls can be placed against that
process; the metrics come from the same AgentApp either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from storeagent.agent.app import AgentApp
from storeagent.agent.loopback.caller import LoopbackCall
from storeagent.agent.metrics import AgentMetrics
from storeagent.agent.ports import LLMChunk, Message, ProviderSet, ToolCall
from storeagent.agent.providers.resilience import Chain, FallbackLLM, RetryPolicy
from storeagent.agent.providers.scripted import Fault, ScriptedLLM, ScriptedSTT, ScriptedTTS
from storeagent.agent.settings import AgentSettings
from storeagent.agent.store.tools import ShopTools
from support.agent_harness import bakery
from support.audio import silence, voiced

LONG = " ".join(f"Sentence number {i} of a long answer about our many fine breads." for i in range(12))
MESSAGE_ARGS = json.dumps({"caller_name": "Dana", "callback_number": "+15551230077",
                           "message": "Please call me back about a birthday cake."})


@dataclass
class Script:
    """What the caller says next (the scripted STT returns it) and what the LLM answers to it."""

    utterance: str = "when do you open"

    def transcript(self, _index: int) -> str:
        return self.utterance

    def reply(self, messages: Sequence[Message]) -> str | Sequence[LLMChunk]:
        last_user = next((m.content or "" for m in reversed(messages) if m.role == "user"), "")
        if messages and messages[-1].role == "tool":
            return "Thanks, I passed that on. Goodbye!" if "message" in last_user else "Goodbye, thanks for calling."
        if "bread" in last_user:
            return LONG
        if "message" in last_user:
            return [ToolCall("m1", "take_message", MESSAGE_ARGS)]
        if "all thanks" in last_user:
            return [ToolCall("e1", "end_call", "{}")]
        return "We open at 7 AM on weekdays."


@dataclass
class Messages:
    submitted: list[dict[str, Any]] = field(default_factory=list)

    async def submit(self, message: dict[str, Any]) -> None:
        self.submitted.append(message)


def utterance(ms: int = 600) -> bytes:
    return voiced(ms) + silence(40)


@contextlib.asynccontextmanager
async def serving_agent(tmp: Path, store: str = "sunrise-bakery") -> AsyncIterator[tuple[AgentApp, Script]]:
    shop = bakery()
    script = Script()
    metrics = AgentMetrics(shop.store)
    primary = ScriptedLLM(name="openai", fault=Fault("open", retryable=False, kind="auth"))
    backup = ScriptedLLM(script.reply, first_token_delay=0.05, name="scripted")
    providers = ProviderSet(
        stt=ScriptedSTT(script.transcript, final_delay=0.05),
        llm=FallbackLLM([primary, backup], Chain("llm", metrics, retry=RetryPolicy(attempts=1, backoff=0.01))),
        tts=ScriptedTTS(first_audio_delay=0.05, seconds_per_char=0.02),
    )
    settings = AgentSettings(host="127.0.0.1", esl_port=0, http_port=0, advertise_host="127.0.0.1",
                             max_calls=10, drain_seconds=10, data_dir=tmp)
    sink = Messages()
    app = AgentApp(settings, shop, providers, lambda call: ShopTools(shop, sink), metrics=metrics)
    await app.start()
    try:
        yield app, script
    finally:
        await app.stop()


async def _call(app: AgentApp, script: Script, *turns: str, barge_in: bool = False, hangup: bool = True) -> None:
    call = LoopbackCall("127.0.0.1", app.esl_port, store=app.shop.store)
    await call.start()
    try:
        await call.wait_agent_done(quiet=0.5)  # greeting
        for text in turns:
            script.utterance = text
            await call.say(utterance())
            if barge_in:
                assert await call.wait_agent_speaking()
                await asyncio.sleep(1.5)
                script.utterance = "where are you"
                call.say_nowait(utterance(1000))  # long enough to be an interruption, not a backchannel
                await asyncio.sleep(1.2)
            await call.wait_agent_done(quiet=0.6)
        if hangup:
            await call.hangup()
        await call.wait_ended()
    finally:
        await call.close()


async def forged_audio_stream(app: AgentApp) -> None:
    """A websocket to the audio endpoint with a token the agent never minted: refused and counted."""
    url = f"ws://127.0.0.1:{app.http_port}/v1/calls/{uuid.uuid4()}/audio"
    async with aiohttp.ClientSession() as s:
        with contextlib.suppress(aiohttp.WSServerHandshakeError):
            async with s.ws_connect(url, headers={"Authorization": "Bearer forged"}):
                raise AssertionError("a forged stream token was accepted")


async def place_calls(app: AgentApp, script: Script, settle: float = 2.5) -> None:
    """One call of each kind, with a forged audio stream before and after (a counter needs a sample before its
    increase for rate() to see it); returns when every call has ended."""
    await forged_audio_stream(app)
    await asyncio.sleep(settle)
    await _call(app, script, "when do you open", "do you have croissants")
    await _call(app, script, "tell me about bread", barge_in=True)
    await _call(app, script, "I want to leave a message")
    await _call(app, script, "that's all thanks", hangup=False)
    await forged_audio_stream(app)
    for _ in range(100):  # sessions end asynchronously after the far end hung up
        if not app.sessions:
            return
        await asyncio.sleep(0.1)
