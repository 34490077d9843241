"""The chart's files against their sources of truth, without helm: CRD and FreeSWITCH conf copies, RBAC rules,
dialplan ConfigMap names, agent pod labels/ports, and the dashboards' JSON and template variables."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from storeagent.agent.settings import AgentSettings
from storeagent.operator import dialplan, model, resources
from storeagent.operator.settings import Settings, bridge_template, parse

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "storeagent"
DASHBOARDS = sorted((CHART / "dashboards").glob("*.json"))
GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__range", "__range_s", "__interval_ms"}


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(("source", "copy"), [("crds", "crds"), ("freeswitch/conf", "files/freeswitch/conf")])
def test_chart_copies_equal_their_source(source: str, copy: str) -> None:
    src, dst = tree(REPO / source), tree(CHART / copy)
    assert src.keys() == dst.keys(), f"chart copy of {source}/ drifted: run `make chart-sync`"
    changed = [k for k in src if src[k] != dst[k]]
    assert not changed, f"chart copy of {source}/ drifted in {changed}: run `make chart-sync`"


def test_chart_ships_the_storeagent_crd() -> None:
    docs = [d for p in (CHART / "crds").glob("*.yaml") for d in yaml.safe_load_all(p.read_text()) if d]
    names = {d["metadata"]["name"] for d in docs if d["kind"] == "CustomResourceDefinition"}
    assert f"storeagents.{model.GROUP}" in names


def test_rbac_rules_are_policy_rules_with_least_privilege() -> None:
    scopes: dict[str, list[dict[str, Any]]] = yaml.safe_load(
        (CHART / "files" / "operator-rbac-rules.yaml").read_text())
    assert set(scopes) == {"cluster", "tenant", "system"}
    for rule in (r for rules in scopes.values() for r in rules):
        assert set(rule) <= {"apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"}, rule
        assert rule["verbs"] and rule["resources"], rule
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"], rule
        assert "secrets" not in rule["resources"], "the operator never reads Secrets (agents mount them)"
        assert not {"delete", "deletecollection", "update", "escalate", "bind", "impersonate"} & set(rule["verbs"]) \
            or rule["resources"] == ["storeagents/finalizers"], rule
    granted = {(g, r) for rule in scopes["tenant"] for g in rule["apiGroups"] for r in rule["resources"]}
    # What the operator's builders create must be creatable in a tenant namespace.
    for obj in _example_objects():
        group = obj["apiVersion"].rpartition("/")[0]
        plural = {"NetworkPolicy": "networkpolicies"}.get(obj["kind"], obj["kind"].lower() + "s")
        assert (group, plural) in granted, f"no rule for {obj['kind']} ({group}/{plural})"
    # In the operator's own namespace it may write the dialplan ConfigMaps by name, and nothing else by name.
    named = [r for r in scopes["system"] if r.get("resourceNames")]
    assert len(named) == 1 and named[0]["resources"] == ["configmaps"] and named[0]["verbs"] == ["get", "patch"]
    assert named[0]["resourceNames"] == [dialplan.configmap_name(i) for i in range(dialplan.SHARDS)]
    writes = {v for r in scopes["system"] if not r.get("resourceNames") for v in r["verbs"]} - {"list", "watch"}
    assert writes == {"create"}


def _example_objects() -> list[dict[str, Any]]:
    doc = yaml.safe_load((REPO / "examples" / "sunrise-bakery.yaml").read_text())
    shop = resources.Shop("sunrise-bakery", "shops", "uid-1", model.parse_spec(doc["spec"]))
    return resources.desired_all(shop, Settings())


def test_values_match_the_operators_dialplan_configmaps_and_stream_token() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    fs = values["freeswitch"]["dialplan"]
    assert fs["configMapPrefix"] == dialplan.CONFIGMAP_PREFIX
    assert fs["shards"] == dialplan.SHARDS
    assert values["streamToken"]["secretName"] == Settings().stream_token_secret


def test_podmonitor_selects_the_agent_pods_the_operator_builds() -> None:
    template = (CHART / "templates" / "agents-podmonitor.yaml").read_text()
    deployment = next(o for o in _example_objects() if o["kind"] == "Deployment")
    pod = deployment["spec"]["template"]
    selector = re.search(r"matchLabels:\n\s+(\S+): (\S+)", template)
    assert selector is not None
    assert pod["metadata"]["labels"][selector.group(1)] == selector.group(2)
    port = re.search(r"- port: (\S+)\n\s+path: /metrics", template)
    assert port is not None
    ports = {p["name"] for c in pod["spec"]["containers"] for p in c["ports"]}
    assert port.group(1) in ports


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_grafana_json_with_defined_variables(path: Path) -> None:
    board = json.loads(path.read_text())
    assert board["uid"].startswith("storeagent-") and board["title"].startswith("StoreAgent / ")
    defined = {v["name"] for v in board["templating"]["list"]}
    assert "datasource" in defined
    targets = [(p["title"], t) for p in board["panels"] if p["type"] != "row" for t in p["targets"]]
    assert len(targets) >= 8
    for title, t in targets:
        assert t["datasource"]["uid"] == "${datasource}", title
        used = set(re.findall(r"\$\{?(\w+)", t["expr"]))
        undefined = used - defined - GRAFANA_BUILTINS
        assert not undefined, f"{path.name} / {title}: undefined variables {undefined}"
        assert "storeagent_" in t["expr"], f"{path.name} / {title}: not a StoreAgent metric"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def test_dashboard_uids_are_unique() -> None:
    uids = [json.loads(p.read_text())["uid"] for p in DASHBOARDS]
    assert len(DASHBOARDS) == 3 and len(set(uids)) == 3


def test_freeswitch_ports_in_the_chart_are_those_of_the_conf() -> None:
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()

    def const(name: str) -> str:
        m = re.search(r'define "storeagent\.freeswitch\.' + name + r'" -\}\}([^{]+)\{\{', helpers)
        assert m is not None, name
        return m.group(1)

    conf = CHART / "files" / "freeswitch" / "conf"
    sip = re.search(r'name="sip-port" value="(\d+)"', (conf / "sip_profiles" / "trunk.xml").read_text())
    esl_conf = (conf / "autoload_configs" / "event_socket.conf.xml").read_text()
    esl = re.search(r'name="listen-port" value="(\d+)"', esl_conf)
    switch = (conf / "autoload_configs" / "switch.conf.xml").read_text()
    rtp = re.search(r'rtp-start-port" value="(\d+)".*rtp-end-port" value="(\d+)"', switch, re.S)
    assert sip and esl and rtp
    assert const("sipPort") == sip.group(1)
    assert const("eslPort") == esl.group(1)
    assert const("rtpPorts") == f"{rtp.group(1)}-{rtp.group(2)}"


def test_every_alert_has_a_runbook_section_in_the_docs() -> None:
    alerts = re.findall(r"- alert: (\w+)", (CHART / "templates" / "prometheusrule.yaml").read_text())
    docs = (REPO / "docs" / "observability.md").read_text()
    headings = {h.lower() for h in re.findall(r"^### (\S+)$", docs, re.M)}
    assert alerts and {a.lower() for a in alerts} <= headings, "runbook_url anchors must exist"


def test_one_gateway_name_from_chart_values_to_freeswitch_operator_and_agents() -> None:
    """The gateway FreeSWITCH defines is the one forwards and transfers bridge through (INVALID_GATEWAY otherwise)."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    name = values["freeswitch"]["trunk"]["gatewayName"]
    # The defaults of every consumer agree with the chart's default...
    assert name == Settings().gateway == AgentSettings().transfer_gateway
    entrypoint = (REPO / "freeswitch" / "docker-entrypoint.sh").read_text()
    assert f'STOREAGENT_GATEWAY_NAME="${{STOREAGENT_GATEWAY_NAME:-{name}}}"' in entrypoint
    # ...and the value flows: chart -> FreeSWITCH env -> conf's gateway; chart -> operator flag -> agent env.
    conf = REPO / "freeswitch" / "conf"
    assert 'data="gateway_name=$STOREAGENT_GATEWAY_NAME"' in (conf / "vars.xml").read_text()
    assert '<gateway name="$${gateway_name}">' in (conf / "sip_profiles" / "trunk" / "carrier.xml").read_text()
    workload = (CHART / "templates" / "freeswitch-workload.yaml").read_text()
    assert re.search(r"- name: STOREAGENT_GATEWAY_NAME\n\s+value: \{\{ \$fs\.trunk\.gatewayName \| quote \}\}",
                     workload)
    operator = (CHART / "templates" / "operator-deployment.yaml").read_text()
    assert "- --gateway={{ .Values.freeswitch.trunk.gatewayName }}" in operator
    s, _ = parse(["--gateway", "trunk-2"], env={})
    assert bridge_template(s.gateway).format(number="+15551230000") == "sofia/gateway/trunk-2/+15551230000"
    doc = yaml.safe_load((REPO / "examples" / "sunrise-bakery.yaml").read_text())
    shop = resources.Shop("sunrise-bakery", "shops", "uid-1", model.parse_spec(doc["spec"]))
    deployment = next(o for o in resources.desired_all(shop, s) if o["kind"] == "Deployment")
    env = {e["name"]: e.get("value") for c in deployment["spec"]["template"]["spec"]["containers"] for e in c["env"]}
    assert env["STOREAGENT_TRANSFER_GATEWAY"] == "trunk-2"
    assert AgentSettings.from_env({"STOREAGENT_TRANSFER_GATEWAY": "trunk-2"}).transfer_gateway == "trunk-2"
