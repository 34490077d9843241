"""A real node for tests/node/: containerd + runc + a real kubelet run the pods of a test control plane.

Network: a network namespace of our own (held by an `unshare --net` process) holds containerd, the kubelet, the
pod bridge and the pods. A veth pair joins it to the host inside one free /24: the host side is .254 (kube-apiserver
listens there; the test reaches pod IPs directly), the bridge is .1 (the kubelet's node IP), pods get .10-.200
(Debian's bridge + host-local CNI plugins). Entered with `nsenter --net` only: `ip netns exec` remounts /sys and
hides the cgroup mounts. No kube-proxy: ClusterIP Services do not route, so the operator pod is told where the API
server is (KUBERNETES_SERVICE_HOST/PORT env) and the operator reads agents' /v1/stats from pod IPs.

Everything else is per run too: containerd's root, state, socket and runc root, the kubelet's root dir, pod log dir
and port space (its own network namespace), the CNI IPAM dir, and a cgroup root of its own in every v1 hierarchy
(cgroupfs driver, `failCgroupV1: false`). `stop()` kills what the run started (by pid or by its cgroup), unmounts
what is mounted under the run's dir, removes its cgroups; the namespace and its veth go with the holder process.

    node = NodeHost(Path(tempfile.mkdtemp(prefix="sa-node-")))   # short: unix socket paths are limited
    node.setup_network()
    cp = ControlPlane(workdir, address=node.host_ip, fake_node=False); cp.start()
    node.start_containerd(); node.import_images([...]); node.start_kubelet(cp)
"""

from __future__ import annotations

import ctypes
import ipaddress
import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from support.controlplane import REPO, ControlPlane, _die_with_parent

NODE_NAME = "sa-node"
IMAGES_BUILD = REPO / "images" / "build.sh"
KUBELET_BUILD = REPO / "tests" / "controlplane" / "build-kubelet.sh"
HOST_TOOLS = {"containerd": "containerd", "containerd-shim-runc-v2": "containerd", "ctr": "containerd",
              "runc": "runc", "nsenter": "util-linux", "unshare": "util-linux", "ip": "iproute2"}
CNI_BIN = Path("/usr/lib/cni")


@dataclass
class Node:
    """What the real-node tests get: the control plane, the node host, the images it runs (name -> ref, archive)."""

    cp: ControlPlane
    host: NodeHost
    images: dict[str, dict[str, str]]


def artifacts(bin_dir: Path) -> dict[str, dict[str, str]]:
    """The images `make images` built and the kubelet `make kubelet` built; fails at once naming what is missing."""
    missing = [f"{t} (Debian {pkg}: `make deps`)" for t, pkg in HOST_TOOLS.items() if shutil.which(t) is None]
    missing += [f"{p} (containernetworking-plugins: `make deps`)" for p in ("bridge", "host-local", "loopback")
                if not (CNI_BIN / p).exists()]
    if not (bin_dir / "kubelet").exists():
        missing.append(f"{bin_dir / 'kubelet'} (`make kubelet`)")
    out = subprocess.run(["bash", str(IMAGES_BUILD), "--paths"], check=True, capture_output=True, text=True)
    images: dict[str, dict[str, str]] = json.loads(out.stdout.strip().splitlines()[-1])
    missing += [f"{i['archive']} (`make images`)" for i in images.values() if not Path(i["archive"]).exists()]
    if missing:
        raise RuntimeError("real-node tier: missing " + "; ".join(missing)
                           + " (`make test` and `make node` build them before pytest)")
    return images


