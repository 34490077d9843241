"""The chart and the operator on a real kubelet: the images `make images` built, the pods the operator renders.

`helm install` (built images, chart defaults for the references) -> the operator pod runs -> `kubectl apply` of
examples/sunrise-bakery.yaml -> the agent pods the operator rendered run (probes, user 10001, read-only root, data
volume written by the agent) -> a loopback call to a pod's address is answered with the shop's facts -> the
status shows the live call and the latency read from the pod -> a pod deleted during a call drains (the call goes
on, no new call is taken, the pod exits long before its grace period) and its replacement serves the next call ->
a spec change rolls the pods. Ordered: each test builds on the state the previous one left.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from storeagent.agent.loopback.caller import LoopbackCall
from storeagent.agent.loopback.demo import Question, script_for, synthesize
from storeagent.agent.providers.offline_tts import EspeakTTS
from storeagent.shop import ShopConfig, shop_config_from_manifest
from support.helm import CHART, helm
from support.node import Node
from support.operator_env import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "sunrise-bakery.yaml"
NS, SYSTEM_NS, NAME, RELEASE = "shops", "storeagent-system", "sunrise-bakery", "sa"
SPEECH_SHOP, SPEECH_PORT = "sunrise-speech", 8090
ESL, HTTP = 8084, 8080
TURN_S = 90  # one caller turn on a loaded 2-core machine (STT + answer + TTS in a pod)
# The demo's rate: at 8 kHz the offline STT hears "what are you on" for the Saturday question (the phone-band
# quality work of issue 13); this tier tests the pod, not recognition.
RATE = 16000


def kube_json(node: Node, *args: str) -> Any:
    return json.loads(node.cp.kubectl(*args, "-o", "json").stdout)


def ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def agent_pods(node: Node, name: str = NAME) -> list[dict[str, Any]]:
    pods: list[dict[str, Any]] = kube_json(node, "-n", NS, "get", "pods", "-l", f"storeagent.dev/store={name}")["items"]
    return pods


def ready_agents(node: Node, want: int, name: str = NAME) -> list[dict[str, Any]] | None:
    """`want` Ready agent pods not being deleted; a container that restarted fails the test at once, with its log."""
    everyone = agent_pods(node, name)
    for p in everyone:
        for st in p["status"].get("containerStatuses", []):
            if st.get("restartCount", 0) > 0:
                pod = p["metadata"]["name"]
                log = node.cp.kubectl("-n", NS, "logs", pod, "--previous", check=False)
                raise AssertionError(f"agent container of {pod} restarted: {st}\n{log.stdout[-4000:]}{log.stderr}")
    pods = [p for p in everyone if ready(p) and not p["metadata"].get("deletionTimestamp")]
    return pods if len(pods) == want else None


def status(node: Node, name: str = NAME) -> dict[str, Any]:
    st: dict[str, Any] = kube_json(node, "-n", NS, "get", "storeagent", name).get("status") or {}
    return st


def metric(url: str, name: str, **labels: str) -> float:
    """One sample of a Prometheus text exposition (0 when absent: a labelled counter not yet incremented)."""
    with urllib.request.urlopen(url, timeout=5) as r:
        body = r.read().decode()
    for line in body.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            head, _, value = line.rpartition(" ")
            got = dict(re.findall(r'(\w+)="([^"]*)"', head))
            if all(got.get(k) == v for k, v in labels.items()):
                return float(value)
    return 0.0


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return e.code


def container_pid(node: Node, pod: dict[str, Any]) -> int:
    cid = pod["status"]["containerStatuses"][0]["containerID"].removeprefix("containerd://")
    for line in node.host.ctr("tasks", "ls").stdout.splitlines()[1:]:
        task, pid, *_ = line.split()
        if task == cid:
            return int(pid)
    raise AssertionError(f"no task for container {cid}")


def outbox_path(node: Node, pod: dict[str, Any]) -> Path:
    root = node.host.base / "kubelet" / "root" / "pods" / pod["metadata"]["uid"]
    return root / "volumes" / "kubernetes.io~empty-dir" / "data" / "outbox.sqlite"


def call_records(path: Path) -> list[dict[str, Any]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        rows = db.execute("SELECT body FROM outbox WHERE kind = 'call_record' ORDER BY id").fetchall()
    finally:
        db.close()
    return [json.loads(r[0]) for r in rows]


def pod_log(node: Node, pod: dict[str, Any]) -> str:
    """The pod's (only) container's log as the kubelet wrote it (what `kubectl logs` serves)."""
    m, container = pod["metadata"], pod["spec"]["containers"][0]["name"]
    logs = sorted((node.host.base / "pod-logs").glob(f"{m['namespace']}_{m['name']}_{m['uid']}/{container}/*.log"))
    return "".join(p.read_text(errors="replace") for p in logs)


def hours_question(shop: ShopConfig) -> Question:
    """A plainly worded question whose answer carries the manifest's Saturday hours. This tier tests the pod, not
    recognition (bench-quality measures that on held-out phrasings); the demo's reworded questions are misheard by
    the offline STT often enough on this voice to make a pod test flaky."""
    demo = script_for(shop)[0]  # the Saturday question: its expectations come from the manifest
    return Question("What are your opening hours on Saturday?", demo.expect)


class Caller:
    """Loopback calls (FreeSWITCH's side of both wires) to one agent pod's address, in the caller's own voice."""

    def __init__(self, ip: str, store: str = NAME) -> None:
        self.ip = ip
        self.store = store
        self.voice = EspeakTTS(words_per_minute=150)

    async def answered(self, number: str = "+15555550123") -> LoopbackCall:
        call = LoopbackCall(self.ip, ESL, store=self.store, caller_number=number, rate=RATE)
        await call.start(timeout=60)
        assert await call.wait_agent_done(quiet=0.8, timeout=TURN_S), "no greeting"
        return call

    async def ask(self, call: LoopbackCall, q: Question) -> None:
        await call.say(await synthesize(self.voice, q.text, RATE))
        # Long quiet: on a loaded machine the dead-air filler ("One moment.") comes first, then a pause.
        assert await call.wait_agent_done(quiet=2.5, timeout=TURN_S), f"no answer to {q.text!r}"


async def end(call: LoopbackCall) -> None:
    try:
        await call.hangup()
        await call.wait_ended(timeout=30)
    finally:
        await call.close()


def answers(record: dict[str, Any]) -> list[tuple[str, str]]:
    """(caller line, what the agent said after it up to the next caller line) from a call record."""
    out: list[tuple[str, str]] = []
    for turn in record["data"]["transcript"]:
        if turn["role"] == "caller":
            out.append((turn["text"], ""))
        elif out and turn.get("text"):
            out[-1] = (out[-1][0], f"{out[-1][1]} {turn['text']}".strip())
    return out


def chart_values(node: Node) -> dict[str, Any]:
    """The release's values on this node (the speech test upgrades it with more)."""
    return {
        "freeswitch": {"enabled": False},  # no FreeSWITCH image can be built here (freeswitch/README.md)
        # The shared speech service requests 2 CPUs: on this 2-core node nothing else would be scheduled. The
        # example shop runs its offline engines in its own pod.
        "speech": {"enabled": False},
        "streamToken": {"namespaces": [NS]},
        "operator": {
            "watchNamespaces": [NS], "statsIntervalSeconds": 2,
            # No kube-proxy: the in-cluster address of the API server is its address on the node's bridge.
            "extraEnv": [{"name": "KUBERNETES_SERVICE_HOST", "value": node.host.host_ip},
                         {"name": "KUBERNETES_SERVICE_PORT", "value": str(node.cp.api_port)}],
        },
    }


def helm_release(node: Node, verb: str, values: dict[str, Any]) -> None:
    values_file = node.host.base / f"values-{verb}.yaml"
    values_file.write_text(yaml.safe_dump(values))
    t0 = time.monotonic()
    # Image references are the chart's defaults: what `make images` tagged.
    helm(verb, RELEASE, str(CHART), "-n", SYSTEM_NS, "--create-namespace", "-f", str(values_file),
         "--wait", "--timeout", "5m", "--kubeconfig", str(node.cp.kubeconfig))
    print(f"node: helm {verb} --wait took {time.monotonic() - t0:.1f} s", file=sys.stderr)


@pytest.fixture(scope="module")
def installed(node: Node) -> Node:
    node.cp.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    helm_release(node, "install", chart_values(node))
    return node


def test_operator_pod_runs_the_built_image(installed: Node) -> None:
    pods = kube_json(installed, "-n", SYSTEM_NS, "get", "pods", "-l", "app.kubernetes.io/name=storeagent-operator")
    (pod,) = pods["items"]
    assert ready(pod), pod["status"]
    st = pod["status"]["containerStatuses"][0]
    assert st["image"] == installed.images["operator"]["ref"] and st["restartCount"] == 0, st
    uid = _proc_uid(container_pid(installed, pod))
    assert uid == 10001


def _proc_uid(pid: int) -> int:
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("Uid:"))
    return int(line.split()[2])  # effective


