"""Fixtures on a real control plane: one per session (start-up costs seconds, the Go build minutes once).

`control_plane` is the reusable piece (the Helm chart tests import it too); `operator` runs the StoreAgent
operator under the chart's RBAC rules against it, with a FreeSWITCH inbound-ESL stand-in for `reloadxml`
and an agent process answering /v1/stats.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.controlplane import ControlPlane
from support.fake_freeswitch_esl import FakeFreeSwitchEsl
from support.operator_env import OperatorProcess, install

SUPPORT = Path(__file__).resolve().parents[1] / "support"


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with ControlPlane(tmp_path_factory.mktemp("controlplane")) as cp:
        yield cp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def agent_stats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running agent process serving /v1/stats; yields its host:port.

    SWAP POINT for the lead: this starts tests/support/agent_standin.py (a clearly marked stand-in); replace
    with `storeagent agent serve --config <shop.yaml> --host 127.0.0.1 --esl-port <p> --http-port <p>` plus
    a loopback call once the real agent can be held in a live call here.
    """
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-P", str(SUPPORT / "agent_standin.py"), "serve",
                             "--host", "127.0.0.1", "--http-port", str(port)])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def fake_esl() -> Iterator[FakeFreeSwitchEsl]:
    with FakeFreeSwitchEsl() as esl:
        yield esl


@dataclass
class OperatorEnv:
    cp: ControlPlane
    kubeconfig: Path
    esl: FakeFreeSwitchEsl
    proc: OperatorProcess

    def restart(self) -> None:
        self.proc.kill()
        self.proc.start()


@pytest.fixture(scope="session")
def operator(control_plane: ControlPlane, fake_esl: FakeFreeSwitchEsl, agent_stats: str,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorEnv]:
    kubeconfig = install(control_plane)
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    proc = OperatorProcess(kubeconfig, log, [
        f"--freeswitch-esl=127.0.0.1:{fake_esl.port}", "--stats-interval=2", "--dialplan-settle-seconds=30",
        f"--stats-address-override={agent_stats}", "--verbose",
    ]).start()
    env = OperatorEnv(control_plane, kubeconfig, fake_esl, proc)
    try:
        yield env
    finally:
        proc.stop()
        print(f"operator log: {log}", file=sys.stderr)
