"""The chart against the real test control plane (kube-apiserver, etcd, kcm, scheduler, kwok): every CI scenario's
manifests accepted by server-side dry-run; `helm install` succeeds with the operator and FreeSWITCH pods Running;
the installed RBAC is exactly enough; upgrade keeps generated secrets; uninstall cleans up."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.controlplane import ControlPlane
from support.helm import CHART, CI_VALUES, helm, template_text
from support.operator_env import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CI = {p.name.removesuffix("-values.yaml"): p for p in CI_VALUES}
MONITORING_CRDS_BUILD = Path(__file__).resolve().parents[1] / "tools" / "monitoring-crds" / "build.sh"


def kube_json(cp: ControlPlane, *args: str) -> Any:
    return json.loads(cp.kubectl(*args, "-o", "json").stdout)


def ensure_namespaces(cp: ControlPlane, *names: str) -> None:
    cp.apply(*({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in names))


@pytest.fixture(scope="module")
def monitoring_crds(control_plane: ControlPlane) -> None:
    """prometheus-operator's PodMonitor/ServiceMonitor/PrometheusRule CRDs, generated from its pinned Go types."""
    out = subprocess.run(["bash", str(MONITORING_CRDS_BUILD)], check=True, stdout=subprocess.PIPE, text=True)
    crd_dir = Path(out.stdout.strip().splitlines()[-1])
    for kind in ("podmonitors", "servicemonitors", "prometheusrules"):
        control_plane.kubectl("apply", "--server-side", "--field-manager=chart-test", "-f",
                              str(crd_dir / f"monitoring.coreos.com_{kind}.yaml"))
        control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                              f"crd/{kind}.monitoring.coreos.com")


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_rendered_manifests_pass_server_side_dry_run(control_plane: ControlPlane, monitoring_crds: None,
                                                     values: Path) -> None:
    cp = control_plane
    ns = "chart-dry-" + values.name.removesuffix("-values.yaml")
    ensure_namespaces(cp, ns, "shops-a", "shops-b", "monitoring")
    docs = [d for d in yaml.safe_load_all(template_text([values], namespace=ns)) if d]
    out = cp.kubectl("apply", "--server-side", "--dry-run=server", "--field-manager=chart-test", "-f", "-",
                     input="\n---\n".join(json.dumps(d) for d in docs), check=False)
    assert out.returncode == 0, out.stderr
    applied = [line for line in out.stdout.splitlines() if "serverside-applied" in line or "unchanged" in line]
    assert len(applied) == len(docs), out.stdout


def test_helm_install_with_prometheus_operator_objects(control_plane: ControlPlane, monitoring_crds: None) -> None:
    cp = control_plane
    ns, release = "chart-monitoring", "mon"
    kube = ["--kubeconfig", str(cp.kubeconfig)]
    ensure_namespaces(cp, "shops-a", "shops-b", "monitoring")
    helm("install", release, str(CHART), "-n", ns, "--create-namespace", "-f", str(CI["monitoring"]),
         "--wait", "--timeout", "5m", *kube)
    try:
        pm = kube_json(cp, "-n", ns, "get", "podmonitor", f"{release}-storeagent-agents")
        assert pm["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "storeagent-agent"}
        rule = kube_json(cp, "-n", ns, "get", "prometheusrule", f"{release}-storeagent")
        assert len([r for g in rule["spec"]["groups"] for r in g["rules"]]) == 7
        assert kube_json(cp, "-n", ns, "get", "servicemonitor", f"{release}-storeagent-operator")
        pods = kube_json(cp, "-n", ns, "get", "pods", "-l", "app.kubernetes.io/name=storeagent-operator")["items"]
        assert len(pods) == 2
        for shop_ns in ("shops-a", "shops-b"):
            assert kube_json(cp, "-n", shop_ns, "get", "secret", "storeagent-stream-token")["data"]["key"]
    finally:
        helm("uninstall", release, "-n", ns, "--wait", "--timeout", "3m", *kube)


def test_helm_install_runs_the_operator_and_freeswitch(control_plane: ControlPlane) -> None:
    cp = control_plane
    ns, release = "chart-install", "chart"
    kube = ["--kubeconfig", str(cp.kubeconfig)]
    out = helm("install", release, str(CHART), "-n", ns, "--create-namespace", "-f", str(CI["default"]),
               "--wait", "--timeout", "5m", *kube)
    assert "STATUS: deployed" in out.stdout and "kubectl apply" in out.stdout
    try:
        _assert_installed(cp, ns, release)
        password = kube_json(cp, "-n", ns, "get", "secret", f"{release}-storeagent-freeswitch-esl")["data"]
        key = kube_json(cp, "-n", ns, "get", "secret", "storeagent-stream-token")["data"]
        helm("upgrade", release, str(CHART), "-n", ns, "-f", str(CI["default"]),
             "--set", "operator.verbose=true", "--wait", "--timeout", "5m", *kube)
        assert kube_json(cp, "-n", ns, "get", "secret", f"{release}-storeagent-freeswitch-esl")["data"] == password
        assert kube_json(cp, "-n", ns, "get", "secret", "storeagent-stream-token")["data"] == key
        dep = kube_json(cp, "-n", ns, "get", "deploy", f"{release}-storeagent-operator")
        assert "--verbose" in dep["spec"]["template"]["spec"]["containers"][0]["args"]
        _wait_operator_running(cp, ns)
    finally:
        helm("uninstall", release, "-n", ns, "--wait", "--timeout", "3m", *kube)
    left = cp.kubectl("-n", ns, "get", "deploy,svc,configmap,secret,sa", "-l", f"app.kubernetes.io/instance={release}",
                      "-o", "name").stdout.split()
    assert left == [], left
    assert cp.kubectl("get", "clusterrole", f"{release}-storeagent-operator", check=False).returncode != 0
    # CRDs stay (Helm never deletes them): shops keep existing while the chart is reinstalled.
    assert cp.kubectl("get", "crd", "storeagents.storeagent.dev").returncode == 0


def allowed_by_rbac(cp: ControlPlane, sa: str, sa_namespace: str, verb: str, resource: str) -> bool:
    """A SubjectAccessReview (no discovery needed, so resources whose CRD is absent work too).
    `resource` is "plural[/subresource][.group]"; checked in the namespace "shops"."""
    name, _, group = resource.partition(".")
    plural, _, sub = name.partition("/")
    review = cp.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": sa, "groups": ["system:serviceaccounts", f"system:serviceaccounts:{sa_namespace}",
                                         "system:authenticated"],
                 "resourceAttributes": {"namespace": "shops", "verb": verb, "group": group, "resource": plural,
                                        "subresource": sub}}})
    return bool(review["status"].get("allowed"))


