"""Run the operator against a ControlPlane the way a cluster would: CRD installed, a ServiceAccount bound to
exactly the chart's RBAC rules (charts/storeagent/files/operator-rbac-rules.yaml), and the operator as
a subprocess (`storeagent operator run`) holding that ServiceAccount's token, never cluster-admin.
Shared by the integration tests, `make cluster` and the operator bench.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from support.controlplane import REPO, ControlPlane, _die_with_parent
from support.procs import log_tail, terminate

RBAC_RULES = REPO / "charts" / "storeagent" / "files" / "operator-rbac-rules.yaml"
CRD_DIR = REPO / "crds"
SYSTEM_NS = "storeagent-system"
OPERATOR_SA = "storeagent-operator"
API = "/apis/storeagent.dev/v1alpha1"
T = TypeVar("T")


def wait_for(check: Callable[[], T | None], timeout_s: float, what: str, interval_s: float = 0.5) -> T:
    """Poll until `check` returns something truthy; generous timeouts only (a loaded 2-core machine)."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}"
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}; last: {last!r}")


def rbac_rules() -> dict[str, list[dict[str, Any]]]:
    """The chart's rules file: {"cluster": [...], "tenant": [...], "system": [...]}."""
    rules: dict[str, list[dict[str, Any]]] = yaml.safe_load(RBAC_RULES.read_text())
    return rules


def rbac_objects(namespace: str, sa: str, name: str, watch_namespaces: list[str] | None = None) -> list[dict[str, Any]]:
    """The RBAC objects the chart renders from the rules file (templates/operator-{clusterrole,role}*.yaml):
    cluster rules in a ClusterRole (with the tenant rules when cluster-wide), the system rules in a Role in the
    operator's namespace, and with a namespace list the tenant rules in a Role in each listed namespace."""
    rules = rbac_rules()
    subject = [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}]
    rbac = "rbac.authorization.k8s.io/v1"

    def bound(kind: str, role: str, ns: str | None, role_rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
        meta: dict[str, Any] = {"name": role} | ({"namespace": ns} if ns else {})
        return [{"apiVersion": rbac, "kind": kind, "metadata": meta, "rules": role_rules},
                {"apiVersion": rbac, "kind": f"{kind}Binding", "metadata": meta, "subjects": subject,
                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role}}]

    out = bound("ClusterRole", name, None, rules["cluster"] + ([] if watch_namespaces else rules["tenant"]))
    out += bound("Role", f"{name}-system", namespace, rules["system"])
    for ns in watch_namespaces or []:
        out += bound("Role", name, ns, rules["tenant"])
    return out


def install(cp: ControlPlane) -> Path:
    """CRD + namespace + ServiceAccount and the chart's RBAC (cluster-wide mode); returns the SA kubeconfig."""
    cp.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=storeagent-tests", "-f", str(CRD_DIR))
    # 180 s: over 60 s on the loaded 2-core box
    cp.wait_established("storeagents.storeagent.dev")
    cp.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM_NS}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": OPERATOR_SA, "namespace": SYSTEM_NS}},
        *rbac_objects(SYSTEM_NS, OPERATOR_SA, "storeagent-operator"),
    )
    return cp.service_account_kubeconfig(SYSTEM_NS, OPERATOR_SA)


class OperatorProcess:
    """`storeagent operator run` as a child process, logs to a file."""

    def __init__(self, kubeconfig: Path, log_path: Path, extra_args: list[str] | None = None,
                 extra_env: dict[str, str] | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.extra_args = list(extra_args or [])
        self.extra_env = dict(extra_env or {})
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        exe = Path(sys.executable).parent / "storeagent"
        log = open(self.log_path, "ab")
        cmd = [str(exe), "operator", "run", f"--kubeconfig={self.kubeconfig}", *self.extra_args]
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"} | self.extra_env
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                     start_new_session=True, preexec_fn=_die_with_parent)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, like an OOM kill or node loss."""
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        terminate(self.proc)  # SIGTERM drains (no live calls are left by then), SIGKILL after 20 s

    def log_tail(self, n: int = 4000) -> str:
        return log_tail(self.log_path, n)


# -- small REST helpers over the admin connection -------------------------------------------------------------
def storeagent_path(ns: str, name: str = "") -> str:
    return f"{API}/namespaces/{ns}/storeagents" + (f"/{name}" if name else "")


def get_or_none(cp: ControlPlane, path: str) -> dict[str, Any] | None:
    try:
        out: dict[str, Any] = cp.request("GET", path)
        return out
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return None


def apply_storeagent(cp: ControlPlane, doc: dict[str, Any]) -> None:
    cp.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=storeagent-tests", "-f", "-",
                input=json.dumps(doc))


def create_namespace(cp: ControlPlane, name: str) -> None:
    cp.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
