"""StoreAgent lifecycle on a real control plane: create -> Ready with Running pods and live stats from a real agent
process in real calls, a spec change rolls the Deployment and rewrites the dialplan, a hand edit is reverted, deletion
cleans everything up."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from storeagent.operator import dialplan
from storeagent.shop import ShopConfig
from support.agent_process import AgentProcess, answered_call, end_call, take_turn
from support.operator_env import (
    SYSTEM_NS,
    condition,
    create_namespace,
    get_or_none,
    storeagent_path,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sunrise-bakery.yaml"
NS = "shop-lifecycle"
NAME = "sunrise-bakery"


def example(name: str = NAME, namespace: str = NS) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    doc["metadata"] = {"name": name, "namespace": namespace}
    return doc


def dialplan_file(cp: Any, namespace: str, name: str) -> str | None:
    cm = get_or_none(cp, f"/api/v1/namespaces/{SYSTEM_NS}/configmaps/"
                         f"{dialplan.configmap_name(dialplan.shard_of(namespace, name))}")
    return ((cm or {}).get("data") or {}).get(dialplan.file_key(namespace, name))


def deployment(cp: Any) -> dict[str, Any] | None:
    return get_or_none(cp, f"/apis/apps/v1/namespaces/{NS}/deployments/{NAME}")


def ready(cp: Any, ns: str, name: str) -> dict[str, Any] | None:
    obj = get_or_none(cp, storeagent_path(ns, name))
    c = condition(obj, "Ready")
    gen_ok = obj is not None and (obj.get("status") or {}).get("observedGeneration") == obj["metadata"]["generation"]
    return obj if c is not None and c["status"] == "True" and gen_ok else None


@pytest.fixture(scope="module")
def shop(operator: Any) -> Any:
    cp = operator.cp
    create_namespace(cp, NS)
    cp.kubectl("apply", "-f", "-", input=json.dumps(example()))
    return cp


def test_create_becomes_ready_with_running_pods(shop: Any, operator: Any) -> None:
    cp = shop
    # What a platform team types: kubectl wait on the Ready condition.
    wait_for(lambda: ready(cp, NS, NAME), 120, "StoreAgent Ready")
    cp.kubectl("wait", "--for=condition=Ready", f"storeagent/{NAME}", "-n", NS, "--timeout=30s")
    pods = cp.request("GET", f"/api/v1/namespaces/{NS}/pods?labelSelector=storeagent.dev/store%3D{NAME}")["items"]
    running = [p for p in pods if p["status"].get("phase") == "Running"
               and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))]
    assert len(running) == 2, [p["status"] for p in pods]

    dep = deployment(cp)
    assert dep is not None
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["command"] == ["storeagent", "agent", "serve"]
    env = {e["name"]: e for e in c["env"]}
    assert env["STOREAGENT_MAX_CALLS"]["value"] == "50"
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["terminationGracePeriodSeconds"] >= 600  # maxCallSeconds default + drain margin
    for path in (f"/api/v1/namespaces/{NS}/services/{NAME}",
                 f"/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies/{NAME}",
                 f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/{NAME}"):
        assert get_or_none(cp, path) is not None, path
    sa = cp.request("GET", f"/api/v1/namespaces/{NS}/serviceaccounts/{NAME}-agent")
    assert sa["automountServiceAccountToken"] is False
    cm = cp.request("GET", f"/api/v1/namespaces/{NS}/configmaps/{NAME}-config")
    cfg = ShopConfig.model_validate(yaml.safe_load(cm["data"]["shop.yaml"]))
    assert cfg.store == NAME and cfg.phone_numbers == ["+15551230001"]

    xml = dialplan_file(cp, NS, NAME)
    assert xml is not None
    socket_at = xml.index(f'data="{NAME}.{NS}.svc.cluster.local:8084 async full"')
    assert "send_silence_when_idle" not in xml
    assert xml.index('application="bridge"') > socket_at  # the fallback follows the socket
    assert operator.esl.reloads >= 1

    table = cp.kubectl("get", "storeagents", "-n", NS).stdout
    assert "+15551230001" in table and "True" in table


async def test_status_carries_live_calls_and_latency_from_the_agent(shop: Any, agent_process: AgentProcess) -> None:
    """Real calls into a real agent process; the operator's stats timer carries them into the status."""
    cp = shop
    total_before = agent_process.stats()["calls_total"]
    # One finished call with a turn: the agent records voice-to-voice latency when a call ends.
    first = await answered_call(agent_process)
    try:
        await take_turn(first, agent_process)
    finally:
        await end_call(first)

    def recorded() -> dict[str, Any] | None:
        got = agent_process.stats()
        return got if got["calls_total"] > total_before else None

    agent = await asyncio.to_thread(wait_for, recorded, 30, "the call recorded by the agent")
    v2v = agent["voice_to_voice_ms"]
    assert v2v["count"] >= 1 and v2v["p50"] > 0 and v2v["p95"] >= v2v["p50"], agent

    # A second call stays open while the operator's timer reads the agent.
    live = await answered_call(agent_process)
    try:
        agent = agent_process.stats()
        assert agent["calls_active"] == 1 and agent["voice_to_voice_ms"] == v2v, agent

        def status() -> dict[str, Any] | None:
            st = (get_or_none(cp, storeagent_path(NS, NAME)) or {}).get("status") or {}
            return st if st.get("callsActive") == 1 and st.get("callsTotal") == agent["calls_total"] else None

        st = await asyncio.to_thread(wait_for, status, 60, "the live call in the status")
        assert st["voiceToVoice"] == {"p50Ms": v2v["p50"], "p95Ms": v2v["p95"]}
        assert st["readyReplicas"] == 2
        table = (await asyncio.to_thread(cp.kubectl, "get", "stag", NAME, "-n", NS)).stdout
        header, row = table.splitlines()[:2]
        columns = dict(zip(header.split(), row.split(), strict=False))
        assert columns.get("CALLS") == "1" and columns.get("P95-MS") == f"{v2v['p95']:g}", table
    finally:
        await end_call(live)

    def hung_up() -> dict[str, Any] | None:
        st = (get_or_none(cp, storeagent_path(NS, NAME)) or {}).get("status") or {}
        return st if st.get("callsActive") == 0 and st.get("callsTotal") == agent["calls_total"] + 1 else None

    await asyncio.to_thread(wait_for, hung_up, 60, "the hung-up call leaving the status")


