"""The owner web as it runs: `storeagent web serve` as a child process against a real API server (StoreAgents
in namespace `shops`, the web's ServiceAccount holding only the chart's web RBAC rules), with a real agent on
offline providers accepting browser test calls; and Chromium (Debian's) driven by Playwright."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from support.agent_process import AgentProcess
from support.controlplane import ControlPlane, _die_with_parent, free_port
from support.procs import log_tail, terminate
from support.webtest import EXAMPLE, KO_EXAMPLE, SECRET

ROOT = Path(__file__).resolve().parents[2]
NS = "shops"
WEB_SA = "storeagent-web"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def web_rbac(cp: ControlPlane) -> Path:
    """The web's ServiceAccount with exactly the chart's rules; returns its kubeconfig (a real bound token)."""
    rules = yaml.safe_load((ROOT / "charts/storeagent/files/web-rbac-rules.yaml").read_text())
    cp.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": WEB_SA, "namespace": NS}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": WEB_SA},
         "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": WEB_SA},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": WEB_SA},
         "subjects": [{"kind": "ServiceAccount", "name": WEB_SA, "namespace": NS}]},
    )
    return cp.service_account_kubeconfig(NS, WEB_SA)


def apply_shops(cp: ControlPlane) -> None:
    docs = []
    for f in (EXAMPLE, KO_EXAMPLE):
        doc = yaml.safe_load(f.read_text())
        doc["metadata"]["namespace"] = NS
        docs.append(doc)
    cp.apply(*docs)


def get_storeagent(cp: ControlPlane, name: str) -> dict[str, Any]:
    out: dict[str, Any] = cp.request("GET", f"/apis/storeagent.dev/v1alpha1/namespaces/{NS}/storeagents/{name}")
    return out


@contextlib.contextmanager
def agent_for_browser_calls(workdir: Path, key_file: Path) -> Iterator[AgentProcess]:
    saved = dict(os.environ)
    os.environ.update({"STOREAGENT_WEB_SESSIONS": "1", "STOREAGENT_STREAM_TOKEN_KEY_FILE": str(key_file)})
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        agent = AgentProcess(workdir).start(timeout_s=120)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    try:
        yield agent
    finally:
        agent.stop()


class WebProcess:
    def __init__(self, workdir: Path, kubeconfig: Path, agent_http: str, key_file: Path) -> None:
        self.workdir, self.port = workdir, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = str(workdir / "web.sqlite")
        self.log = workdir / "web.log"
        secret = workdir / "webhook.secret"
        secret.write_bytes(SECRET)
        shops = ["shops.sunrise-bakery", "shops.gangnam-chicken"]
        self.cmd = [str(Path(sys.executable).parent / "storeagent"), "web", "serve", "--host", "127.0.0.1",
                    "--port", str(self.port), "--db", self.db, "--kubeconfig", str(kubeconfig), "--insecure-cookies",
                    "--public-url", self.url, "--agent", f"shops.sunrise-bakery={agent_http}",
                    "--stream-token-key-file", str(key_file)]
        for s in shops:
            self.cmd += ["--shop", s, "--webhook-secret-file", f"{s}={secret}"]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WebProcess:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(OSError):
                urllib.request.urlopen(self.url + "/healthz", timeout=2).close()
                return self
            time.sleep(0.2)
        raise RuntimeError(f"storeagent web did not start:\n{log_tail(self.log)}")

    def invite(self, shop: str) -> str:
        out = subprocess.run([str(Path(sys.executable).parent / "storeagent"), "web", "invite", "--shop", shop,
                              "--db", self.db, "--public-url", self.url], capture_output=True, text=True, check=True)
        return out.stdout.strip()

    def post_item(self, shop: str, body: bytes, signature: str) -> int:
        req = urllib.request.Request(f"{self.url}/v1/ingest/{shop}", data=body, method="POST",
                                     headers={"Content-Type": "application/json",
                                              "X-StoreAgent-Signature": signature})
        with urllib.request.urlopen(req, timeout=10) as r:
            return int(r.status)

    def stop(self) -> None:
        terminate(self.proc)


def launch_chromium(pw: Any, user_data: Path, fake_audio: Path | None = None) -> Any:
    """A persistent context on a fresh profile (Playwright's `launch` refuses --user-data-dir)."""
    if not CHROMIUM.exists():
        raise RuntimeError("Chromium is not installed: add `chromium` to .ci/apt-packages.txt and run `make deps`")
    args = list(CHROMIUM_ARGS)
    if fake_audio is not None:
        args += ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 f"--use-file-for-fake-audio-capture={fake_audio}%noloop", "--autoplay-policy=no-user-gesture-required"]
    return pw.chromium.launch_persistent_context(
        str(user_data), executable_path=str(CHROMIUM), args=args, headless=True, chromium_sandbox=False,
        viewport={"width": 1280, "height": 860}, locale="en-US", permissions=["microphone"])


def dump(obj: object) -> str:
    return json.dumps(obj, indent=1, ensure_ascii=False)[:3000]
