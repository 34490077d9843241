"""Number conflicts between shops, an operator killed mid-reconcile, and the operator's RBAC boundary."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from storeagent.operator import dialplan
from support.operator_env import (
    SYSTEM_NS,
    condition,
    create_namespace,
    get_or_none,
    storeagent_path,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def shop(ns: str, name: str, numbers: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "storeagent.dev/v1alpha1", "kind": "StoreAgent",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"phoneNumbers": numbers, "profile": {"name": name.title()},
                 "fallback": {"playback": "ivr/ivr-please_try_again_later.wav"},
                 "scaling": {"replicas": 1, "maxCallsPerPod": 5}},
    }


def dialplan_file(cp: Any, ns: str, name: str) -> str | None:
    cm = get_or_none(cp, f"/api/v1/namespaces/{SYSTEM_NS}/configmaps/"
                         f"{dialplan.configmap_name(dialplan.shard_of(ns, name))}")
    return ((cm or {}).get("data") or {}).get(dialplan.file_key(ns, name))


def cond(cp: Any, ns: str, name: str, type_: str) -> dict[str, Any] | None:
    return condition(get_or_none(cp, storeagent_path(ns, name)), type_)


def events(cp: Any, ns: str, name: str, reason: str) -> list[str]:
    items = cp.request("GET", f"/api/v1/namespaces/{ns}/events?fieldSelector=involvedObject.name%3D{name}")["items"]
    return [e["message"] for e in items if e.get("reason") == reason]


def is_ready(cp: Any, ns: str, name: str) -> bool:
    obj = get_or_none(cp, storeagent_path(ns, name))
    c = condition(obj, "Ready")
    return bool(c and c["status"] == "True" and obj
                and obj["status"].get("observedGeneration") == obj["metadata"]["generation"])


def test_number_conflict_reported_on_both_and_never_taken_over(operator: Any) -> None:
    cp = operator.cp
    for ns in ("conflict-a", "conflict-b"):
        create_namespace(cp, ns)
    shared = "+15556660001"
    cp.kubectl("apply", "-f", "-", input=json.dumps(shop("conflict-a", "first", [shared, "+15556660002"])))
    wait_for(lambda: is_ready(cp, "conflict-a", "first"), 120, "first shop Ready")
    cp.kubectl("apply", "-f", "-", input=json.dumps(shop("conflict-b", "second", [shared, "+15556660003"])))

    def conflict(ns: str, name: str, type_: str) -> dict[str, Any] | None:
        c = cond(cp, ns, name, type_)
        return c if c and c["reason"] == "NumberConflict" else None

    lost = wait_for(lambda: conflict("conflict-b", "second", "DialplanSynced"), 90, "conflict on the newer shop")
    assert lost["status"] == "False" and shared in lost["message"] and "conflict-a/first" in lost["message"]
    assert cond(cp, "conflict-b", "second", "Ready")["status"] == "False"  # type: ignore[index]
    kept = wait_for(lambda: conflict("conflict-a", "first", "Degraded"), 90,
                    "conflict reported on the shop that keeps the number")
    assert shared in kept["message"] and "conflict-b/second" in kept["message"]
    # The first shop keeps answering: still Ready, still routes the number; the second routes only its own.
    assert is_ready(cp, "conflict-a", "first")
    assert "15556660001" in (dialplan_file(cp, "conflict-a", "first") or "")
    second = dialplan_file(cp, "conflict-b", "second") or ""
    assert "15556660003" in second and "15556660001" not in second
    wait_for(lambda: events(cp, "conflict-a", "first", "NumberConflict"), 60, "event on the first shop")
    wait_for(lambda: events(cp, "conflict-b", "second", "NumberConflict"), 60, "event on the second shop")

    # When the holder goes away, the number passes to the next claimant and both conditions clear.
    cp.kubectl("delete", "storeagent", "first", "-n", "conflict-a", "--timeout=60s")
    wait_for(lambda: "15556660001" in (dialplan_file(cp, "conflict-b", "second") or ""), 90,
             "number handed to the remaining claimant")
    wait_for(lambda: is_ready(cp, "conflict-b", "second"), 120, "second shop Ready once the conflict is gone")


def test_operator_killed_mid_reconcile_converges_without_duplicates(operator: Any) -> None:
    cp = operator.cp
    ns = "restart"
    create_namespace(cp, ns)
    names = [f"shop-{i}" for i in range(5)]
    docs = [shop(ns, n, [f"+1555444{i:04d}"]) for i, n in enumerate(names)]
    cp.kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(d) for d in docs))
    # Kill as soon as the first child exists: the other shops are somewhere between nothing and half done.
    wait_for(lambda: cp.request("GET", f"/apis/apps/v1/namespaces/{ns}/deployments")["items"], 60,
             "first Deployment")
    operator.proc.kill()
    # A change made while the operator is down is picked up after the restart.
    docs[0]["spec"]["scaling"]["maxCallsPerPod"] = 7
    cp.kubectl("apply", "-f", "-", input=json.dumps(docs[0]))
    time.sleep(1)
    operator.proc.start()
    for n in names:
        wait_for(lambda n=n: is_ready(cp, ns, n), 180, f"{n} Ready after restart")

    for kind, path in (("deployments", "/apis/apps/v1"), ("services", "/api/v1"), ("configmaps", "/api/v1"),
                       ("serviceaccounts", "/api/v1"), ("poddisruptionbudgets", "/apis/policy/v1"),
                       ("networkpolicies", "/apis/networking.k8s.io/v1")):
        items = cp.request("GET", f"{path}/namespaces/{ns}/{kind}?labelSelector=app.kubernetes.io/managed-by"
                                  "%3Dstoreagent-operator")["items"]
        assert sorted(i["metadata"]["labels"]["storeagent.dev/store"] for i in items) == names, kind
    pods = cp.request("GET", f"/api/v1/namespaces/{ns}/pods")["items"]
    running = [p for p in pods if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]
    assert len(running) == len(names)  # one replica each, none doubled
    for i, n in enumerate(names):
        xml = dialplan_file(cp, ns, n) or ""
        assert len(re.findall(r"<extension ", xml)) == 1 and f"1555444{i:04d}" in xml
    dep = cp.request("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/shop-0")
    env = {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["STOREAGENT_MAX_CALLS"] == "7"
    finalizers = cp.request("GET", storeagent_path(ns, "shop-0"))["metadata"]["finalizers"]
    assert finalizers.count("storeagent.dev/dialplan") == 1


def test_rbac_is_enough_and_no_more(operator: Any) -> None:
    """Everything above ran under the chart's rules; here calls outside them are really refused."""
    cp = operator.cp
    sa = operator.kubeconfig
    forbidden = [
        ("get", "secrets", "-A"),
        ("get", "secrets", "-n", SYSTEM_NS),
        ("delete", "deployment", "shop-1", "-n", "restart"),
        ("create", "clusterrolebinding", "escalate", "--clusterrole=cluster-admin",
         f"--serviceaccount={SYSTEM_NS}:storeagent-operator"),
        ("delete", "pods", "--all", "-n", "restart"),
        ("create", "namespace", "operator-made"),
    ]
    for args in forbidden:
        out = cp.kubectl(*args, kubeconfig=sa, check=False)
        assert out.returncode != 0 and "forbidden" in out.stderr.lower(), (args, out.stderr)
    # ...while the calls the operator makes are allowed to it.
    for verb_resource in (("list", "storeagents.storeagent.dev"), ("watch", "deployments.apps"),
                          ("patch", "configmaps"), ("create", "services"), ("list", "pods")):
        out = cp.kubectl("auth", "can-i", *verb_resource, "-A", kubeconfig=sa, check=False)
        assert out.stdout.strip() == "yes", verb_resource
    for verb_resource in (("get", "secrets"), ("update", "deployments.apps"), ("delete", "configmaps"),
                          ("patch", "pods"), ("create", "roles.rbac.authorization.k8s.io")):
        out = cp.kubectl("auth", "can-i", *verb_resource, "-A", kubeconfig=sa, check=False)
        assert out.stdout.strip() == "no", verb_resource