def _root_mount_options(pid: int) -> list[str]:
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == "/":
            return fields[5].split(",")
    raise AssertionError("no root mount")


def test_rendered_agent_pods_run_non_root_read_only_with_a_writable_data_volume(installed: Node) -> None:
    node = installed
    t0 = time.monotonic()
    node.cp.kubectl("apply", "-n", NS, "-f", str(EXAMPLE))
    pods = wait_for(lambda: ready_agents(node, 2), 400, "two Ready agent pods (readiness probe /readyz)", 1.0)
    print(f"node: agent pods Ready {time.monotonic() - t0:.1f} s after kubectl apply", file=sys.stderr)
    for pod in pods:
        st = pod["status"]["containerStatuses"][0]
        assert st["image"] == node.images["agent"]["ref"] and st["restartCount"] == 0, st
        pid = container_pid(node, pod)
        assert _proc_uid(pid) == 10001
        assert "ro" in _root_mount_options(pid)
        # The agent opened its outbox on the data volume at start: the volume is writable by its user.
        db = outbox_path(node, pod)
        assert db.exists() and db.stat().st_uid == 10001, db
        assert http_status(f"http://{pod['status']['podIP']}:{HTTP}/readyz") == 200


async def test_call_to_the_pod_is_answered_with_the_shops_facts_and_shows_in_status(installed: Node) -> None:
    node = installed
    pods = await asyncio.to_thread(wait_for, lambda: ready_agents(node, 2), 120, "two Ready agent pods")
    pod = pods[0]
    shop = shop_config_from_manifest(yaml.safe_load(EXAMPLE.read_text()))
    questions = [hours_question(shop)]
    caller = Caller(pod["status"]["podIP"])
    call = await caller.answered()
    try:
        for q in questions:
            await caller.ask(call, q)
        st = await asyncio.to_thread(wait_for, lambda: (s := status(node)).get("callsActive") == 1 and s, 60,
                                     "the live call in the StoreAgent status")
        print(f"node: status during the call: {st}", file=sys.stderr)
    finally:
        await end(call)
    records = await asyncio.to_thread(wait_for, lambda: call_records(outbox_path(node, pod)), 60,
                                      "the call record in the pod's outbox")
    heard = answers(records[-1])
    print(f"node: the call through pod {pod['metadata']['name']} ({caller.ip}):", file=sys.stderr)
    for said, answer in heard:
        print(f"  caller: {said!r}\n  agent:  {answer!r}", file=sys.stderr)
    print("node: agent pod log:\n" + pod_log(node, pod)[-3000:], file=sys.stderr)
    assert heard, records[-1]
    said = " ".join(answer for _, answer in heard)  # the facts may follow a filler or a re-asked turn
    for q in questions:
        for pattern in q.expect:
            assert re.search(pattern, said, re.IGNORECASE), (q.text, heard)
    st = await asyncio.to_thread(
        wait_for, lambda: (s := status(node)).get("callsActive") == 0 and s.get("callsTotal", 0) >= 1
        and (s.get("voiceToVoice") or {}).get("p95Ms") and s, 60, "the finished call's latency in the status")
    print(f"node: status after the call: {st}", file=sys.stderr)
    assert st["readyReplicas"] == 2


