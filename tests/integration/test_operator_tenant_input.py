"""Tenant input on a real control plane with the operator running under the chart's RBAC: what admission
cannot know (the platform's URL and number policy) is refused at reconcile with a condition naming the
field, before any pod or dialplan exists; what is admitted renders into a dialplan with no FreeSWITCH
expansion syntax and a pod with the platform's image, egress policy, data volume and drain time."""

from __future__ import annotations

import json
from typing import Any

import pytest

from storeagent.operator import dialplan
from support.operator_env import SYSTEM_NS, condition, create_namespace, get_or_none, storeagent_path, wait_for

pytestmark = [pytest.mark.integration]
NS = "tenant-input"


def shop(name: str, number: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "storeagent.dev/v1alpha1", "kind": "StoreAgent",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"phoneNumbers": [number], "profile": {"name": name.title()},
                 "fallback": {"forwardTo": "+15557779999"}, "scaling": {"replicas": 1, "maxCallsPerPod": 5}, **spec},
    }


def ready_false(cp: Any, name: str) -> dict[str, Any] | None:
    obj = get_or_none(cp, storeagent_path(NS, name))
    c = condition(obj, "Ready")
    return c if c is not None and c["status"] == "False" and c["reason"] == "InvalidSpec" else None


def dialplan_file(cp: Any, name: str) -> str | None:
    cm = get_or_none(cp, f"/api/v1/namespaces/{SYSTEM_NS}/configmaps/"
                         f"{dialplan.configmap_name(dialplan.shard_of(NS, name))}")
    return ((cm or {}).get("data") or {}).get(dialplan.file_key(NS, name))


# (shop name, spec changes, words the Ready condition must contain)
REFUSED = [
    ("hook-metadata", {"webhook": {"url": "https://169.254.169.254/latest/meta-data"}},
     ("spec.webhook.url", "link-local")),
    ("hook-apiserver", {"webhook": {"url": "https://kubernetes.default.svc/api"}}, ("spec.webhook.url", "internal")),
    ("hook-http", {"webhook": {"url": "http://hooks.example.com/x"}}, ("spec.webhook.url", "https")),
    ("llm-private", {"providers": {"llm": {"name": "openai", "baseUrl": "https://10.0.0.7/v1"}}},
     ("spec.providers.llm.baseUrl", "private")),
    ("forward-premium", {"fallback": {"forwardTo": "+19005550100"}}, ("spec.fallback.forwardTo", "+1900")),
    ("staff-jamaica", {"transfer": {"staffNumbers": ["+18765550100"]}}, ("spec.transfer.staffNumbers[0]", "+1876")),
    ("staff-satellite", {"transfer": {"staffNumbers": ["+881612345678"]}}, ("spec.transfer.staffNumbers[0]", "+881")),
]


def test_policy_violations_get_no_pods_and_no_dialplan(operator: Any) -> None:
    cp = operator.cp
    create_namespace(cp, NS)
    for i, (name, changes, _) in enumerate(REFUSED):
        cp.kubectl("apply", "-f", "-", input=json.dumps(shop(name, f"+1555440{i:04d}", **changes)))
    for name, _, words in REFUSED:
        c = wait_for(lambda n=name: ready_false(cp, n), 60, f"{name}: Ready=False InvalidSpec")
        for w in words:
            assert w in c["message"], (name, w, c["message"])
        assert get_or_none(cp, f"/apis/apps/v1/namespaces/{NS}/deployments/{name}") is None, name
        assert dialplan_file(cp, name) is None, name


def test_admitted_shop_renders_safely_with_platform_decisions(operator: Any) -> None:
    cp = operator.cp
    create_namespace(cp, NS)
    name = "safe-shop"
    doc = shop(name, "+15554401000", fallback={"playback": "shops/safe/closed.wav"},
               webhook={"url": "https://hooks.example.com/t/abc",
                        "signingSecretRef": {"name": "safe.hook-secret", "key": "hmac"}},
               maxCallSeconds=300)
    cp.kubectl("apply", "-f", "-", input=json.dumps(doc))
    xml = wait_for(lambda: dialplan_file(cp, name), 60, "dialplan written")
    assert "${" not in xml and "$${" not in xml and "x-pre-process" not in xml.lower()
    assert 'data="shops/safe/closed.wav"' in xml
    dep = wait_for(lambda: get_or_none(cp, f"/apis/apps/v1/namespaces/{NS}/deployments/{name}"), 60, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["image"].startswith("ghcr.io/storeagent/agent:")  # the platform's image
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["STOREAGENT_DATA_DIR"] == "/var/lib/storeagent"
    assert int(env["STOREAGENT_DRAIN_SECONDS"]) < pod["terminationGracePeriodSeconds"] == 330
    assert env["STOREAGENT_WEBHOOK_SECRET_FILE"] == "/var/run/storeagent/webhook/secret"
    assert "STOREAGENT_DEBUG_ENDPOINTS" not in env and json.loads(env["STOREAGENT_TENANT_POLICY"])["urls"]
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols["webhook-secret"]["secret"]["secretName"] == "safe.hook-secret"
    assert "emptyDir" in vols["data"]
    np = wait_for(lambda: get_or_none(cp, f"/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies/{name}"),
                  60, "NetworkPolicy")
    assert np["spec"]["policyTypes"] == ["Ingress", "Egress"]
    blocks = [b["ipBlock"] for rule in np["spec"]["egress"] for b in rule["to"] if "ipBlock" in b]
    v4 = next(b for b in blocks if b["cidr"] == "0.0.0.0/0")
    assert "169.254.0.0/16" in v4["except"] and "10.0.0.0/8" in v4["except"]
