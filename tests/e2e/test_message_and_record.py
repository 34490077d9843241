"""A caller leaves a message on a real call: the message and the call record go through the agent's own wiring
(per-call sink → durable outbox → webhook deliverer) and reach the shop's webhook once each."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

from storeagent.agent.loopback.caller import LoopbackCall
from storeagent.agent.ports import LLMChunk, Message, ProviderSet, ToolCall
from storeagent.agent.providers.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS
from storeagent.agent.secrets import Secrets
from storeagent.agent.settings import AgentSettings
from storeagent.agent.wiring import build_outbox
from storeagent.policy import TenantPolicy, UrlPolicy
from storeagent.shop import WebhookConfig
from support.agent_harness import bakery, running_agent
from support.audio import silence, voiced
from support.webhook_receiver import WebhookReceiver, free_port

ARGS = {"caller_name": "Dana", "callback_number": "+15555550123", "message": "Please save two croissants."}


def llm_reply(messages: Sequence[Message]) -> str | list[LLMChunk]:
    if messages[-1].role == "tool":
        return messages[-1].content
    return [ToolCall("m1", "take_message", json.dumps(ARGS))]


async def test_message_and_call_record_reach_the_webhook(tmp_path: Path) -> None:
    key = "e2e-signing-key-0123456789"
    hook = WebhookReceiver(port=free_port(), secret=key.encode())  # answers 401 to a missing or bad signature
    await hook.start()
    shop = bakery(webhook=WebhookConfig(url=hook.url))
    # The receiver is local: the platform policy must allow plain http to loopback for this test.
    local = TenantPolicy(urls=UrlPolicy(allow_http=True, allow_cidrs=("127.0.0.0/8",)))
    settings = AgentSettings(data_dir=tmp_path, tenant_policy=local)
    # As the pod gets it: STOREAGENT_WEBHOOK_SECRET_FILE pointing at the mounted Secret key.
    (tmp_path / "hook-secret").write_text(key + "\n")
    secrets = Secrets.from_env({"STOREAGENT_WEBHOOK_SECRET_FILE": str(tmp_path / "hook-secret")})
    svc = await build_outbox(settings, shop, secrets)
    providers = ProviderSet(
        stt=ScriptedSTT(("this is dana please save two croissants",), final_delay=0.01),
        llm=ScriptedLLM(llm_reply, first_token_delay=0.01),
        tts=ScriptedTTS(first_audio_delay=0.01, seconds_per_char=0.02),
    )
    try:
        async with running_agent(providers, shop, tools=svc.tools_factory(), tmp=tmp_path) as (app, done):
            app._deps.on_finished = _chain(svc.on_call_finished, done)  # record first, then tell the test
            call = LoopbackCall("127.0.0.1", app.esl_port, caller_number="+15555550123")
            await call.start()
            await call.wait_agent_done(quiet=0.5)
            await call.say(voiced(700) + silence(40))
            assert await call.wait_agent_done(quiet=0.6, timeout=20)
            await call.hangup()
            out = await done.wait_for(call.uuid)
            await call.close()
        assert out.outcome == "message"
        async with asyncio.timeout(20):
            while len(hook.stored) < 2:  # noqa: ASYNC110  # the deliverer works in the background
                await asyncio.sleep(0.1)
    finally:
        await svc.aclose()
        await hook.stop()
    kinds = {env["type"]: env for env in hook.stored.values()}
    assert set(kinds) == {"message", "call_record"}
    msg = kinds["message"]["data"]
    assert msg["caller_name"] == "Dana" and msg["callback_number"] == "+15555550123"
    assert msg["call_id"] == call.uuid
    record = kinds["call_record"]["data"]
    assert record["outcome"] == "message" and record["call_id"] == call.uuid
    assert record["message"]["message"] == "Please save two croissants."
    assert any(t["role"] == "caller" for t in record["transcript"])
    # per-turn latencies reach the record (it was `{}` on every call): the reply to a caller turn carries them
    replies = [t for t in record["transcript"] if t["role"] == "agent" and t["latency"]]
    assert replies and all(v >= 0 for t in replies for v in t["latency"].values())
    assert "voice_to_voice" in record["latency"] and record["latency"]["voice_to_voice"]["count"] >= 1
    assert all(count == 1 for count in hook.store_count.values())
    # Every request was signed with the Secret's key (the receiver verified each one).
    assert hook.bad_signatures == 0 and all(w.signature for w in hook.wire)


def _chain(*observers):  # type: ignore[no-untyped-def]
    async def both(*args):  # type: ignore[no-untyped-def]
        for o in observers:
            await o(*args)

    return both
