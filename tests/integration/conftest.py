"""Fixtures on a real control plane: one per session (start-up costs seconds, the Go build minutes once).

`control_plane` is the reusable piece (the Helm chart tests import it too); `operator` runs the StoreAgent
operator under the chart's RBAC rules against it, with a FreeSWITCH inbound-ESL stand-in for `reloadxml`,
a real agent process whose /v1/stats it reads, and its own /metrics served on a free port.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from storeagent.operator.metrics import ADDRESS_ENV
from support.agent_process import AgentProcess
from support.controlplane import ControlPlane, free_port
from support.fake_freeswitch_esl import FakeFreeSwitchEsl
from support.operator_env import OperatorProcess, install


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with ControlPlane(tmp_path_factory.mktemp("controlplane")) as cp:
        yield cp


@pytest.fixture(scope="session")
def agent_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    """A real `storeagent agent serve` (offline providers); the operator reads its /v1/stats for every shop
    (pods under kwok run nothing) and tests place loopback calls into its ESL port."""
    with AgentProcess(tmp_path_factory.mktemp("agent")) as agent:
        yield agent
        print(f"agent log: {agent.log_path}", file=sys.stderr)


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
    metrics_address: str  # host:port of the operator's /metrics (what the chart's ServiceMonitor scrapes)

    def restart(self) -> None:
        self.proc.kill()
        self.proc.start()


@pytest.fixture(scope="session")
def operator(control_plane: ControlPlane, fake_esl: FakeFreeSwitchEsl, agent_process: AgentProcess,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorEnv]:
    kubeconfig = install(control_plane)
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    metrics_address = f"127.0.0.1:{free_port()}"  # fixed across restarts, so Prometheus keeps its target
    proc = OperatorProcess(kubeconfig, log, [
        f"--freeswitch-esl=127.0.0.1:{fake_esl.port}", "--stats-interval=2", "--dialplan-settle-seconds=30",
        f"--stats-address-override={agent_process.stats_address}", "--verbose",
    ], extra_env={ADDRESS_ENV: metrics_address}).start()
    env = OperatorEnv(control_plane, kubeconfig, fake_esl, proc, metrics_address)
    try:
        yield env
    finally:
        proc.stop()
        print(f"operator log: {log}", file=sys.stderr)
