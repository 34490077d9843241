"""The real-node tier: a test control plane + a real kubelet + containerd running the images `make images` built.

One node per session (start-up: the control plane, image import, node Ready). Everything it starts lives in its own
dirs, cgroups and network namespace and is removed at the end (support/node.py); two runs on one machine do not
meet. Package-scoped: the node is gone before the next tier runs (its pods would take CPU from it). Needs root,
network namespaces, overlayfs and writable cgroups: a machine without them fails at once saying which (preflight),
never a hang or a half-started node.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.controlplane import ControlPlane, ensure_built
from support.node import Node, NodeHost, artifacts, preflight

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="package")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    preflight()
    bin_dir = ensure_built()
    images = artifacts(bin_dir)  # fails at once naming `make images` / `make kubelet` / `make deps`
    host = NodeHost(Path(tempfile.mkdtemp(prefix="sa-node-")))  # short: unix socket paths are limited
    cp: ControlPlane | None = None
    t0 = time.monotonic()
    try:
        host.setup_network()
        # kube-apiserver on the host end of the node's veth: pods and the kubelet reach it there.
        cp = ControlPlane(tmp_path_factory.mktemp("node-controlplane"), bin_dir, address=host.host_ip,
                          fake_node=False)
        cp.start()
        host.start_containerd(images["pause"]["ref"])
        t1 = time.monotonic()
        host.import_images([images[k]["archive"] for k in ("pause", "operator", "agent", "agent-slim", "speech")])
        t2 = time.monotonic()
        host.start_kubelet(cp)
        print(f"node: up in {time.monotonic() - t0:.1f} s (images imported in {t2 - t1:.1f} s, "
              f"subnet {host.subnet}, dir {host.base})", file=sys.stderr)
        yield Node(cp, host, images)
    finally:
        for name in ("kubelet", "containerd"):
            tail = host.log_tail(name, 1500)
            if tail:
                print(f"--- {name} log tail ---\n{tail}", file=sys.stderr)
        host.stop()
        if cp is not None:
            cp.stop()
