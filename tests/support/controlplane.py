"""A real Kubernetes control plane on 127.0.0.1 for tests, `make cluster` and the operator bench.

etcd + kube-apiserver (RBAC on, TLS, service-account tokens) + kube-controller-manager + kube-scheduler +
kwok (one fake node; pods become Running and Ready without a container runtime), built from the Go module
proxy by tests/controlplane/build.sh and cached between runs. Every port is free-picked, so several control
planes (parallel helpers, CI jobs) can run on one machine.

    with ControlPlane(tmpdir) as cp:
        cp.kubeconfig            # admin kubeconfig (system:masters)
        cp.api_url               # https://127.0.0.1:<port>
        cp.admin_client()        # kubernetes.client.ApiClient
        cp.kubectl("get", "nodes")
        cp.service_account_kubeconfig("ns", "sa")  # a kubeconfig that acts as that ServiceAccount
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "tests" / "controlplane" / "build.sh"
NODE_NAME = "kwok-node-0"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl")


def ensure_built(quiet: bool = False) -> Path:
    """The directory of the pinned binaries, which `make controlplane` builds before any test runs.

    A test never builds (a cold Go build takes minutes, longer than a test's timeout on a busy machine): a missing
    binary fails at once and names the make target. `quiet` is kept for callers that predate this rule."""
    del quiet
    bin_dir = Path(subprocess.run([str(BUILD), "--dir"], check=True, capture_output=True, text=True).stdout.strip())
    missing = [b for b in (*BINARIES, "kwok-stages.yaml") if not (bin_dir / b).exists()]
    if missing:
        raise RuntimeError(f"control plane not built: {', '.join(missing)} missing in {bin_dir}; "
                           "run `make controlplane` (`make test` runs it before pytest)")
    return bin_dir


def _die_with_parent() -> None:
    """Linux: SIGTERM the component if the test process dies without cleaning up (SIGKILL, crash)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d: Path, address: str = "127.0.0.1") -> None:
    """CA, apiserver serving cert (also for `address`), admin client cert (system:masters), service-account key."""
    d.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "30",
             "-subj", "/CN=storeagent-test-ca", cwd=d)
    (d / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
        "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.96.0.1"
        + ("" if address == "127.0.0.1" else f",IP:{address}") + "\n"
        "extendedKeyUsage=serverAuth,clientAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, subj, ext in (("server", "/CN=kube-apiserver", "server.ext"),
                            ("admin", "/O=system:masters/CN=storeagent-test-admin", "client.ext")):
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subj, cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.crt", "-days", "30", "-extfile", ext, cwd=d)
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "sa.key", cwd=d)
    _openssl("ec", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)


def kubeconfig_doc(server: str, ca: Path, user: dict[str, str], name: str = "storeagent-test") -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": name,
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": "default"}}],
    }