async def test_deleted_pod_drains_its_live_call_and_its_replacement_serves_the_next(installed: Node) -> None:
    node = installed
    pods = await asyncio.to_thread(wait_for, lambda: ready_agents(node, 2), 120, "two Ready agent pods")
    victim, other = pods
    ip = victim["status"]["podIP"]
    caller = Caller(ip)
    shop = shop_config_from_manifest(yaml.safe_load(EXAMPLE.read_text()))
    question = hours_question(shop)
    call = await caller.answered()
    try:
        t0 = time.monotonic()
        node.cp.kubectl("-n", NS, "delete", "pod", victim["metadata"]["name"], "--wait=false")
        await asyncio.to_thread(wait_for, lambda: http_status(f"http://{ip}:{HTTP}/readyz") == 503, 60,
                                "the deleted pod to report draining")
        with pytest.raises(OSError):  # no new call: the ESL listener is closed (FreeSWITCH takes the fallback)
            _, w = await asyncio.open_connection(ip, ESL)
            w.close()
        await caller.ask(call, question)  # the live call goes on after SIGTERM
    finally:
        await end(call)
    name = victim["metadata"]["name"]
    gone = await asyncio.to_thread(wait_for, lambda: all(p["metadata"]["name"] != name for p in agent_pods(node)),
                                   120, "the drained pod to exit")
    took = time.monotonic() - t0
    grace = victim["spec"]["terminationGracePeriodSeconds"]
    print(f"node: pod deleted mid-call exited {took:.1f} s after the delete (grace {grace} s)", file=sys.stderr)
    assert gone and took < grace / 4
    pods = await asyncio.to_thread(wait_for, lambda: ready_agents(node, 2), 300, "the replacement pod Ready")
    (fresh,) = [p for p in pods if p["metadata"]["name"] != other["metadata"]["name"]]
    nxt = await Caller(fresh["status"]["podIP"]).answered()
    try:
        await Caller(fresh["status"]["podIP"]).ask(nxt, question)
    finally:
        await end(nxt)