def test_spec_change_rolls_deployment_and_updates_dialplan(shop: Any) -> None:
    cp = shop
    before = deployment(cp)
    assert before is not None
    doc = example()
    doc["spec"]["phoneNumbers"] = ["+15551230001", "+15551230002"]
    doc["spec"]["scaling"]["maxCallsPerPod"] = 60
    cp.kubectl("apply", "-f", "-", input=json.dumps(doc))

    def rolled() -> dict[str, Any] | None:
        dep = deployment(cp)
        if dep is None:
            return None
        env = {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
        return dep if env["STOREAGENT_MAX_CALLS"] == "60" else None

    after = wait_for(rolled, 60, "Deployment template updated")
    assert after["metadata"]["generation"] > before["metadata"]["generation"]
    key = "storeagent.dev/config-hash"
    assert (after["spec"]["template"]["metadata"]["annotations"][key]
            != before["spec"]["template"]["metadata"]["annotations"][key])
    wait_for(lambda: "15551230002" in (dialplan_file(cp, NS, NAME) or ""), 60, "new number in the dialplan")
    obj = wait_for(lambda: ready(cp, NS, NAME), 120, "Ready again after the roll")
    assert obj["status"]["phoneNumbers"] == "+15551230001,+15551230002"
    # The roll really happened: the new ReplicaSet owns all ready pods.
    dep = deployment(cp)
    assert dep is not None and dep["status"].get("updatedReplicas") == 2


def test_hand_edit_of_deployment_is_reverted(shop: Any) -> None:
    cp = shop
    wait_for(lambda: ready(cp, NS, NAME), 120, "Ready before the edit")
    hand = {"spec": {"replicas": 5, "template": {"spec": {"containers": [
        {"name": "agent", "image": "registry.invalid/someone-else:latest"}]}}}}
    cp.kubectl("patch", "deployment", NAME, "-n", NS, "--type=strategic", "-p", json.dumps(hand))

    def reverted() -> bool:
        dep = deployment(cp)
        assert dep is not None
        img = dep["spec"]["template"]["spec"]["containers"][0]["image"]
        return dep["spec"]["replicas"] == 2 and img.startswith("ghcr.io/storeagent/agent:")

    wait_for(reverted, 60, "hand edit reverted")


def test_deletion_removes_dialplan_and_children(shop: Any, operator: Any) -> None:
    cp = shop
    name = "to-delete"
    doc = copy.deepcopy(example(name))
    doc["spec"]["phoneNumbers"] = ["+15551238800"]
    doc["spec"]["fallback"] = {"playback": "ivr/ivr-please_try_again_later.wav"}
    cp.kubectl("apply", "-f", "-", input=json.dumps(doc))
    obj = wait_for(lambda: ready(cp, NS, name), 120, "second shop Ready")
    assert "storeagent.dev/dialplan" in obj["metadata"]["finalizers"]
    assert "15551238800" in (dialplan_file(cp, NS, name) or "")
    reloads = operator.esl.reloads
    cp.kubectl("delete", "storeagent", name, "-n", NS, "--timeout=60s")
    assert get_or_none(cp, storeagent_path(NS, name)) is None
    assert dialplan_file(cp, NS, name) is None
    assert operator.esl.reloads > reloads
    wait_for(lambda: get_or_none(cp, f"/apis/apps/v1/namespaces/{NS}/deployments/{name}") is None, 90,
             "Deployment garbage-collected")
    wait_for(lambda: get_or_none(cp, f"/api/v1/namespaces/{NS}/configmaps/{name}-config") is None, 90,
             "ConfigMap garbage-collected")
    # The other shop's file is untouched.
    assert "15551230001" in (dialplan_file(cp, NS, NAME) or "")