def _wait_operator_running(cp: ControlPlane, ns: str) -> dict[str, Any]:
    def running() -> dict[str, Any] | None:
        pods = kube_json(cp, "-n", ns, "get", "pods", "-l", "app.kubernetes.io/name=storeagent-operator")["items"]
        live = [p for p in pods if p["metadata"].get("deletionTimestamp") is None]
        ok = [p for p in live if p["status"].get("phase") == "Running" and any(
            c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))]
        return ok[0] if len(live) == 1 and ok else None

    return wait_for(running, 120, "the operator pod Running and Ready")


def _assert_installed(cp: ControlPlane, ns: str, release: str) -> None:
    pod = _wait_operator_running(cp, ns)
    assert pod["spec"]["serviceAccountName"] == f"{release}-storeagent-operator"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    fs = kube_json(cp, "-n", ns, "get", "pods", "-l", "app.kubernetes.io/name=freeswitch")["items"]
    assert fs and all(p["status"]["phase"] == "Running" for p in fs)
    crd = kube_json(cp, "get", "crd", "storeagents.storeagent.dev")
    assert any(c["type"] == "Established" and c["status"] == "True" for c in crd["status"]["conditions"])
    cm = kube_json(cp, "-n", ns, "get", "configmap", "-l", "grafana_dashboard=1")["items"]
    assert len(cm) == 1 and len(cm[0]["data"]) == len(list((CHART / "dashboards").glob("*.json")))
    # The installed ClusterRole grants every rule of the operator's file, and nothing the operator must never do.
    sa = f"system:serviceaccount:{ns}:{release}-storeagent-operator"
    rules = yaml.safe_load((CHART / "files" / "operator-rbac-rules.yaml").read_text())
    allowed = [(verb, f"{res}.{group}" if group else res)
               for r in rules for group in r["apiGroups"] for res in r["resources"] for verb in r["verbs"]]
    assert allowed, "no rules"
    denied = [("get", "secrets"), ("list", "secrets"), ("create", "pods"), ("delete", "namespaces"),
              ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
              ("escalate", "clusterroles.rbac.authorization.k8s.io"),
              ("delete", "customresourcedefinitions.apiextensions.k8s.io"), ("create", "storeagents.storeagent.dev")]
    assert not set(allowed) & set(denied)
    for verb, resource in allowed + denied:
        out = "yes" if allowed_by_rbac(cp, sa, ns, verb, resource) else "no"
        want = "yes" if (verb, resource) in allowed else "no"
        assert out == want, f"{sa} {verb} {resource}: {out} (want {want})"


def test_install_fails_cleanly_without_the_trunk(control_plane: ControlPlane) -> None:
    proc = helm("install", "broken", str(CHART), "-n", "chart-broken", "--create-namespace",
                "--kubeconfig", str(control_plane.kubeconfig), check=False)
    assert proc.returncode != 0 and "freeswitch.trunk.ip is required" in proc.stderr
    assert "broken" not in helm("list", "-A", "--kubeconfig", str(control_plane.kubeconfig)).stdout
