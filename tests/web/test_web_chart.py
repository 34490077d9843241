"""The chart's web deployable (helm template): off by default; when on, a Deployment running `storeagent web
serve`, its Service and ServiceMonitor, and Roles on StoreAgents only in the shops' namespaces."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from support.helm import CI_VALUES, find, one, pod_spec
from support.helm import render as helm_render

pytestmark = pytest.mark.integration
DEFAULT = [p for p in CI_VALUES if p.name == "default-values.yaml"]


def render(sets: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return helm_render(DEFAULT, sets)
ON = {"web.enabled": True, "web.publicUrl": "https://owners.example.com",
      "web.shops": ["bakeries.sunrise-bakery", "bakeries.corner-cafe", "chicken.gangnam-chicken"],
      "web.webhookSecretName": "web-webhook-keys",
      "web.agentUrls": {"bakeries.sunrise-bakery": "http://sunrise-bakery.bakeries.svc:8080"},
      "monitoring.serviceMonitor.enabled": True}


def test_the_web_is_off_by_default() -> None:
    assert not [o for o in render() if "web" in o["metadata"]["name"].split("-")]


def test_the_web_deployable_renders_with_storeagent_rights_only() -> None:
    objs = render(sets=ON)
    dep = one(objs, "Deployment", "-web")
    c = pod_spec(dep)["containers"][0]
    assert c["command"] == ["storeagent", "web", "serve"]
    args = c["args"]
    assert "--shop=bakeries.sunrise-bakery" in args and "--public-url=https://owners.example.com" in args
    assert "--webhook-secret-file=chicken.gangnam-chicken=/var/run/storeagent/webhook/chicken.gangnam-chicken" in args
    assert "--agent=bakeries.sunrise-bakery=http://sunrise-bakery.bakeries.svc:8080" in args
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate"  # SQLite: one writer
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert one(objs, "Service", "-web")["spec"]["ports"][0]["name"] == "http"
    assert one(objs, "ServiceMonitor", "-web")["spec"]["endpoints"][0]["path"] == "/metrics"
    roles = find(objs, "Role", "-web")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["bakeries", "chicken"]
    for r in roles:
        assert r["rules"] == [{"apiGroups": ["storeagent.dev"], "resources": ["storeagents"],
                               "verbs": ["get", "list", "watch", "update", "patch"]}]
    assert not find(objs, "ClusterRole", "-web")
    binding = find(objs, "RoleBinding", "-web")
    assert {b["subjects"][0]["name"] for b in binding} == {pod_spec(dep)["serviceAccountName"]}


def test_postgresql_allows_replicas_and_sqlite_does_not() -> None:
    dep = one(render(sets={**ON, "web.replicas": 3, "web.database.secretName": "web-db"}), "Deployment", "-web")
    assert dep["spec"]["replicas"] == 3
    env = pod_spec(dep)["containers"][0]["env"][0]
    assert env["valueFrom"]["secretKeyRef"] == {"name": "web-db", "key": "url"}
    assert one(render(sets={**ON, "web.replicas": 3}), "Deployment", "-web")["spec"]["replicas"] == 1


def test_bad_web_values_are_refused() -> None:
    for bad in ({"web.shops": ["no-dot"]}, {"web.publicUrl": "javascript:alert(1)"}, {"web.bogus": 1}):
        with pytest.raises((subprocess.CalledProcessError, AssertionError)):
            render(sets={**ON, **bad})
    with pytest.raises((subprocess.CalledProcessError, AssertionError), match=r"web\.publicUrl is required"):
        render(sets={**ON, "web.publicUrl": ""})  # invitation links need it