class ControlPlane:
    def __init__(self, workdir: Path, bin_dir: Path | None = None, apiserver_args: Sequence[str] = (), *,
                 address: str = "127.0.0.1", fake_node: bool = True) -> None:
        """`address`: where kube-apiserver listens and advertises itself (the real-node tier uses its bridge
        address so pods reach it); `fake_node=False`: no kwok node (a real kubelet registers instead)."""
        self.workdir = Path(workdir)
        self.address = address
        self.fake_node = fake_node
        self.bin_dir = bin_dir
        self.apiserver_args = list(apiserver_args)  # extra kube-apiserver flags (the operator bench's audit log)
        self.pki = self.workdir / "pki"
        self.logs = self.workdir / "logs"
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self.api_port = 0
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def api_url(self) -> str:
        return f"https://{self.address}:{self.api_port}"

    # -- lifecycle --------------------------------------------------------------------------------------------
    def __enter__(self) -> ControlPlane:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout_s: float = 180.0) -> None:
        t0 = time.monotonic()
        if self.bin_dir is None:
            self.bin_dir = ensure_built()
        self.logs.mkdir(parents=True, exist_ok=True)
        make_pki(self.pki, self.address)
        etcd_port, peer_port = free_port(), free_port()
        self.api_port = free_port()
        p = self.pki
        self.kubeconfig.write_text(yaml.safe_dump(kubeconfig_doc(
            self.api_url, p / "ca.crt",
            {"client-certificate": str(p / "admin.crt"), "client-key": str(p / "admin.key")})))
        self._spawn("etcd", [
            "--name=default", f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{etcd_port}", f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}", f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=default=http://127.0.0.1:{peer_port}", "--listen-metrics-urls=",
            "--unsafe-no-fsync=true", "--quota-backend-bytes=4294967296", "--log-level=warn",
        ])
        self._wait(lambda: self._http_ok(f"http://127.0.0.1:{etcd_port}/health"), "etcd", t0 + timeout_s)
        self._spawn("kube-apiserver", [
            f"--etcd-servers=http://127.0.0.1:{etcd_port}", f"--bind-address={self.address}",
            f"--advertise-address={self.address}", f"--secure-port={self.api_port}",
            f"--tls-cert-file={p / 'server.crt'}", f"--tls-private-key-file={p / 'server.key'}",
            f"--client-ca-file={p / 'ca.crt'}", "--authorization-mode=RBAC",
            f"--service-account-key-file={p / 'sa.pub'}", f"--service-account-signing-key-file={p / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range=10.96.0.0/16", "--allow-privileged=true",
            "--enable-priority-and-fairness=false", "--max-requests-inflight=0",
            "--max-mutating-requests-inflight=0", f"--cert-dir={self.workdir / 'apiserver-certs'}",
            "--profiling=false", "--event-ttl=1h", *self.apiserver_args,
        ])
        self._wait(self._api_ready, "kube-apiserver", t0 + timeout_s)
        kcm_port, sched_port, kwok_port = free_port(), free_port(), free_port()
        kc = str(self.kubeconfig)
        delegated = [f"--kubeconfig={kc}", f"--authentication-kubeconfig={kc}", f"--authorization-kubeconfig={kc}"]
        self._spawn("kube-controller-manager", [
            *delegated, "--leader-elect=false", "--bind-address=127.0.0.1", f"--secure-port={kcm_port}",
            f"--service-account-private-key-file={p / 'sa.key'}", f"--root-ca-file={p / 'ca.crt'}",
            "--use-service-account-credentials=false", "--kube-api-qps=1000", "--kube-api-burst=2000",
            "--concurrent-deployment-syncs=20", "--concurrent-replicaset-syncs=20", "--concurrent-gc-syncs=40",
            "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller",
            "--profiling=false",
        ])
        sched_cfg = self.workdir / "scheduler.yaml"
        sched_cfg.write_text(yaml.safe_dump({
            "apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "KubeSchedulerConfiguration",
            "clientConnection": {"kubeconfig": kc, "qps": 1000, "burst": 2000},
            "leaderElection": {"leaderElect": False},
        }))
        self._spawn("kube-scheduler", [
            f"--config={sched_cfg}", f"--authentication-kubeconfig={kc}", f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1", f"--secure-port={sched_port}",
        ])
        if self.fake_node:
            self._spawn("kwok", [
                f"--kubeconfig={kc}", f"--config={self.bin_dir / 'kwok-stages.yaml'}",
                "--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                "--cidr=10.244.0.0/16", "--node-ip=127.0.0.1", f"--server-address=127.0.0.1:{kwok_port}",
                "--node-lease-duration-seconds=40",
            ])
            self.apply(self._fake_node())
            self._wait(self._node_ready, "kwok fake node Ready", t0 + timeout_s)
        self._wait(self._default_sa, "default ServiceAccount", t0 + timeout_s)
        print(f"controlplane: up at {self.api_url} in {time.monotonic() - t0:.1f} s (workdir {self.workdir})",
              file=sys.stderr)

    def stop(self) -> None:
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()

    def _spawn(self, name: str, args: list[str]) -> None:
        assert self.bin_dir is not None
        log = open(self.logs / f"{name}.log", "wb")
        self.procs[name] = subprocess.Popen([str(self.bin_dir / name), *args], stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True,
                                            preexec_fn=_die_with_parent)

    def _wait(self, check: Any, what: str, deadline: float) -> None:
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    tail = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"{name} exited with {proc.returncode} while waiting for {what}:\n{tail}")
            try:
                if check():
                    return
            except Exception:  # not up yet
                pass
            time.sleep(0.3)
        raise TimeoutError(f"control plane: {what} not ready in time (logs in {self.logs})")

    # -- checks ----------------------------------------------------------------------------------------------
    @staticmethod
    def _http_ok(url: str) -> bool:
        with urllib.request.urlopen(url, timeout=2) as r:
            return bool(r.status == 200)

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return ctx

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        """Admin REST call; returns parsed JSON, raises urllib.error.HTTPError on >= 400."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.api_url + path, data=data, method=method,
                                     headers={"Content-Type": content_type, "Accept": "application/json"})
        with urllib.request.urlopen(req, context=self.ssl_context(), timeout=30) as r:
            text = r.read()
            return json.loads(text) if text else None

    def _api_ready(self) -> bool:
        req = urllib.request.Request(self.api_url + "/readyz")
        with urllib.request.urlopen(req, context=self.ssl_context(), timeout=3) as r:
            return bool(r.status == 200)

    def _node_ready(self) -> bool:
        node = self.request("GET", f"/api/v1/nodes/{NODE_NAME}")
        return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))

    def _default_sa(self) -> bool:
        self.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")
        return True

    @staticmethod
    def _fake_node() -> dict[str, Any]:
        # Room for the 5,000-shop bench with headroom: an agent pod requests 250m and 256Mi, so the old 1000 CPUs
        # held exactly 4,000 pods and the 4,001st stayed Pending (Insufficient cpu): the "kwok stall at 4,000".
        big = {"cpu": "20000", "memory": "64Ti", "pods": "20000"}
        return {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": NODE_NAME, "annotations": {"kwok.x-k8s.io/node": "fake"},
                         "labels": {"type": "kwok", "kubernetes.io/hostname": NODE_NAME}},
            "status": {"allocatable": big, "capacity": big},
        }

    # -- helpers for tests -----------------------------------------------------------------------------------
    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
        assert self.bin_dir is not None
        return subprocess.run([str(self.bin_dir / "kubectl"), f"--kubeconfig={kubeconfig or self.kubeconfig}", *args],
                              input=input, capture_output=True, text=True, check=check)

    def wait_established(self, crd: str, timeout: float = 180.0) -> None:
        """Polls a CRD until its Established condition is True; fails naming what the API server last said (a
        plain `kubectl wait` right after the apply once failed at the start of a loaded CI run, saying nothing)."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            r = self.kubectl("get", f"crd/{crd}", "-o",
                             'jsonpath={.status.conditions[?(@.type=="Established")].status}', check=False)
            if r.returncode == 0 and r.stdout.strip() == "True":
                return
            last = (r.stderr or r.stdout).strip() or "no Established condition yet"
            if r.returncode == 0:
                last = self.kubectl("get", f"crd/{crd}", "-o", "jsonpath={.status.conditions}", check=False).stdout
            time.sleep(0.5)
        raise AssertionError(f"crd/{crd} not Established after {timeout:.0f} s; last: {last[:500]}")

    def apply(self, *objs: dict[str, Any]) -> None:
        """Server-side apply as the test admin."""
        self.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=storeagent-tests", "-f", "-",
                     input="\n---\n".join(json.dumps(o) for o in objs))

    def admin_client(self) -> Any:
        from kubernetes import client, config

        cfg = client.Configuration()
        config.load_kube_config(config_file=str(self.kubeconfig), client_configuration=cfg)
        return client.ApiClient(cfg)

    def token_kubeconfig(self, token: str, path: Path) -> Path:
        path.write_text(yaml.safe_dump(kubeconfig_doc(self.api_url, self.pki / "ca.crt", {"token": token})))
        return path

    def service_account_kubeconfig(self, namespace: str, name: str, path: Path | None = None,
                                   seconds: int = 7200) -> Path:
        """A kubeconfig authenticating as the ServiceAccount (TokenRequest API: a real bound token)."""
        out = self.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
                           {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                            "spec": {"expirationSeconds": seconds}})
        return self.token_kubeconfig(out["status"]["token"], path or self.workdir / f"{namespace}.{name}.kubeconfig")

    def env(self) -> dict[str, str]:
        """Environment for subprocesses (kubectl on PATH, KUBECONFIG set)."""
        assert self.bin_dir is not None
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig),
                "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