def preflight() -> None:
    """What this machine must allow for a real node, each checked in seconds: a clear error instead of a hang or a
    half-started node. Run before anything is started; it leaves nothing behind."""
    problems: list[str] = []
    if os.geteuid() != 0:
        raise RuntimeError("real-node tier: needs root (network namespaces, cgroups, mounts); run it as root or "
                           "deselect it (`pytest --ignore=tests/node`)")

    def check(what: str, cmd: list[str]) -> None:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        except subprocess.TimeoutExpired:
            problems.append(f"{what}: `{' '.join(cmd)}` did not finish in 20 s")
            return
        if out.returncode != 0:
            problems.append(f"{what}: `{' '.join(cmd)}` failed: {(out.stderr or out.stdout).strip()[-300:]}")

    # A network namespace with a veth pair and a bridge (the pod network) and overlayfs (containerd's snapshotter).
    check("network namespace + veth + bridge", ["unshare", "--net", "--", "sh", "-c",
          "ip link add sapf0 type veth peer name sapf1 && ip link add sapfbr type bridge"])
    scratch = Path(tempfile.mkdtemp(prefix="sa-preflight-"))
    try:
        for sub in ("lower", "upper", "work", "merged"):
            (scratch / sub).mkdir()
        check("overlayfs", ["unshare", "--mount", "--", "mount", "-t", "overlay", "overlay", "-o",
                            f"lowerdir={scratch / 'lower'},upperdir={scratch / 'upper'},workdir={scratch / 'work'}",
                            str(scratch / "merged")])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    mounts = _cgroup_mounts()
    if not mounts:
        problems.append("no cgroup filesystem mounted")
    for mount in mounts:
        probe = mount / f"storeagent-preflight-{os.getpid()}"
        try:
            probe.mkdir()
            probe.rmdir()
        except OSError as e:
            problems.append(f"cgroup {mount} not writable: {e}")
    if problems:
        raise RuntimeError("real-node tier: this machine cannot run a node: " + "; ".join(problems))


def _free_subnet() -> ipaddress.IPv4Network:
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    used += subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=True).stdout
    for _ in range(200):
        net = ipaddress.IPv4Network(f"10.{random.randint(160, 250)}.{random.randint(0, 255)}.0/24")
        if f"10.{net.network_address.packed[1]}.{net.network_address.packed[2]}." not in used:
            return net
    raise RuntimeError("no free 10.x.y.0/24 for the node's bridge")


def _cgroup_mounts() -> list[Path]:
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, _, post = line.partition(" - ")
        if post.split()[0] in ("cgroup", "cgroup2"):  # hybrid hosts: runc also uses the unified hierarchy
            mounts.append(Path(pre.split()[4]))
    return mounts


