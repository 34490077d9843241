"""Pure desired_* builders: what each shop's objects look like."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from storeagent.operator import model, resources
from storeagent.operator.settings import Settings
from storeagent.policy import TenantPolicy, UrlPolicy
from storeagent.shop import ShopConfig

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sunrise-bakery.yaml"


def shop(**changes: object) -> resources.Shop:
    spec = yaml.safe_load(EXAMPLE.read_text())["spec"]
    spec.update(changes)
    return resources.Shop("sunrise-bakery", "shops", "uid-1", model.parse_spec(spec))


def test_every_object_is_owned_and_labelled() -> None:
    objs = resources.desired_all(shop(), Settings())
    assert [o["kind"] for o in objs] == ["ServiceAccount", "ConfigMap", "Service", "NetworkPolicy",
                                         "PodDisruptionBudget", "Deployment"]
    for o in objs:
        meta = o["metadata"]
        assert meta["namespace"] == "shops"
        assert meta["ownerReferences"] == [{"apiVersion": "storeagent.dev/v1alpha1", "kind": "StoreAgent",
                                            "name": "sunrise-bakery", "uid": "uid-1", "controller": True,
                                            "blockOwnerDeletion": True}]
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "storeagent-operator"


def test_deployment_contract_with_the_agent() -> None:
    s = shop(secretRef={"name": "bakery-keys"}, maxCallSeconds=900)
    dep = resources.desired_deployment(s, Settings(image_tag="1.2.3"))
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["image"] == "ghcr.io/storeagent/agent:1.2.3"
    assert c["command"] == ["storeagent", "agent", "serve"]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"esl": 8084, "http": 8080}
    env = {e["name"]: e for e in c["env"]}
    assert env["STOREAGENT_CONFIG"]["value"] == "/etc/storeagent/shop.yaml"
    assert env["STOREAGENT_MAX_CALLS"]["value"] == "50"
    assert env["STOREAGENT_STREAM_TOKEN_KEY_FILE"]["value"] == "/var/run/storeagent/stream-token/key"
    assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    for key in ("DEEPGRAM_API_KEY", "OPENAI_API_KEY", "ELEVENLABS_API_KEY"):
        assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "bakery-keys", "key": key, "optional": True}
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["terminationGracePeriodSeconds"] == 900 + resources.DRAIN_MARGIN_S
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols["stream-token"]["secret"]["secretName"] == "storeagent-stream-token"
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}


def test_no_provider_keys_without_secret_ref_and_the_image_is_the_platforms() -> None:
    settings = Settings(image_repository="registry.local/agent", image_tag="dev", image_pull_policy="Always")
    c = resources.desired_deployment(shop(), settings)["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "registry.local/agent:dev" and c["imagePullPolicy"] == "Always"
    assert not any(e["name"].endswith("_API_KEY") for e in c["env"])


def test_shops_on_the_speech_service_get_the_slim_image_when_the_platform_has_one() -> None:
    def image(sh: resources.Shop, settings: Settings) -> str:
        return str(resources.desired_deployment(sh, settings)["spec"]["template"]["spec"]["containers"][0]["image"])

    speech = shop(providers={"stt": {"name": "speech"}, "tts": {"name": "speech"}})
    half = shop(providers={"stt": {"name": "speech"}})  # TTS still in-process (piper): the full image
    platform = Settings(image_tag="2.0", slim_image_repository="registry.local/agent-slim", slim_image_tag="2.0",
                        speech_url="ws://speech.storeagent-system.svc:8090")
    assert image(speech, platform) == "registry.local/agent-slim:2.0"
    assert image(half, platform) == image(shop(), platform) == "ghcr.io/storeagent/agent:2.0"
    # no speech service configured: the shop's chain is in-process, so it needs the models
    assert image(speech, Settings(image_tag="2.0", slim_image_repository="registry.local/agent-slim")).endswith(
        "/agent:2.0")
    # no slim image configured: every shop gets the agent image
    assert image(speech, Settings(image_tag="2.0", speech_url="ws://s:8090")) == "ghcr.io/storeagent/agent:2.0"


def test_a_tenant_cannot_choose_the_image() -> None:
    with pytest.raises(ValidationError, match="image"):
        shop(image={"repository": "evil.example/miner", "tag": "latest"})


def test_configmap_is_the_agent_config_and_changes_roll_the_pods() -> None:
    cm = resources.desired_configmap(shop())
    cfg = ShopConfig.model_validate(yaml.safe_load(cm["data"]["shop.yaml"]))
    assert cfg.store == "sunrise-bakery" and cfg.profile.name == "Sunrise Bakery"
    a = resources.desired_deployment(shop(), Settings())
    b = resources.desired_deployment(shop(language="fr-FR"), Settings())
    key = resources.CONFIG_HASH
    def h(d: dict[str, Any]) -> str:
        return str(d["spec"]["template"]["metadata"]["annotations"][key])

    assert h(a) != h(b)


def test_network_policy_admits_only_freeswitch_prometheus_and_operator() -> None:
    np = resources.desired_network_policy(shop(), Settings(freeswitch_namespace="telephony"))
    assert np["spec"]["policyTypes"] == ["Ingress", "Egress"]
    rules = np["spec"]["ingress"]
    assert len(rules) == 3
    fs = rules[0]["from"][0]
    assert fs["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "telephony"}}
    assert {p["port"] for p in rules[0]["ports"]} == {8084, 8080}
    assert [p["port"] for p in rules[1]["ports"]] == [8080]


def test_service_account_has_no_token_and_pdb_never_blocks_drains() -> None:
    assert resources.desired_service_account(shop())["automountServiceAccountToken"] is False
    assert resources.desired_pdb(shop())["spec"]["maxUnavailable"] == 1


def test_egress_is_dns_and_public_networks_only() -> None:
    settings = Settings(tenant_policy=TenantPolicy(urls=UrlPolicy(allow_cidrs=("10.20.0.0/16",))))
    egress = resources.desired_network_policy(shop(), settings)["spec"]["egress"]
    dns, nets = egress
    assert dns["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                          "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]
    assert sorted((p["protocol"], p["port"]) for p in dns["ports"]) == [("TCP", 53), ("UDP", 53)]
    v4, v6, allowed = nets["to"]
    assert v4["ipBlock"]["cidr"] == "0.0.0.0/0"
    # The cluster's pods and services, the node and the cloud metadata endpoint are not reachable...
    for private in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "127.0.0.0/8",
                    "100.64.0.0/10"):
        assert private in v4["ipBlock"]["except"]
    assert v6["ipBlock"] == {"cidr": "::/0", "except": ["fc00::/7", "fe80::/10", "::1/128"]}
    # ... except what the platform's URL policy allowlists (an in-cluster model server).
    assert allowed == {"ipBlock": {"cidr": "10.20.0.0/16"}}


def test_data_volume_drain_and_debug_settings_reach_the_pod() -> None:
    dep = resources.desired_deployment(shop(maxCallSeconds=900), Settings())
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["STOREAGENT_DATA_DIR"] == "/var/lib/storeagent"
    grace = pod["terminationGracePeriodSeconds"]
    # Calls drain first, then the outbox, all before the kubelet's SIGKILL at the grace period.
    assert int(env["STOREAGENT_DRAIN_SECONDS"]) == grace - resources.EXIT_MARGIN_S == 900 + 30 - 15
    assert "STOREAGENT_DEBUG_ENDPOINTS" not in env
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols["data"] == {"name": "data", "emptyDir": {"sizeLimit": "1Gi"}}
    assert {"name": "data", "mountPath": "/var/lib/storeagent"} in c["volumeMounts"]
    policy = TenantPolicy.model_validate_json(env["STOREAGENT_TENANT_POLICY"] or "")
    assert policy == TenantPolicy()

    dep = resources.desired_deployment(shop(), Settings(agent_data_claim="{store}-outbox", agent_debug_endpoints=True))
    pod = dep["spec"]["template"]["spec"]
    assert {v["name"]: v for v in pod["volumes"]}["data"] == {
        "name": "data", "persistentVolumeClaim": {"claimName": "sunrise-bakery-outbox"}}
    assert {"name": "STOREAGENT_DEBUG_ENDPOINTS", "value": "true"} in pod["containers"][0]["env"]


def test_webhook_signing_secret_is_mounted_as_a_file_not_put_in_the_configmap() -> None:
    s = shop(webhook={"url": "https://hooks.example.com/x", "signingSecretRef": {"name": "bakery.hook", "key": "k"}})
    pod = resources.desired_deployment(s, Settings())["spec"]["template"]["spec"]
    c = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["STOREAGENT_WEBHOOK_SECRET_FILE"] == "/var/run/storeagent/webhook/secret"
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols["webhook-secret"]["secret"] == {"secretName": "bakery.hook", "items": [{"key": "k", "path": "secret"}]}
    assert {"name": "webhook-secret", "mountPath": "/var/run/storeagent/webhook", "readOnly": True} in c["volumeMounts"]
    without = resources.desired_deployment(shop(webhook={"url": "https://hooks.example.com/x"}), Settings())
    assert "STOREAGENT_WEBHOOK_SECRET_FILE" not in {e["name"] for e in without["spec"]["template"]["spec"][
        "containers"][0]["env"]}
