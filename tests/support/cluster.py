"""`make cluster`: a local control plane with the StoreAgent operator and the example shop, for a walkthrough.

Starts etcd/kube-apiserver/kcm/scheduler/kwok on 127.0.0.1 (built once, cached), installs the CRD and the
operator's RBAC, runs the operator under that ServiceAccount, applies examples/sunrise-bakery.yaml and waits
for it to be Ready. Then prints how to point kubectl at it and keeps running until Ctrl-C.

    python tests/support/cluster.py [--workdir DIR] [--no-example] [--exit-when-ready]
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ -> `support` importable

from support.controlplane import REPO, ControlPlane
from support.fake_freeswitch_esl import FakeFreeSwitchEsl
from support.operator_env import OperatorProcess, install, wait_for

EXAMPLE = REPO / "examples" / "sunrise-bakery.yaml"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, default=REPO / "out" / "cluster")
    p.add_argument("--no-example", action="store_true", help="do not apply the example shop")
    p.add_argument("--exit-when-ready", action="store_true", help="tear down once the example is Ready (CI smoke)")
    a = p.parse_args(argv)
    if a.workdir.exists():
        shutil.rmtree(a.workdir)
    a.workdir.mkdir(parents=True)
    with ControlPlane(a.workdir) as cp, FakeFreeSwitchEsl() as esl:
        kubeconfig = install(cp)
        # FreeSWITCH itself cannot run here: a stand-in answers the operator's `reloadxml` over inbound ESL.
        op = OperatorProcess(kubeconfig, a.workdir / "operator.log",
                             [f"--freeswitch-esl=127.0.0.1:{esl.port}", "--stats-interval=5"]).start()
        try:
            if not a.no_example:
                print(f"$ kubectl apply -f {EXAMPLE.relative_to(REPO)}")
                print(cp.kubectl("apply", "-f", str(EXAMPLE), "-n", "default").stdout.strip())
                print("$ kubectl wait --for=condition=Ready storeagent/sunrise-bakery --timeout=180s")
                wait_for(lambda: cp.kubectl("wait", "--for=condition=Ready", "storeagent/sunrise-bakery",
                                            "--timeout=10s", check=False).returncode == 0, 180, "example Ready")
                print("$ kubectl get storeagents")
                print(cp.kubectl("get", "storeagents").stdout.rstrip())
                print("$ kubectl get pods -l storeagent.dev/store=sunrise-bakery")
                print(cp.kubectl("get", "pods", "-l", "storeagent.dev/store=sunrise-bakery").stdout.rstrip())
            if a.exit_when_ready:
                return 0
            print(f"""
Control plane up at {cp.api_url}; operator log: {a.workdir / 'operator.log'}
In another shell:
  export KUBECONFIG={cp.kubeconfig} PATH={cp.bin_dir}:$PATH
  kubectl get storeagents -A            # or: kubectl get stag
  kubectl get configmap -n storeagent-system storeagent-dialplan-NN -o yaml   # the rendered dialplans
Ctrl-C stops everything.""")
            stop = False

            def on_signal(*_: object) -> None:
                nonlocal stop
                stop = True

            signal.signal(signal.SIGINT, on_signal)
            signal.signal(signal.SIGTERM, on_signal)
            while not stop and op.alive():
                time.sleep(0.5)
            if not op.alive():
                print(f"operator exited:\n{op.log_tail()}", file=sys.stderr)
                return 1
            return 0
        finally:
            op.stop()


if __name__ == "__main__":
    raise SystemExit(main())
