"""The platform's tenant policy: hostile URLs and numbers, at reconcile (operator) and at connect/transfer time
(agent), including DNS rebinding: the agent connects only to addresses it resolved and checked itself."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiohttp import web

from storeagent.agent import netguard
from storeagent.agent.secrets import Secret
from storeagent.agent.store.outbox import Outbox
from storeagent.agent.store.tools import ShopTools
from storeagent.agent.store.webhook import WebhookDeliverer
from storeagent.operator import model
from storeagent.policy import (
    NumberPolicy,
    PolicyError,
    TenantPolicy,
    UrlPolicy,
    check_url,
    number_refused,
    redact_url,
)
from storeagent.shop import ShopConfig, shop_config_from_manifest
from support.webhook_receiver import WebhookReceiver, free_port

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sunrise-bakery.yaml"
STRICT = UrlPolicy()

HOSTILE_URLS = [
    "http://api.example.com/v1",  # plain http: keys in clear
    "https://169.254.169.254/latest/meta-data/",  # cloud metadata
    "https://[fd00:ec2::254]/latest",  # AWS metadata over IPv6 (unique local)
    "https://[::ffff:169.254.169.254]/",  # IPv4-mapped
    "https://127.0.0.1:6443/api", "https://[::1]/", "https://0.0.0.0/",
    "https://10.96.0.1/api", "https://192.168.1.1/", "https://172.16.5.4/", "https://100.64.0.1/",
    "https://kubernetes.default.svc/api", "https://storeagent-operator.storeagent-system.svc.cluster.local/",
    "https://localhost/", "https://metadata.google.internal/", "https://intranet/",
    "https://2130706433/", "https://0x7f.0.0.1/",  # numeric forms resolvers accept for 127.0.0.1
    "https://user:hunter2@api.example.com/v1", "https://sk-abc@api.example.com/v1",
    "ftp://api.example.com/", "file:///etc/passwd", "gopher://api.example.com/",
    "https://api.example.com:99999/",
]


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_hostile_urls_are_refused_without_echoing_credentials(url: str) -> None:
    with pytest.raises(PolicyError) as e:
        check_url(url, STRICT, "spec.webhook.url")
    assert "hunter2" not in str(e.value) and "sk-abc" not in str(e.value)


@pytest.mark.parametrize("url", ["https://api.openai.com/v1", "https://hooks.example.com:8443/a?b=c",
                                 "https://8.8.8.8/", "wss://api.deepgram.com"])
def test_public_https_urls_pass(url: str) -> None:
    check_url(url, STRICT)


def test_platform_allowlists_relax_the_rules() -> None:
    policy = UrlPolicy(allow_http=True, allow_hosts=(".ai.svc.cluster.local",), allow_cidrs=("10.20.0.0/16",))
    assert check_url("http://vllm.ai.svc.cluster.local:8000/v1", policy) == "vllm.ai.svc.cluster.local"
    check_url("http://10.20.3.4/v1", policy)
    with pytest.raises(PolicyError):
        check_url("http://10.21.0.1/v1", policy)  # outside the allowed network
    with pytest.raises(PolicyError):
        check_url("http://kubernetes.default.svc.cluster.local/", policy)  # not under the allowed suffix


def test_redacted_url_keeps_only_scheme_host_and_port() -> None:
    assert redact_url("https://user:secret@hooks.example.com:8443/t/abc?token=xyz") == "https://hooks.example.com:8443"


US_SHOP = ("+15551230001",)


@pytest.mark.parametrize(("number", "refused"), [
    ("+15551230001", False), ("+14165550100", False),
    ("+19005551234", True), ("+19765551234", True),  # NANP premium
    ("+18765551234", True), ("+18095551234", True),  # Jamaica, Dominican Republic: +1 but international
    ("+442071234567", True), ("+821012345678", True),  # other countries than the shop's own
    ("+881612345678", True), ("+979123456789", True), ("+870773112345", True),  # satellite, premium
    ("+1555${x}", True), ("15551230001", True), ("+1555123000\n", True),
])
def test_number_policy_for_a_us_shop(number: str, refused: bool) -> None:
    assert (number_refused(number, NumberPolicy(), US_SHOP) is not None) is refused


def test_default_countries_are_the_shops_own_and_the_platform_may_widen_them() -> None:
    korean_shop = ("+8225551234",)
    assert number_refused("+821012345678", NumberPolicy(), korean_shop) is None
    assert number_refused("+15551230001", NumberPolicy(), korean_shop) is not None
    assert number_refused("+15551230001", NumberPolicy(), ()) is not None  # no home, no list: nothing
    korea = NumberPolicy(allowed_country_codes=("82", "1"), denied_prefixes=("8260",))
    assert number_refused("+15551230001", korea, korean_shop) is None
    assert number_refused("+8260123456", korea, korean_shop) is not None
    anywhere = NumberPolicy(allowed_country_codes=("*",))
    assert number_refused("+442071234567", anywhere, US_SHOP) is None
    assert number_refused("+979123456789", anywhere, US_SHOP) is not None  # denied prefixes still apply


def _spec(**changes: Any) -> model.StoreAgentSpec:
    spec = yaml.safe_load(EXAMPLE.read_text())["spec"]
    spec.update(changes)
    return model.parse_spec(spec)


def test_reconcile_refuses_what_the_platform_policy_refuses() -> None:
    policy = TenantPolicy()
    assert model.policy_violations(_spec(), policy) == []
    bad = _spec(webhook={"url": "https://169.254.169.254/hook"},
                providers={"llm": {"name": "openai", "baseUrl": "http://10.0.0.7:8000/v1",
                                   "fallbacks": [{"name": "openai", "baseUrl": "https://kubernetes.default.svc"}]}},
                fallback={"forwardTo": "+19005550000"}, transfer={"staffNumbers": ["+15551239999", "+18765550000"]})
    found = model.policy_violations(bad, policy)
    joined = "\n".join(found)
    for where in ("spec.webhook.url", "spec.providers.llm.baseUrl", "spec.providers.llm.fallbacks[0].baseUrl",
                  "spec.fallback.forwardTo", "spec.transfer.staffNumbers[1]"):
        assert where in joined, joined
    assert "staffNumbers[0]" not in joined


async def test_transfer_tool_never_dials_a_refused_number() -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["spec"]["transfer"] = {"staffNumbers": ["+19005550000"]}  # premium: passed admission (E.164)
    cfg: ShopConfig = shop_config_from_manifest(doc)
    tools = ShopTools(cfg, now=lambda: datetime(2026, 12, 2, 17, 0, tzinfo=UTC), number_policy=NumberPolicy())
    result = await tools.call("transfer_to_staff", "{}")
    assert result.action is None and "cannot be called" in result.content


# ------------------------------------------------------------------------------- connect time (rebinding)
@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Names -> address the (fake) DNS answers now; a test changes it between lookups to rebind."""
    answers: dict[str, str] = {}
    real = asyncio.BaseEventLoop.getaddrinfo

    async def fake(self: Any, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host in answers:
            ip = answers[host]
            fam = socket.AF_INET6 if ipaddress.ip_address(ip).version == 6 else socket.AF_INET
            return [(fam, socket.SOCK_STREAM, 6, "", (ip, int(port or 0)))]
        return await real(self, host, port, *args, **kwargs)

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", fake)
    yield answers


async def test_rebinding_to_loopback_or_metadata_is_refused(dns: dict[str, str]) -> None:
    policy = UrlPolicy(allow_http=True)
    dns["hooks.example.com"] = "93.184.216.34"
    assert await netguard.resolve_checked("hooks.example.com", 443, policy) == [ipaddress.ip_address("93.184.216.34")]
    for rebound in ("169.254.169.254", "127.0.0.1", "10.96.0.1", "::1", "::ffff:127.0.0.1"):
        dns["hooks.example.com"] = rebound
        with pytest.raises(PolicyError):
            await netguard.resolve_checked("hooks.example.com", 443, policy)


async def test_webhook_connects_only_to_the_checked_address(dns: dict[str, str], tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    key = "0123456789abcdef-signing"
    hook = WebhookReceiver(port=free_port(), secret=key.encode())
    await hook.start()
    outbox = await Outbox.open(tmp_path / "o.sqlite", store="s")
    url = f"http://hooks.example.com:{hook.port}/hooks/storeagent"
    dns["hooks.example.com"] = "127.0.0.1"  # the attacker's DNS now points the webhook at the pod itself
    try:
        await outbox.enqueue("message", {"x": 1}, "k1")
        items = await outbox.pending(limit=10)
        strict = WebhookDeliverer(outbox, url, url_policy=UrlPolicy(allow_http=True),
                                  secret=Secret(key, "STOREAGENT_WEBHOOK_SECRET"))
        await strict.start()
        assert [await strict.deliver(i) for i in items] == ["retry"]
        assert hook.wire == []  # refused before any byte was sent
        await strict.stop(drain_timeout_s=0.1)
        # The platform allowlists the network (a local receiver): the same name now delivers, signed.
        allowed = WebhookDeliverer(outbox, url, url_policy=UrlPolicy(allow_http=True, allow_cidrs=("127.0.0.0/8",)),
                                   secret=Secret(key, "STOREAGENT_WEBHOOK_SECRET"))
        await allowed.start()
        assert [await allowed.deliver(i) for i in items] == ["delivered"]
        await allowed.stop(drain_timeout_s=0.1)
        assert len(hook.wire) == 1 and hook.bad_signatures == 0 and hook.wire[0].signature is not None
    finally:
        await outbox.close()
        await hook.stop()
    assert "hooks.example.com" in caplog.text  # the host is logged ...
    assert "/hooks/storeagent" not in caplog.text  # ... never the path (it may hold a receiver's token)


def test_webhook_url_with_credentials_is_refused_and_not_logged(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as e:
        WebhookDeliverer(None, "https://user:hunter2@hooks.example.com/x", url_policy=STRICT)  # type: ignore[arg-type]
    assert "hunter2" not in str(e.value)


async def test_httpx_client_for_openai_connects_only_to_checked_addresses(dns: dict[str, str]) -> None:
    app = web.Application()
    async def models(request: web.Request) -> web.Response:
        return web.json_response({"data": []})

    app.router.add_get("/v1/models", models)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    dns["llm.example.com"] = "127.0.0.1"
    try:
        async with netguard.policy_httpx_client(UrlPolicy(allow_http=True)) as client:
            with pytest.raises(httpx.ConnectError, match="loopback"):
                await client.get(f"http://llm.example.com:{port}/v1/models")
        async with netguard.policy_httpx_client(UrlPolicy(allow_http=True, allow_cidrs=("127.0.0.1/32",))) as c:
            r = await c.get(f"http://llm.example.com:{port}/v1/models")
            assert r.status_code == 200 and json.loads(r.text) == {"data": []}
    finally:
        await runner.cleanup()


async def test_debug_turns_endpoint_is_off_unless_enabled(tmp_path: Path) -> None:
    import aiohttp

    from storeagent.agent.app import AgentApp
    from storeagent.agent.ports import ProviderSet
    from storeagent.agent.providers.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS
    from storeagent.agent.settings import AgentSettings
    from support.agent_harness import bakery

    shop = bakery()
    for enabled, status in ((False, 404), (True, 200)):
        settings = AgentSettings(host="127.0.0.1", esl_port=0, http_port=0, data_dir=tmp_path,
                                 debug_endpoints=enabled)
        providers = ProviderSet(stt=ScriptedSTT(()), llm=ScriptedLLM("ok"), tts=ScriptedTTS())
        app = AgentApp(settings, shop, providers, lambda call: ShopTools(shop))
        await app.start()
        try:
            async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{app.http_port}/v1/debug/turns") as r:
                assert r.status == status, enabled
        finally:
            await app.stop()


def test_agent_reads_the_policy_the_operator_renders() -> None:
    from storeagent.agent.settings import AgentSettings

    policy = TenantPolicy(urls=UrlPolicy(allow_cidrs=("10.20.0.0/16",)),
                          numbers=NumberPolicy(allowed_country_codes=("82",)))  # a platform in Korea
    s = AgentSettings.from_env({"STOREAGENT_TENANT_POLICY": policy.model_dump_json(by_alias=True),
                                "STOREAGENT_DEBUG_ENDPOINTS": "false"})
    assert s.tenant_policy == policy and s.debug_endpoints is False
    assert AgentSettings.from_env({}).tenant_policy == TenantPolicy()  # unset: the strict default


def test_agent_refuses_to_build_providers_against_the_policy() -> None:
    from storeagent.agent.errors import ConfigError
    from storeagent.agent.metrics import AgentMetrics
    from storeagent.agent.providers.factory import build_providers
    from storeagent.agent.secrets import Secrets

    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["spec"]["providers"] = {"llm": {"name": "openai", "baseUrl": "https://10.0.0.7/v1"}}
    cfg = shop_config_from_manifest(doc)
    secrets = Secrets.from_env({"OPENAI_API_KEY": "sk-unit-test-key-987654321"})
    with pytest.raises(ConfigError, match=r"providers\.llm\.baseUrl.*private"):
        build_providers(cfg, AgentMetrics("x"), secrets=secrets, url_policy=STRICT)
    build_providers(cfg, AgentMetrics("y"), secrets=secrets, url_policy=UrlPolicy(allow_cidrs=("10.0.0.0/24",)))


async def test_deepgram_checks_the_resolved_address_before_its_sdk_connects(dns: dict[str, str]) -> None:
    from storeagent.agent.errors import ProviderError
    from storeagent.agent.ports import AudioFormat
    from storeagent.agent.providers.deepgram_stt import DeepgramSTT

    dns["stt.example.com"] = "169.254.169.254"
    stt = DeepgramSTT("dg-unit-test-key-1", base_url="https://stt.example.com", url_policy=STRICT)
    with pytest.raises(ProviderError) as e:
        await stt.open(AudioFormat(8000), "en-US")
    assert e.value.kind == "connect" and not e.value.retryable and "link-local" in str(e.value)


async def test_aiohttp_connector_also_judges_literal_addresses() -> None:
    # aiohttp never asks the resolver about a literal IP (a redirect's Location, a websocket URL).
    import aiohttp

    app = web.Application()
    seen: list[str] = []

    async def ok(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.Response(text="ok")

    app.router.add_get("/", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession(connector=netguard.policy_connector(UrlPolicy(allow_http=True))) as s:
            with pytest.raises(aiohttp.ClientConnectorError):
                await s.get(f"http://127.0.0.1:{port}/")
        assert seen == []  # refused before connecting
        allowed = UrlPolicy(allow_http=True, allow_cidrs=("127.0.0.0/8",))
        async with aiohttp.ClientSession(connector=netguard.policy_connector(allowed)) as s, \
                s.get(f"http://127.0.0.1:{port}/") as r:
            assert r.status == 200 and seen == ["/"]
    finally:
        await runner.cleanup()