class NodeHost:
    def __init__(self, base: Path) -> None:
        self.base = Path(base)
        self.logs = self.base / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.suffix = self.base.name.rsplit("-", 1)[-1][-8:].lower()
        self.cgroup_root = f"/storeagent-node-{self.suffix}"
        self.socket = self.base / "containerd.sock"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.subnet = ipaddress.IPv4Network("10.255.255.0/24")
        self.holder: subprocess.Popen[bytes] | None = None

    @property
    def host_ip(self) -> str:
        return str(self.subnet.network_address + 254)

    @property
    def node_ip(self) -> str:
        return str(self.subnet.network_address + 1)

    @property
    def netns(self) -> str:
        assert self.holder is not None
        return f"/proc/{self.holder.pid}/ns/net"

    def in_netns(self, *cmd: str) -> list[str]:
        return ["nsenter", f"--net={self.netns}", "--", *cmd]

    def _run(self, *cmd: str) -> None:
        subprocess.run(cmd, check=True, capture_output=True, text=True)

    # -- network ----------------------------------------------------------------------------------------------
    def setup_network(self) -> None:
        self.subnet = _free_subnet()
        self.holder = subprocess.Popen(["unshare", "--net", "--", "sleep", "infinity"], start_new_session=True,
                                       preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 10
        while os.readlink(self.netns) == os.readlink("/proc/self/ns/net"):  # unshare has not switched yet
            if time.monotonic() > deadline:
                raise RuntimeError("unshare --net never entered its namespace")
            time.sleep(0.02)
        host_if, node_if = f"sah{self.suffix[:8]}", f"san{self.suffix[:8]}"
        self._run("ip", "link", "add", host_if, "type", "veth", "peer", "name", node_if, "netns", str(self.holder.pid))
        self._run("ip", "addr", "add", f"{self.host_ip}/24", "dev", host_if)
        self._run("ip", "link", "set", host_if, "up")
        ns = self.in_netns
        self._run(*ns("ip", "link", "set", "lo", "up"))
        self._run(*ns("ip", "link", "add", "cni0", "type", "bridge"))
        self._run(*ns("ip", "addr", "add", f"{self.node_ip}/24", "dev", "cni0"))
        self._run(*ns("ip", "link", "set", node_if, "master", "cni0", "up"))
        self._run(*ns("ip", "link", "set", "cni0", "up"))

    # -- containerd -------------------------------------------------------------------------------------------
    def start_containerd(self, sandbox_image: str, timeout_s: float = 60) -> None:
        d = self.base
        cni_conf = d / "cni"
        cni_conf.mkdir(exist_ok=True)
        (cni_conf / "10-storeagent.conflist").write_text(json.dumps({
            "cniVersion": "1.0.0", "name": "storeagent-node",
            "plugins": [{"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": False,
                         "ipam": {"type": "host-local", "dataDir": str(d / "ipam"),
                                  "ranges": [[{"subnet": str(self.subnet),
                                               "rangeStart": str(self.subnet.network_address + 10),
                                               "rangeEnd": str(self.subnet.network_address + 200),
                                               "gateway": self.node_ip}]],
                                  "routes": [{"dst": "0.0.0.0/0"}]}}],
        }))
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        (d / "containerd.toml").write_text(f"""version = 2
root = "{d / 'ctr-root'}"
state = "{d / 'ctr-state'}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{self.socket}"
[ttrpc]
  address = "{self.socket}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{d / 'ctr-opt'}"
[{cri}]
  sandbox_image = "{sandbox_image}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  # No CAP_SYS_RESOURCE on CI sandboxes: the sandbox's oom_score_adj -998 makes runc fail ("can't get final
  # child's PID from pipe"); clamp adjustments to containerd's own score instead.
  restrict_oom_score_adj = true
  enable_cdi = false
[{cri}.cni]
  bin_dir = "{CNI_BIN}"
  conf_dir = "{cni_conf}"
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "{d / 'runc'}"
""")
        self._spawn("containerd", self.in_netns("containerd", f"--config={d / 'containerd.toml'}"))
        self._wait(lambda: self.ctr("version", check=False).returncode == 0, "containerd", timeout_s)

    def ctr(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(["ctr", f"--address={self.socket}", "--namespace=k8s.io", *args], capture_output=True,
                             text=True, timeout=timeout)
        if check and out.returncode != 0:
            raise RuntimeError(f"ctr {' '.join(args)} failed ({out.returncode}): {out.stderr.strip()}")
        return out

    def import_images(self, archives: list[str]) -> None:
        for archive in archives:
            self.ctr("images", "import", archive)

    # -- kubelet ----------------------------------------------------------------------------------------------
    def start_kubelet(self, cp: ControlPlane, timeout_s: float = 120) -> None:
        self._make_cgroup_root()
        d = self.base / "kubelet"
        d.mkdir(exist_ok=True)
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
            "cgroupDriver": "cgroupfs", "cgroupRoot": self.cgroup_root, "failCgroupV1": False,
            "failSwapOn": False, "address": self.node_ip, "port": 10250, "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1", "healthzPort": 10248,
            "containerRuntimeEndpoint": f"unix://{self.socket}", "podLogsDir": str(self.base / "pod-logs"),
            # The API server reaches the kubelet (logs, exec) on a bridge only this host can reach.
            "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
            "authorization": {"mode": "AlwaysAllow"},
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "2%", "imagefs.available": "2%"},
            "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
            "makeIPTablesUtilChains": False, "serializeImagePulls": False, "registerNode": True,
            "nodeStatusUpdateFrequency": "4s", "syncFrequency": "10s", "fileCheckFrequency": "10s",
            "shutdownGracePeriod": "0s",
        }
        (d / "config.yaml").write_text(yaml.safe_dump(config))
        assert cp.bin_dir is not None
        self._spawn("kubelet", self.in_netns(
            str(cp.bin_dir / "kubelet"), f"--config={d / 'config.yaml'}", f"--kubeconfig={cp.kubeconfig}",
            f"--root-dir={d / 'root'}", f"--cert-dir={d / 'pki'}", f"--hostname-override={NODE_NAME}",
            f"--node-ip={self.node_ip}", "--v=1"))
        self._wait(lambda: _node_ready(cp), "kubelet node Ready", timeout_s)

    def _make_cgroup_root(self) -> None:
        for mount in _cgroup_mounts():
            path = mount / self.cgroup_root.lstrip("/")
            path.mkdir(exist_ok=True)
            for f in ("cpuset.cpus", "cpuset.mems"):  # a new cpuset is empty until given its parent's sets
                if (mount / f).exists():
                    (path / f).write_text((mount / f).read_text())

    # -- processes --------------------------------------------------------------------------------------------
    def _spawn(self, name: str, cmd: list[str]) -> None:
        log = open(self.logs / f"{name}.log", "wb")  # lives as long as the process
        self.procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True, preexec_fn=_die_with_parent)

    def _wait(self, check: Any, what: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode} while waiting for {what}:\n"
                                       + (self.logs / f"{name}.log").read_text(errors="replace")[-3000:])
            try:
                if check():
                    return
            except Exception:  # not up yet
                pass
            time.sleep(0.3)
        raise TimeoutError(f"node: {what} not ready in {timeout_s:.0f} s (logs in {self.logs})")

    def log_tail(self, name: str, n: int = 3000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-n:] if path.exists() else ""

    # -- teardown ---------------------------------------------------------------------------------------------
    def stop(self) -> None:
        _terminate(self.procs.pop("kubelet", None), 15)
        self._kill_cgroup_procs()  # every pod process (pause included) lives under our cgroup root
        self._kill_shims()
        _terminate(self.procs.pop("containerd", None), 15)
        self._kill_shims()
        self._unmount_all()
        self._remove_cgroups()
        if self.holder is not None:
            _terminate(self.holder, 5)
            self.holder = None
        shutil.rmtree(self.base, ignore_errors=True)

    def _our_cgroup_dirs(self) -> list[Path]:
        out: list[Path] = []
        for mount in _cgroup_mounts():
            root = mount / self.cgroup_root.lstrip("/")
            try:  # the kubelet may be removing pod cgroups while we walk
                out += sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
            except OSError:
                continue
            out.append(root)
        return out

    def _kill_cgroup_procs(self) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            pids = set()
            for d in self._our_cgroup_dirs():
                try:
                    pids |= {int(p) for p in (d / "cgroup.procs").read_text().split()}
                except OSError:
                    pass
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)

    def _kill_shims(self) -> None:
        """The runc shims our containerd started (their command line names our socket)."""
        needle = str(self.socket).encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if b"containerd-shim" in cmdline and needle in cmdline:
                try:
                    os.kill(int(proc.name), signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def _unmount_all(self) -> None:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        base = str(self.base)
        for _ in range(3):
            points = []
            for line in Path("/proc/self/mountinfo").read_text().splitlines():
                point = line.split()[4].replace("\\040", " ")
                if point == base or point.startswith(base + "/"):
                    points.append(point)
            if not points:
                return
            for point in sorted(points, key=len, reverse=True):
                libc.umount2(point.encode(), 2)  # MNT_DETACH

    def _remove_cgroups(self) -> None:
        for d in self._our_cgroup_dirs():
            try:
                d.rmdir()
            except OSError:
                pass


def _terminate(proc: subprocess.Popen[bytes] | None, grace_s: float) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _node_ready(cp: ControlPlane) -> bool:
    node = cp.request("GET", f"/api/v1/nodes/{NODE_NAME}")
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))