async def test_spec_change_rolls_the_pods(installed: Node) -> None:
    node = installed
    before = {p["metadata"]["name"] for p in await asyncio.to_thread(
        wait_for, lambda: ready_agents(node, 2), 120, "two Ready agent pods")}
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["spec"]["profile"]["address"] = "7 Harbour Road, Springfield"
    node.cp.kubectl("apply", "-n", NS, "-f", "-", input=json.dumps(doc))

    def rolled() -> list[dict[str, Any]] | None:
        pods = ready_agents(node, 2)
        everyone = agent_pods(node)
        if pods and len(everyone) == 2 and not before & {p["metadata"]["name"] for p in everyone}:
            return pods
        return None

    pods = await asyncio.to_thread(wait_for, rolled, 400, "the roll to two new Ready pods", 1.0)
    caller = Caller(pods[0]["status"]["podIP"])
    call = await caller.answered()
    try:
        await caller.ask(call, Question("Where is the shop?", ("Harbour Road",)))
    finally:
        await end(call)
    records = await asyncio.to_thread(wait_for, lambda: call_records(outbox_path(node, pods[0])), 60,
                                      "the call record of the rolled pod")
    (_, answer), *_ = answers(records[-1])[-1:]
    assert "harbour road" in answer.lower(), answer


def speech_values(node: Node, url: str = "") -> dict[str, Any]:
    values = chart_values(node)
    # The chart's speech pod asks for 2 CPUs (a production pod: docs/benchmarks.md); on this 2-core node that
    # leaves nothing for the rest, so one worker on a quarter core requested, limited to the node's 2 (a worker
    # throttled to 1 core on a loaded box missed the agent's 0.8 s first-audio timeout). Refusal by queue wait is off
    # (saturationSeconds 10): a starved CI box must not move the call to the in-process fallback, which this test
    # tells apart (admission is tested in tests/unit/test_speech_protocol.py and tests/e2e/test_speech_faults.py).
    values["speech"] = {
        "enabled": True, "replicas": 1, "workers": 1, "saturationSeconds": 10, "autoscaling": {"enabled": False},
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "1536Mi"}},
    }
    if url:
        # No cluster DNS and no kube-proxy on this node: the Service name the chart renders into --speech-url does
        # not resolve here, so the operator is given the speech pod's address (its last --speech-url wins).
        values["operator"]["extraArgs"] = [f"--speech-url={url}"]
    return values


def speech_pods(node: Node) -> list[dict[str, Any]]:
    pods: list[dict[str, Any]] = kube_json(node, "-n", SYSTEM_NS, "get", "pods", "-l",
                                           "app.kubernetes.io/name=storeagent-speech")["items"]
    return pods


