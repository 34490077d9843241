"""The operator's RBAC scopes, proven with SubjectAccessReviews on a real API server against the chart's rules
file (the same objects the chart renders: test_chart_render checks those shapes), and the operator running under
the namespaced Roles: a shop in a listed namespace becomes Ready, one elsewhere is never touched."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from storeagent.operator import dialplan
from support.controlplane import ControlPlane
from support.helm import CI_VALUES, render
from support.operator_env import (
    CRD_DIR,
    OperatorProcess,
    condition,
    create_namespace,
    get_or_none,
    rbac_objects,
    rbac_rules,
    storeagent_path,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SYSTEM = "rbac-system"
LISTED = ["rbac-shops-a", "rbac-shops-b"]
UNLISTED = ["kube-system", "default", "rbac-other"]
SA = "scoped-operator"
USER = f"system:serviceaccount:{SYSTEM}:{SA}"
CI_DEFAULT = next(p for p in CI_VALUES if p.name == "default-values.yaml")


def allowed(cp: ControlPlane, verb: str, resource: str, namespace: str = "", name: str = "",
            user: str = USER) -> bool:
    """`resource` is "plural[/subresource][.group]"."""
    plural_sub, _, group = resource.partition(".")
    plural, _, sub = plural_sub.partition("/")
    sa_ns = user.split(":")[2]
    review = cp.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": user, "groups": ["system:serviceaccounts", f"system:serviceaccounts:{sa_ns}",
                                         "system:authenticated"],
                 "resourceAttributes": {"namespace": namespace, "verb": verb, "group": group, "resource": plural,
                                        "subresource": sub, "name": name}}})
    return bool(review["status"].get("allowed"))


def grants(rules: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(verb, f"{res}.{group}" if group else res)
            for r in rules if not r.get("resourceNames")
            for group in r["apiGroups"] for res in r["resources"] for verb in r["verbs"]]


NEVER = [("get", "secrets"), ("list", "secrets"), ("watch", "secrets"), ("create", "pods"), ("patch", "pods"),
         ("delete", "deployments.apps"), ("update", "deployments.apps"), ("delete", "configmaps"),
         ("deletecollection", "configmaps"), ("create", "roles.rbac.authorization.k8s.io"),
         ("create", "rolebindings.rbac.authorization.k8s.io"), ("escalate", "roles.rbac.authorization.k8s.io"),
         ("create", "serviceaccounts/token"), ("create", "pods/exec"), ("delete", "storeagents.storeagent.dev"),
         ("create", "storeagents.storeagent.dev")]


@pytest.fixture(scope="module")
def scoped(control_plane: ControlPlane) -> ControlPlane:
    cp = control_plane
    cp.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=storeagent-tests", "-f", str(CRD_DIR))
    cp.wait_established("storeagents.storeagent.dev")
    for ns in [SYSTEM, *LISTED, "rbac-other"]:
        create_namespace(cp, ns)
    cp.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": SA, "namespace": SYSTEM}},
             *rbac_objects(SYSTEM, SA, "scoped-operator", watch_namespaces=LISTED))
    return cp


def test_namespaced_mode_grants_the_tenant_rules_only_in_listed_namespaces(scoped: ControlPlane) -> None:
    cp = scoped
    rules = rbac_rules()
    tenant = grants(rules["tenant"])
    assert tenant
    for ns in LISTED:
        refused = [g for g in tenant if not allowed(cp, *g, namespace=ns)]
        assert not refused, (ns, refused)
    for ns in UNLISTED:
        leaked = [g for g in tenant if allowed(cp, *g, namespace=ns)]
        assert not leaked, (ns, leaked)  # kube-system included: nothing, not even reads
    for ns in [*LISTED, *UNLISTED, SYSTEM]:
        leaked = [g for g in NEVER if allowed(cp, *g, namespace=ns)]
        assert not leaked, (ns, leaked)
    # Cluster-wide: CRD discovery, namespace names (kopf serves a listed namespace created later) and peering.
    assert allowed(cp, "watch", "customresourcedefinitions.apiextensions.k8s.io")
    assert allowed(cp, "watch", "namespaces")
    for verb, res in [("list", "storeagents.storeagent.dev"), ("list", "configmaps"), ("list", "pods"),
                      ("create", "namespaces"), ("patch", "namespaces"), ("list", "nodes")]:
        assert not allowed(cp, verb, res), (verb, res)


def test_the_operators_namespace_allows_the_dialplan_configmaps_by_name(scoped: ControlPlane) -> None:
    cp = scoped
    for i in range(dialplan.SHARDS):
        for verb in ("get", "patch"):
            assert allowed(cp, verb, "configmaps", SYSTEM, dialplan.configmap_name(i)), (verb, i)
    for other in ("storeagent-freeswitch-conf", f"{dialplan.CONFIGMAP_PREFIX}-{dialplan.SHARDS}", "kube-root-ca.crt"):
        assert not allowed(cp, "patch", "configmaps", SYSTEM, other), other
        assert not allowed(cp, "get", "configmaps", SYSTEM, other), other
    assert allowed(cp, "create", "configmaps", SYSTEM)  # create cannot be limited by name (docs/security.md)
    assert allowed(cp, "watch", "configmaps", SYSTEM)
    for verb, res in [("patch", "deployments.apps"), ("create", "services"), ("patch", "services"),
                      ("create", "networkpolicies.networking.k8s.io"), ("patch", "storeagents.storeagent.dev"),
                      ("get", "secrets"), ("create", "events")]:
        assert not allowed(cp, verb, res, SYSTEM), (verb, res)
    # The dialplan ConfigMaps are only the operator's namespace's: not by name anywhere else.
    assert not allowed(cp, "patch", "configmaps", "kube-system", dialplan.configmap_name(0))


def test_cluster_wide_mode_is_the_documented_reduced_set(scoped: ControlPlane, tmp_path: Path) -> None:
    """With no namespace list the tenant rules are a ClusterRole: RBAC allows them in every namespace,
    kube-system included, and nothing beyond them; the chart's admission policy then refuses the operator's
    writes in the protected namespaces."""
    cp = scoped
    sa, ns = "wide-operator", "rbac-wide"
    create_namespace(cp, ns)
    cp.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": ns}},
             *rbac_objects(ns, sa, "wide-operator"))
    user = f"system:serviceaccount:{ns}:{sa}"
    tenant = grants(rbac_rules()["tenant"])
    for where in ["rbac-other", "kube-system"]:
        assert all(allowed(cp, *g, namespace=where, user=user) for g in tenant), where
        leaked = [g for g in NEVER if allowed(cp, *g, namespace=where, user=user)]
        assert not leaked, (where, leaked)

    # The deny RBAC cannot express: the chart's admission policy refuses the operator's writes in the
    # protected namespaces (rendered for this ServiceAccount, applied to the real API server).
    objs = render([CI_DEFAULT], {"operator.serviceAccount.name": sa}, release="wide", namespace=ns,
                  include_crds=False)
    policy = [o for o in objs if o["kind"].startswith("ValidatingAdmissionPolicy")]
    assert len(policy) == 2
    cp.apply(*policy)
    kubeconfig = cp.service_account_kubeconfig(ns, sa, tmp_path / "wide.kubeconfig")

    def write(where: str) -> subprocess.CompletedProcess[str]:
        return cp.kubectl("create", "configmap", "operator-probe", "-n", where, "--from-literal=a=1",
                          kubeconfig=kubeconfig, check=False)

    def refused() -> str | None:
        out = write("kube-system")
        if out.returncode == 0:  # the policy is not active yet: undo and try again
            cp.kubectl("delete", "configmap", "operator-probe", "-n", "kube-system")
            return None
        return out.stderr

    err = wait_for(refused, 60, "the admission policy refusing the operator in kube-system")
    assert "protected namespaces" in err and "forbidden" in err.lower(), err
    assert write("kube-public").returncode != 0
    assert write("rbac-other").returncode == 0, "tenant namespaces stay writable"


@pytest.fixture(scope="module")
def namespaced_operator(scoped: ControlPlane, operator: Any, tmp_path_factory: pytest.TempPathFactory
                        ) -> Iterator[OperatorProcess]:
    """The operator under the namespaced Roles. The session's cluster-wide operator is paused meanwhile, so
    exactly one operator acts on these shops."""
    cp = scoped
    kubeconfig = cp.service_account_kubeconfig(SYSTEM, SA, tmp_path_factory.mktemp("scoped") / "sa.kubeconfig")
    operator.proc.stop()
    log = Path(tmp_path_factory.mktemp("scoped-operator")) / "operator.log"
    proc = OperatorProcess(kubeconfig, log, [*(f"--namespace={n}" for n in LISTED), f"--freeswitch-namespace={SYSTEM}",
                                             f"--operator-namespace={SYSTEM}", "--stats-interval=2"]).start()
    try:
        yield proc
    finally:
        proc.stop()
        print(f"namespaced operator log: {log}")
        operator.proc.start()


def shop(ns: str, name: str, number: str) -> dict[str, Any]:
    return {"apiVersion": "storeagent.dev/v1alpha1", "kind": "StoreAgent", "metadata": {"name": name, "namespace": ns},
            "spec": {"phoneNumbers": [number], "profile": {"name": "Scoped"},
                     "fallback": {"playback": "ivr/ivr-please_try_again_later.wav"},
                     "scaling": {"replicas": 1, "maxCallsPerPod": 5}}}


def test_the_operator_works_under_the_namespaced_roles(scoped: ControlPlane,
                                                       namespaced_operator: OperatorProcess) -> None:
    cp = scoped
    cp.kubectl("apply", "-f", "-", input=json.dumps(shop("rbac-other", "elsewhere", "+15553219001")))
    cp.kubectl("apply", "-f", "-", input=json.dumps(shop(LISTED[0], "listed", "+15553219002")))

    def ready() -> bool:
        obj = get_or_none(cp, storeagent_path(LISTED[0], "listed"))
        c = condition(obj, "Ready")
        return bool(c and c["status"] == "True")

    wait_for(ready, 120, f"the shop in {LISTED[0]} Ready under the namespaced Roles "
             f"(log: {namespaced_operator.log_tail(2000)})")
    cm = cp.request("GET", f"/api/v1/namespaces/{SYSTEM}/configmaps/"
                           f"{dialplan.configmap_name(dialplan.shard_of(LISTED[0], 'listed'))}")
    assert dialplan.file_key(LISTED[0], "listed") in cm["data"]
    # Deleted and restored under these rights too.
    cp.request("DELETE", f"/api/v1/namespaces/{LISTED[0]}/services/listed")
    wait_for(lambda: get_or_none(cp, f"/api/v1/namespaces/{LISTED[0]}/services/listed"), 30, "Service restored")
    elsewhere = cp.request("GET", storeagent_path("rbac-other", "elsewhere"))
    assert not elsewhere["metadata"].get("finalizers") and not elsewhere.get("status"), elsewhere
    assert "Forbidden" not in namespaced_operator.log_tail(1_000_000), "a call was refused"
