"""The chart's speech service: its own Deployment (probes, drain, the command's flags accepted by its own parser),
Service, HPA, PDB, ServiceMonitor; the operator told where it is; and what the operator renders for a shop choosing
`speech` (its URL in the agent's env, one egress rule to the speech pods)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from storeagent.operator import model
from storeagent.operator import settings as operator_settings
from storeagent.operator.resources import Shop, desired_deployment, desired_network_policy
from storeagent.speech.__main__ import parse_args, settings_from
from support.helm import CI_VALUES, find, one, pod_spec, render

pytestmark = pytest.mark.integration
CI = {p.name.removesuffix("-values.yaml"): p for p in CI_VALUES}
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sunrise-bakery.yaml"


def test_speech_service_objects_and_the_operators_flags() -> None:
    objs = render([CI["default"]])
    dep = one(objs, "Deployment", "-speech")
    c = pod_spec(dep)["containers"][0]
    assert c["command"] == ["storeagent", "speech", "serve"]
    s = settings_from(parse_args(["serve", *c["args"]]), {})
    assert (s.port, s.workers) == (8090, 0)  # 0: one worker per CPU of the pod's limit
    assert {p["path"] for p in (c["startupProbe"]["httpGet"], c["readinessProbe"]["httpGet"])} == {"/readyz"}
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod_spec(dep)["terminationGracePeriodSeconds"] > s.drain_seconds
    assert "replicas" not in dep["spec"], "the HPA owns the replica count"
    hpa = one(objs, "HorizontalPodAutoscaler", "-speech")
    assert hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
    assert [m["type"] for m in hpa["spec"]["metrics"]] == ["Resource"]
    assert one(objs, "PodDisruptionBudget", "-speech")["spec"]["selector"]["matchLabels"] == \
        dep["spec"]["selector"]["matchLabels"]
    svc = one(objs, "Service", "-speech")
    op = pod_spec(one(objs, "Deployment", "-operator"))["containers"][0]
    settings, _ = operator_settings.parse(op["args"], env={"POD_NAMESPACE": "storeagent-system"})
    assert settings.speech_url == f"ws://{svc['metadata']['name']}.storeagent-system.svc:8090"
    assert settings.speech_pod_labels.items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    streams = render([CI["default"]], {"speech.autoscaling.targetStreamsPerPod": 60})
    metrics = one(streams, "HorizontalPodAutoscaler", "-speech")["spec"]["metrics"]
    assert metrics[1]["pods"]["metric"]["name"] == "storeagent_speech_streams_in_flight"
    monitored = render([CI["monitoring"]])
    assert find(monitored, "ServiceMonitor", "-speech")


def test_speech_can_be_turned_off() -> None:
    objs = render([CI["default"]], {"speech.enabled": False})
    assert not [o for o in objs if o["metadata"]["name"].endswith("-speech")]
    op = pod_spec(one(objs, "Deployment", "-operator"))["containers"][0]
    assert not any(a.startswith("--speech-url") for a in op["args"])


def _shop(stt: str) -> Shop:
    spec = yaml.safe_load(EXAMPLE.read_text())["spec"]
    spec["providers"] = {"stt": {"name": stt}, "tts": {"name": "offline"}}
    return Shop("sunrise-bakery", "shops", "uid-1", model.parse_spec(spec))


def test_operator_opens_egress_to_the_speech_pods_only_for_shops_using_it() -> None:
    settings, _ = operator_settings.parse(["--speech-url=ws://s.storeagent-system.svc:8090"],
                                          env={"POD_NAMESPACE": "storeagent-system"})
    for stt, expect in (("speech", True), ("offline", False)):
        shop = _shop(stt)
        egress = desired_network_policy(shop, settings)["spec"]["egress"]
        to_speech = [r for r in egress if any(t.get("podSelector", {}).get("matchLabels") ==
                                              {"app.kubernetes.io/name": "storeagent-speech"} for t in r["to"])]
        env = {e["name"]: e.get("value") for e in
               desired_deployment(shop, settings)["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert bool(to_speech) == expect and ("STOREAGENT_SPEECH_URL" in env) == expect
        if expect:
            assert to_speech[0]["ports"] == [{"protocol": "TCP", "port": 8090}]
            assert to_speech[0]["to"][0]["namespaceSelector"]["matchLabels"] == {
                "kubernetes.io/metadata.name": "storeagent-system"}
            assert env["STOREAGENT_SPEECH_URL"] == "ws://s.storeagent-system.svc:8090"
