"""`helm lint` and `helm template` of charts/storeagent with the real helm, and what the rendered objects do:
features on/off, security contexts, RBAC from the operator's file, operator arguments its own parser accepts."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from storeagent.operator import settings as operator_settings
from support.helm import CHART, CI_VALUES, find, helm, one, pod_spec, render, template_text

pytestmark = pytest.mark.integration

CI = {p.name.removesuffix("-values.yaml"): p for p in CI_VALUES}
DEFAULT = [CI["default"]]
WORKLOADS = ("Deployment", "DaemonSet", "StatefulSet")


def test_ci_scenarios_exist() -> None:
    assert {"default", "minimal", "monitoring", "hostnetwork-daemonset", "pinned"} <= CI.keys()


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_lint_is_clean(values: Path) -> None:
    out = helm("lint", str(CHART), "--strict", "-f", str(values))
    assert "0 chart(s) failed" in out.stdout


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_every_scenario_renders_hardened_labelled_objects(values: Path) -> None:
    objs = render([values])
    assert objs
    for o in objs:
        meta = o["metadata"]
        if o["kind"] == "CustomResourceDefinition":
            continue
        assert meta["labels"]["app.kubernetes.io/part-of"] == "storeagent", meta["name"]
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm", meta["name"]
        if o["kind"] not in ("ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy",
                             "ValidatingAdmissionPolicyBinding"):  # cluster-scoped
            assert meta.get("namespace"), f"{o['kind']} {meta['name']} has no namespace"
    for w in (o for o in objs if o["kind"] in WORKLOADS):
        _assert_hardened(w)


def _assert_hardened(workload: dict[str, Any]) -> None:
    spec = pod_spec(workload)
    name = workload["metadata"]["name"]
    assert spec["securityContext"]["runAsNonRoot"] is True, name
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
    assert isinstance(spec["securityContext"]["runAsUser"], int), "numeric user: kubelet must verify non-root"
    for c in spec.get("initContainers", []) + spec["containers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False, (name, c["name"])
        assert sc["readOnlyRootFilesystem"] is True, (name, c["name"])
        assert sc["capabilities"]["drop"] == ["ALL"], (name, c["name"])
        assert not sc.get("capabilities", {}).get("add"), (name, c["name"])
        assert sc.get("privileged") is not True, (name, c["name"])
        assert c["resources"]["requests"] and c["resources"]["limits"]["memory"], (name, c["name"])
        assert c["image"].split("/")[-1].count(":") + c["image"].count("@") >= 1, f"unpinned image {c['image']}"
        assert not c["image"].endswith(":latest")


def test_defaults_render_operator_freeswitch_dashboards_and_no_prometheus_operator_objects() -> None:
    objs = render(DEFAULT)
    kinds = {o["kind"] for o in objs}
    assert {"CustomResourceDefinition", "Deployment", "ClusterRole", "ClusterRoleBinding", "ConfigMap"} <= kinds
    assert not kinds & {"PodMonitor", "ServiceMonitor", "PrometheusRule", "DaemonSet"}
    # the only PDB by default is the speech service's (the operator's is for replicas > 1)
    assert [o["metadata"]["name"] for o in find(objs, "PodDisruptionBudget")] == ["sa-storeagent-speech"]
    assert one(objs, "Deployment", "-freeswitch")
    assert not find(objs, "Service", "-sip")
    # the speech pod runs the speech image; shops on it get the agent without models
    speech = pod_spec(one(objs, "Deployment", "-speech"))["containers"][0]
    assert speech["image"].startswith("ghcr.io/storeagent/speech:")
    op_args = pod_spec(one(objs, "Deployment", "-operator"))["containers"][0]["args"]
    assert "--slim-image-repository=ghcr.io/storeagent/agent-slim" in op_args


def test_clusterrole_rules_are_exactly_the_operators_file() -> None:
    objs = render(DEFAULT)
    rules = yaml.safe_load((CHART / "files" / "operator-rbac-rules.yaml").read_text())
    role = one(objs, "ClusterRole")
    assert role["rules"] == rules["cluster"] + rules["tenant"]  # cluster-wide: tenant rules in every namespace
    system = one(objs, "Role", "-system")
    assert system["metadata"]["namespace"] == "storeagent-system" and system["rules"] == rules["system"]
    binding = one(objs, "ClusterRoleBinding")
    sa = one(objs, "ServiceAccount", "-operator")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                    "namespace": "storeagent-system"}]
    assert pod_spec(one(objs, "Deployment", "-operator"))["serviceAccountName"] == sa["metadata"]["name"]
    # FreeSWITCH gets no API access at all.
    fs_sa = one(objs, "ServiceAccount", "-freeswitch")
    assert fs_sa["automountServiceAccountToken"] is False
    assert pod_spec(one(objs, "Deployment", "-freeswitch"))["automountServiceAccountToken"] is False


def test_watch_namespaces_give_roles_there_and_no_tenant_rights_cluster_wide() -> None:
    objs = render(DEFAULT, {"operator.watchNamespaces": ["shops-a", "shops-b"]})
    rules = yaml.safe_load((CHART / "files" / "operator-rbac-rules.yaml").read_text())
    assert one(objs, "ClusterRole")["rules"] == rules["cluster"]
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]): r["rules"] for r in objs if r["kind"] == "Role"}
    assert {ns for ns, _ in roles} == {"shops-a", "shops-b", "storeagent-system"}
    for (ns, name), role_rules in roles.items():
        assert role_rules == (rules["system"] if ns == "storeagent-system" else rules["tenant"]), (ns, name)
    bindings = [b for b in objs if b["kind"] == "RoleBinding"]
    assert {(b["metadata"]["namespace"], b["roleRef"]["name"]) for b in bindings} == set(roles)


def test_cluster_wide_mode_denies_the_operator_the_protected_namespaces_by_admission_policy() -> None:
    objs = render(DEFAULT)
    policy = one(objs, "ValidatingAdmissionPolicy")
    sa = one(objs, "ServiceAccount", "-operator")["metadata"]["name"]
    assert policy["spec"]["matchConditions"][0]["expression"] == \
        f'request.userInfo.username == "system:serviceaccount:storeagent-system:{sa}"'
    binding = one(objs, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"][0]["values"] == \
        ["kube-system", "kube-public", "kube-node-lease"]
    # With a namespace list RBAC already grants nothing there: no policy needed.
    assert not find(render(DEFAULT, {"operator.watchNamespaces": ["shops-a"]}), "ValidatingAdmissionPolicy")


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_operator_arguments_are_accepted_by_the_operators_own_parser(values: Path) -> None:
    objs = render([values])
    dep = one(objs, "Deployment", "-operator")
    c = pod_spec(dep)["containers"][0]
    assert c["command"] == ["storeagent", "operator", "run"]
    env = {e["name"]: e.get("value", "") for e in c["env"]}
    settings, _ = operator_settings.parse(c["args"], env={**env, "POD_NAMESPACE": "storeagent-system"})
    assert settings.freeswitch_namespace == "storeagent-system"
    assert settings.stream_token_secret == "storeagent-stream-token"
    assert settings.liveness_endpoint.endswith("/healthz")
    fs = find(objs, "Service", "-freeswitch-esl")
    if fs:
        host = f"{fs[0]['metadata']['name']}.storeagent-system.svc:{fs[0]['spec']['ports'][0]['port']}"
        assert settings.freeswitch_esl == (host,)
        assert fs[0]["spec"]["clusterIP"] == "None", "headless: the operator reloads every FreeSWITCH pod"
    else:
        assert settings.freeswitch_esl == ()
    replicas = dep["spec"]["replicas"]
    assert bool(settings.peering_name) == (replicas > 1), "peering exactly when more than one replica"


def test_monitoring_scenario_renders_monitors_rules_and_peering() -> None:
    objs = render([CI["monitoring"]])
    pm = one(objs, "PodMonitor")
    assert pm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert pm["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": "storeagent-agent"}}
    assert pm["spec"]["namespaceSelector"] == {"matchNames": ["shops-a", "shops-b"]}
    assert pm["spec"]["podMetricsEndpoints"][0]["port"] == "http"
    sm = one(objs, "ServiceMonitor", "-operator")
    svc = one(objs, "Service", "-operator-metrics")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"][0]["port"] == svc["spec"]["ports"][0]["name"] == "metrics"
    assert sm["spec"]["endpoints"][0]["honorLabels"] is True
    rule = one(objs, "PrometheusRule")
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {"StoreAgentVoiceLatencyHigh", "StoreAgentProviderErrors", "StoreAgentShopNotReady",
            "StoreAgentDialplanNotSynced", "StoreAgentAudioUnderruns"} <= alerts.keys()
    for name, r in alerts.items():
        assert r["labels"]["team"] == "telephony" and r["labels"]["severity"] in ("warning", "critical")
        assert r["annotations"]["runbook_url"].endswith("#" + name.lower())
        assert len(r["annotations"]["runbook"]) > 80, f"{name}: runbook text missing"
    assert "> 1.2" in alerts["StoreAgentVoiceLatencyHigh"]["expr"], "threshold from values"
    dep = one(objs, "Deployment", "-operator")
    assert dep["spec"]["replicas"] == 2 and "--peering=storeagent" in pod_spec(dep)["containers"][0]["args"]
    assert one(objs, "PodDisruptionBudget", "-operator")["spec"]["minAvailable"] == 1
    secrets = {o["metadata"]["namespace"] for o in find(objs, "Secret", "storeagent-stream-token")}
    assert secrets == {"storeagent-system", "shops-a", "shops-b"}
    assert one(objs, "ConfigMap", "-dashboards")["metadata"]["namespace"] == "monitoring"


def test_minimal_scenario_drops_freeswitch_dashboards_metrics_and_secrets() -> None:
    objs = render([CI["minimal"]])
    names = [f"{o['kind']}/{o['metadata']['name']}" for o in objs]
    assert not [n for n in names if "freeswitch" in n], names
    assert not find(objs, "Secret") and not find(objs, "ConfigMap", "-dashboards")
    assert not find(objs, "Service", "-operator-metrics")
    c = pod_spec(one(objs, "Deployment", "-operator"))["containers"][0]
    assert [p["name"] for p in c["ports"]] == ["probes"]
    assert "STOREAGENT_OPERATOR_METRICS_ADDRESS" not in {e["name"] for e in c["env"]}
    assert not any(a.startswith("--freeswitch-esl") for a in c["args"])


def test_hostnetwork_daemonset_scenario() -> None:
    objs = render([CI["hostnetwork-daemonset"]])
    ds = one(objs, "DaemonSet", "-freeswitch")
    spec = pod_spec(ds)
    assert spec["hostNetwork"] is True and spec["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert spec["nodeSelector"] == {"storeagent.dev/telephony": "true"}
    env = {e["name"]: e for e in spec["containers"][0]["env"]}
    assert env["STOREAGENT_EXTERNAL_IP"]["value"] == "203.0.113.10"
    assert env["STOREAGENT_GATEWAY_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "carrier-credentials",
                                                                               "key": "password"}
    assert env["STOREAGENT_ESL_ALLOW_CIDR"]["value"] == "10.244.0.0/16"
    assert not find(objs, "Deployment", "-freeswitch")


def test_freeswitch_gets_its_conf_the_operators_dialplans_and_secrets() -> None:
    objs = render(DEFAULT)
    dep = one(objs, "Deployment", "-freeswitch")
    spec = pod_spec(dep)
    volumes = {v["name"]: v for v in spec["volumes"]}
    conf_files = sorted(str(p.relative_to(CHART / "files" / "freeswitch" / "conf"))
                        for p in (CHART / "files" / "freeswitch" / "conf").rglob("*") if p.is_file())
    assert conf_files, "chart has no FreeSWITCH conf: run make chart-sync"
    items = volumes["conf-src"]["configMap"]["items"]
    assert sorted(i["path"] for i in items) == conf_files
    cm = one(objs, "ConfigMap", "-freeswitch-conf")
    for item in items:
        source = (CHART / "files" / "freeswitch" / "conf" / item["path"]).read_text()
        assert cm["data"][item["key"]].rstrip("\n") == source.rstrip("\n"), item["path"]
    sources = volumes["dialplans"]["projected"]["sources"]
    assert [s["configMap"]["name"] for s in sources] == [f"storeagent-dialplan-{i:02d}" for i in range(16)]
    assert all(s["configMap"]["optional"] for s in sources)
    mounts = {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    assert mounts["dialplans"] == "/usr/local/freeswitch/etc/freeswitch/dialplan/storeagent"
    env = {e["name"]: e for e in spec["containers"][0]["env"]}
    esl_secret = one(objs, "Secret", "-freeswitch-esl")
    assert env["STOREAGENT_ESL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == esl_secret["metadata"]["name"]
    assert len(base64.b64decode(esl_secret["data"]["password"])) >= 16, "docker-entrypoint.sh wants >= 16"
    assert env["STOREAGENT_TRUNK_IP"]["value"] == "192.0.2.10"
    op_env = {e["name"]: e for e in pod_spec(one(objs, "Deployment", "-operator"))["containers"][0]["env"]}
    assert op_env["STOREAGENT_FS_ESL_PASSWORD"]["valueFrom"] == env["STOREAGENT_ESL_PASSWORD"]["valueFrom"]
    token = one(objs, "Secret", "storeagent-stream-token")
    assert len(base64.b64decode(token["data"]["key"])) >= 32


def test_pinned_scenario_existing_secret_digest_and_sip_service() -> None:
    objs = render([CI["pinned"]])
    assert not find(objs, "Secret", "-esl")
    op = pod_spec(one(objs, "Deployment", "telephony-operator"))
    assert op["containers"][0]["image"].startswith("ghcr.io/storeagent/operator@sha256:")
    assert op["imagePullSecrets"] == [{"name": "registry-creds"}]
    assert "--image-repository=registry.example/storeagent/agent" in op["containers"][0]["args"]
    fs = pod_spec(one(objs, "Deployment", "telephony-freeswitch"))
    env = {e["name"]: e for e in fs["containers"][0]["env"]}
    assert env["STOREAGENT_ESL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "freeswitch-esl"
    sip = one(objs, "Service", "-sip")
    assert sip["spec"]["type"] == "LoadBalancer" and sip["spec"]["loadBalancerSourceRanges"] == ["198.51.100.0/24"]
    assert {(p["protocol"], p["port"]) for p in sip["spec"]["ports"]} == {("UDP", 5060), ("TCP", 5060)}
    assert all(o["metadata"]["labels"]["cost-center"] == "shops" for o in objs
               if o["kind"] != "CustomResourceDefinition")


def test_dashboards_configmap_ships_every_dashboard_for_the_grafana_sidecar() -> None:
    objs = render(DEFAULT)
    cm = one(objs, "ConfigMap", "-dashboards")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"]["grafana_folder"] == "StoreAgent"
    files = sorted((CHART / "dashboards").glob("*.json"))
    assert sorted(cm["data"]) == [p.name for p in files]
    for p in files:
        assert json.loads(cm["data"][p.name]) == json.loads(p.read_text())


def test_crds_are_shipped_and_skippable() -> None:
    with_crds = render(DEFAULT)
    assert one(with_crds, "CustomResourceDefinition")["metadata"]["name"] == "storeagents.storeagent.dev"
    assert not find(render(DEFAULT, include_crds=False), "CustomResourceDefinition")


@pytest.mark.parametrize(("sets", "message"), [
    ({"freeswitch.kind": "StatefulSet"}, "/freeswitch/kind"),
    ({"operator.replicas": -1}, "/operator/replicas"),
    ({"operator.unknownKey": True}, "unknownKey"),
    ({"streamToken.namespaces": ["Not_A_Namespace"]}, "/streamToken/namespaces/0"),
    ({"monitoring.podMonitor.interval": "soon"}, "/monitoring/podMonitor/interval"),
    ({"monitoring.prometheusRule.thresholds.failedCallRatio": 3},
     "/monitoring/prometheusRule/thresholds/failedCallRatio"),
    ({"freeswitch.eventSocket.allowCidr": "everyone"}, "/freeswitch/eventSocket/allowCidr"),
])
def test_invalid_values_are_rejected_naming_the_field_path(sets: dict[str, Any], message: str) -> None:
    proc = helm("template", "sa", str(CHART), "-f", str(CI["default"]),
                *[a for k, v in sets.items() for a in ("--set-json", f"{k}={json.dumps(v)}")], check=False)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr


def test_missing_trunk_ip_is_a_clear_error_and_freeswitch_disabled_needs_none() -> None:
    proc = helm("template", "sa", str(CHART), check=False)
    assert proc.returncode != 0 and "freeswitch.trunk.ip is required" in proc.stderr
    assert render([], {"freeswitch.enabled": False})


def test_notes_tell_the_next_step() -> None:
    out = helm("install", "sa", str(CHART), "-f", str(CI["default"]), "--dry-run=client", "-n", "storeagent-system")
    notes = out.stdout.split("NOTES:", 1)[1]
    assert "kubectl apply" in notes and "kubectl wait" in notes and "condition=Ready" in notes
    assert "storeagent-system" in notes


def test_template_is_deterministic_apart_from_generated_secrets() -> None:
    def strip(text: str) -> list[Any]:
        docs = [d for d in yaml.safe_load_all(text) if d and d["kind"] != "Secret"]
        return docs

    assert strip(template_text(DEFAULT)) == strip(template_text(DEFAULT))


def test_pod_labels_are_those_the_operators_network_policies_admit() -> None:
    objs = render(DEFAULT)
    s = operator_settings.Settings()
    op_labels = one(objs, "Deployment", "-operator")["spec"]["template"]["metadata"]["labels"]
    fs_labels = one(objs, "Deployment", "-freeswitch")["spec"]["template"]["metadata"]["labels"]
    assert s.operator_pod_labels.items() <= op_labels.items()
    assert s.freeswitch_pod_labels.items() <= fs_labels.items()


def test_packaged_chart_renders_the_same(tmp_path: Path) -> None:
    helm("package", str(CHART), "-d", str(tmp_path))
    (package,) = tmp_path.glob("storeagent-*.tgz")
    out = helm("template", "sa", str(package), "-n", "storeagent-system", "-f", str(CI["default"]),
               "--include-crds").stdout
    packaged = [d for d in yaml.safe_load_all(out) if d and d["kind"] != "Secret"]
    assert packaged == [o for o in render(DEFAULT) if o["kind"] != "Secret"]


def test_tenant_policy_values_reach_the_operator() -> None:
    # Platform decisions (docs/security.md): chart values -> operator settings -> every agent pod.
    sets = {"operator.tenantPolicy.urls.allowCidrs": ["10.20.0.0/16"],
            "operator.tenantPolicy.urls.allowHosts": [".ai.svc.cluster.local"],
            "operator.tenantPolicy.numbers.allowedCountryCodes": ["82"],
            "operator.agentData.claimName": "{store}-outbox", "operator.agentDebugEndpoints": True,
            "operator.agentEgressCidrs": ["203.0.113.0/24"]}
    c = pod_spec(one(render(DEFAULT, sets), "Deployment", "-operator"))["containers"][0]
    env = {e["name"]: e.get("value", "") for e in c["env"]}
    s, _ = operator_settings.parse(c["args"], env={**env, "POD_NAMESPACE": "storeagent-system"})
    assert s.tenant_policy.urls.allow_cidrs == ("10.20.0.0/16",)
    assert s.tenant_policy.urls.allow_hosts == (".ai.svc.cluster.local",) and not s.tenant_policy.urls.allow_http
    assert s.tenant_policy.numbers.allowed_country_codes == ("82",)
    assert "1900" in s.tenant_policy.numbers.denied_prefixes  # empty deniedPrefixes keep the built-in list
    assert s.agent_data_claim == "{store}-outbox" and s.agent_debug_endpoints
    assert s.egress_allow_cidrs == ("203.0.113.0/24",)
    c = pod_spec(one(render(DEFAULT), "Deployment", "-operator"))["containers"][0]
    defaults, _ = operator_settings.parse(c["args"], env={e["name"]: e.get("value", "") for e in c["env"]})
    assert defaults.tenant_policy.numbers.allowed_country_codes == ()  # the shop's own countries
    assert not defaults.agent_debug_endpoints and defaults.agent_data_claim == ""


def test_gateway_name_is_one_value_for_freeswitch_the_operator_and_every_agent() -> None:
    # INVALID_GATEWAY otherwise: FreeSWITCH defines the gateway, forwards and transfers bridge through it.
    objs = render(DEFAULT, {"freeswitch.trunk.gatewayName": "trunk-b"})
    fs_container = pod_spec(one(objs, "Deployment", "-freeswitch"))["containers"][0]
    fs_env = {e["name"]: e.get("value") for e in fs_container["env"]}
    assert fs_env["STOREAGENT_GATEWAY_NAME"] == "trunk-b"  # -> vars.xml gateway_name -> carrier.xml <gateway name>
    c = pod_spec(one(objs, "Deployment", "-operator"))["containers"][0]
    s, _ = operator_settings.parse(c["args"], env={e["name"]: e.get("value", "") for e in c["env"]})
    assert s.gateway == "trunk-b"
    assert operator_settings.bridge_template(s.gateway).format(number="+1555") == "sofia/gateway/trunk-b/+1555"
    default_c = pod_spec(one(render(DEFAULT), "Deployment", "-operator"))["containers"][0]
    assert "--gateway=carrier" in default_c["args"]