async def test_agent_pod_speaks_through_the_speech_service_pod(installed: Node) -> None:
    """Issue 14 on real pods: the chart's speech Deployment runs, the operator renders its URL into the agent pod of a
    shop choosing `speech`, and that pod's call uses the speech pod: both streams admitted there, the caller's
    question recognised there (a final transcript produced by the service, no STT fallback in the agent) and
    answered with the shop's facts. TTS fallbacks are reported, not asserted: the agent's 0.8 s first-audio
    deadline is missed by any piper on this box when it is loaded (in-process piper measured 1.7-2.2 s at load 8),
    and moving that sentence to the in-process voice is the designed behaviour (tests/e2e/test_speech_faults.py)."""
    node = installed
    await asyncio.to_thread(helm_release, node, "upgrade", speech_values(node))
    (sp,) = await asyncio.to_thread(wait_for, lambda: [p for p in speech_pods(node) if ready(p)] or None, 300,
                                    "the speech pod Ready (probe /readyz: models loaded)")
    assert _proc_uid(container_pid(node, sp)) == 10001 and "ro" in _root_mount_options(container_pid(node, sp))
    # The speech image, not the agent's: it carries the models the agent pod does not (images/speech/models.txt).
    assert sp["status"]["containerStatuses"][0]["image"] == node.images["speech"]["ref"], sp["status"]
    url = f"ws://{sp['status']['podIP']}:{SPEECH_PORT}"
    await asyncio.to_thread(helm_release, node, "upgrade", speech_values(node, url))

    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["metadata"]["name"] = SPEECH_SHOP
    doc["spec"]["phoneNumbers"] = ["+15551230002"]
    doc["spec"]["providers"].update({"stt": {"name": "speech"}, "tts": {"name": "speech"}})
    doc["spec"]["scaling"]["replicas"] = 1
    node.cp.kubectl("apply", "-n", NS, "-f", "-", input=json.dumps(doc))
    (pod,) = await asyncio.to_thread(wait_for, lambda: ready_agents(node, 1, SPEECH_SHOP), 400,
                                     "the speech shop's agent pod Ready", 1.0)
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env.get("STOREAGENT_SPEECH_URL") == url, env
    # STT and TTS both on the service: the agent image without speech models (images/README.md).
    assert pod["spec"]["containers"][0]["image"] == node.images["agent-slim"]["ref"], pod["spec"]["containers"][0]

    sp_metrics = f"{url.replace('ws://', 'http://')}/metrics"
    def speech_counts() -> dict[str, float]:
        out = {k: metric(sp_metrics, "storeagent_speech_streams_total", kind=k) for k in ("stt", "tts")}
        for stage in ("stt_final", "tts_first_audio"):
            for part in ("count", "sum"):
                out[f"{stage}_{part}"] = metric(sp_metrics, f"storeagent_speech_latency_seconds_{part}", stage=stage)
        return out

    streams = speech_counts()
    caller = Caller(pod["status"]["podIP"], store=SPEECH_SHOP)
    question = hours_question(shop_config_from_manifest(doc))
    call = await caller.answered()
    try:
        await caller.ask(call, question)
    finally:
        await end(call)
    records = await asyncio.to_thread(wait_for, lambda: call_records(outbox_path(node, pod)), 60,
                                      "the call record in the speech shop's outbox")
    heard = answers(records[-1])
    served = {k: round(v - streams[k], 3) for k, v in speech_counts().items()}
    agent_metrics = f"http://{pod['status']['podIP']}:{HTTP}/metrics"
    fell_back = {k: metric(agent_metrics, "storeagent_provider_fallbacks_total", stage=k) for k in ("stt", "tts")}
    print(f"node: the call through pod {pod['metadata']['name']} ({caller.ip}) with the speech pod "
          f"{sp['metadata']['name']} ({url}):", file=sys.stderr)
    for said, answer in heard:
        print(f"  caller: {said!r}\n  agent:  {answer!r}", file=sys.stderr)
    print(f"node: speech pod during the call (streams, latency count/sum s) {served}, agent fallbacks {fell_back}, "
          f"load {os.getloadavg()[0]:.1f}", file=sys.stderr)
    print("node: agent pod log:\n" + pod_log(node, pod)[-2000:], file=sys.stderr)
    print("node: speech pod log:\n" + pod_log(node, sp)[-2000:], file=sys.stderr)
    assert served["stt"] >= 1 and served["tts"] >= 1 and served["stt_final_count"] >= 1, served
    assert fell_back["stt"] == 0, fell_back
    said = " ".join(answer for _, answer in heard)
    for pattern in question.expect:
        assert re.search(pattern, said, re.IGNORECASE), (question.text, heard)
