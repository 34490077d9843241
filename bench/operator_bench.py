"""`make bench-operator [N=1000]`: N shops on a real control plane, with and without the operator, in one run.

1. Floor: a fresh control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok) takes the
   same objects without the operator: the bench POSTs the N StoreAgents, applies each shop's six children
   itself (the operator's own pure builders, server-side apply, the operator's field manager) and writes the
   16 dialplan ConfigMaps once. Done when every Deployment has its pods Ready (kwok) and the dialplans are in.
2. Operator: another fresh control plane of the same build and flags; the operator runs as in production (a
   subprocess under the chart's RBAC, default settings, a FreeSWITCH inbound-ESL stand-in for `reloadxml`, and
   a stand-in answering every agent's /v1/stats). The bench POSTs the N StoreAgents with the same client and
   concurrency; done when every one reports Ready=True at its generation. Then onboarding: one more shop every
   `--onboard-interval` s (`--onboard` of them) while the stats loop polls all N: create -> Ready p50/p95.

Readiness comes from watches (the time each event arrived), CPU from /proc/<pid>/stat, peak RSS from VmHWM,
CPU pressure from /proc/pressure/cpu, requests by verb from the API server's audit log
(bench/operator-audit-policy.yaml). Prints a summary to stderr; the LAST line on stdout is one JSON object.

    python bench/operator_bench.py [--count 1000] [--onboard 30] [--skip-floor | --skip-operator] [--timeout 1800]
                                       [--deadline S]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from opbench_lib import (
    Pressure,
    Shop,
    StatsServer,
    Watch,
    audit_counts,
    by_component,
    cpu_s,
    deployment_ready,
    loadavg,
    per_shop,
    quantile,
    storeagent_ready,
    tail,
    vm_mb,
)

from storeagent.operator import dialplan, model, resources, settings
from storeagent.operator.k8s import Api, ApiError, load_credentials
from support.controlplane import REPO, ControlPlane
from support.fake_freeswitch_esl import FakeFreeSwitchEsl
from support.operator_env import API, SYSTEM_NS, OperatorProcess, create_namespace, install

NS = "bench"
POLICY = REPO / "bench" / "operator-audit-policy.yaml"
OPERATOR_USER = f"system:serviceaccount:{SYSTEM_NS}:storeagent-operator"
ADMIN_USER = "storeagent-test-admin"
Obj = dict[str, Any]


# Every process the bench started (control-plane components, the operator), as pid providers: a SIGTERM ends
# them first, by pid, and only then unwinds (the components run in sessions of their own, so a signal to the
# bench's process group does not reach them, and an unwind stuck on a busy API server must not leave them).
LIVE: list[Callable[[], list[int]]] = []


def on_sigterm(*_: object) -> None:
    for pids in list(LIVE):
        for pid in pids():
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
    signal.signal(signal.SIGALRM, lambda *_: os._exit(143))  # the unwind itself is bounded too
    signal.alarm(30)
    raise SystemExit(143)


def live_pids(cp: ControlPlane) -> Callable[[], list[int]]:
    return lambda: [p.pid for p in cp.procs.values() if p.poll() is None]


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def storeagent(i: int, replicas: int) -> Obj:
    return {
        "apiVersion": "storeagent.dev/v1alpha1", "kind": "StoreAgent",
        "metadata": {"name": f"shop-{i:05d}", "namespace": NS},
        "spec": {
            "phoneNumbers": [f"+1555{i:07d}"],
            "profile": {"name": f"Shop {i}", "timezone": "America/New_York",
                        "hours": {"monday": [{"open": "08:00", "close": "17:00"}]},
                        "menu": [{"name": "coffee", "price": "2.50"}, {"name": "bagel", "price": "3.00"}]},
            "fallback": {"forwardTo": f"+1666{i:07d}"},
            "scaling": {"replicas": replicas, "maxCallsPerPod": 20},
        },
    }


def control_plane(workdir: Path) -> ControlPlane:
    audit = ["--audit-log-format=json", f"--audit-policy-file={POLICY}", f"--audit-log-path={workdir / 'audit.log'}",
             "--audit-log-maxsize=0", "--audit-log-maxbackup=0"]
    return ControlPlane(workdir, apiserver_args=audit)


async def create(api: Api, doc: Obj) -> Obj:
    path = f"{API}/namespaces/{NS}/storeagents"
    for attempt in range(8):
        try:
            out = await api.request("POST", path, doc)
            assert out is not None
            return out
        except ApiError as e:
            if e.status == 409:
                got = await api.request("GET", f"{path}/{doc['metadata']['name']}")
                assert got is not None
                return got
        except (aiohttp.ClientError, TimeoutError):
            pass
        await asyncio.sleep(0.5 * (attempt + 1))
    raise RuntimeError(f"could not create {doc['metadata']['name']}")


async def bounded(n: int, jobs: list[Callable[[], Awaitable[None]]], stop_at: float = float("inf")) -> None:
    """Run `jobs`, `n` at a time; those not done by `stop_at` (the run's deadline) are cancelled."""
    slots = asyncio.Semaphore(n)

    async def one(job: Callable[[], Awaitable[None]]) -> None:
        async with slots:
            await job()

    try:
        await asyncio.wait_for(asyncio.gather(*(one(j) for j in jobs)), max(0.0, stop_at - time.monotonic()))
    except TimeoutError:
        log("deadline reached while creating: the rest is not created")


def cp_cpu(cp: ControlPlane) -> dict[str, float]:
    return {name: round(cpu_s(p.pid), 1) for name, p in cp.procs.items()}


def minus(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: round(v - b.get(k, 0.0), 1) for k, v in a.items()}


def watch_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(read_bufsize=2**22, timeout=aiohttp.ClientTimeout(total=None))


async def wait_ready(shops: dict[str, Shop], names: list[str], timeout_at: float, what: str,
                     sample: Callable[[], None] = lambda: None) -> bool:
    last = 0.0
    while time.monotonic() < timeout_at:
        sample()
        ready = sum(1 for n in names if shops[n].ready is not None)
        if ready == len(names):
            log(f"{what}: {ready}/{len(names)} Ready (load average {loadavg()})")
            return True
        if time.monotonic() - last > 10:
            log(f"{what}: {ready}/{len(names)} Ready (load average {loadavg()})")
            last = time.monotonic()
        await asyncio.sleep(0.5)
    return False


# -- 1. the floor ----------------------------------------------------------------------------------------------
async def floor(cp: ControlPlane, a: argparse.Namespace) -> Obj:
    cfg, _ = settings.parse([])
    api = Api(load_credentials(str(cp.kubeconfig)))
    creds = load_credentials(str(cp.kubeconfig))
    names = [f"shop-{i:05d}" for i in range(a.count)]
    shops = {n: Shop() for n in names}

    def on_deployment(o: Obj) -> None:
        s = shops.get(o["metadata"]["name"])
        if s is not None and s.ready is None and deployment_ready(o):
            s.ready = s.deployment_ready = time.monotonic()

    files: dict[str, dict[str, str]] = {}
    async with watch_session() as session:
        w = Watch(session, creds, f"/apis/apps/v1/namespaces/{NS}/deployments", on_deployment).start()
        await w.synced.wait()
        base_cpu, psi = cp_cpu(cp), Pressure()
        t0 = time.monotonic()

        async def shop(i: int) -> None:
            doc = storeagent(i, a.replicas)
            shops[names[i]].created = time.monotonic()
            made = await create(api, doc)
            meta = made["metadata"]
            parsed = model.parse_spec(doc["spec"])
            sh = resources.Shop(meta["name"], NS, meta["uid"], parsed)
            *support, deployment = resources.desired_all(sh, cfg)
            await asyncio.gather(*(api.apply(o) for o in support))
            await api.apply(deployment)
            xml = dialplan.render(namespace=NS, name=sh.name, numbers=list(parsed.phone_numbers),
                                  service_host=sh.service_host, esl_port=resources.ESL_PORT, fallback=parsed.fallback,
                                  bridge_template=settings.bridge_template(cfg.gateway),
                                  apology=dialplan.apology_file(parsed.language), generation=meta.get("generation", 1))
            shard = dialplan.configmap_name(dialplan.shard_of(NS, sh.name))
            files.setdefault(shard, {})[dialplan.file_key(NS, sh.name)] = xml

        await bounded(a.workers, [lambda i=i: shop(i) for i in range(a.count)], a.stop_at)  # type: ignore[misc]
        applied_s = time.monotonic() - t0
        # The dialplan ConfigMaps, written once with every shop's file.
        await asyncio.gather(*(api.apply({"apiVersion": "v1", "kind": "ConfigMap",
                                          "metadata": {"name": shard, "namespace": cfg.freeswitch_namespace,
                                                       "labels": {"app.kubernetes.io/managed-by": resources.MANAGED_BY,
                                                                  "storeagent.dev/dialplan": "true"}},
                                          "data": data}) for shard, data in files.items()))
        dialplans_s = time.monotonic() - t0
        ok = await wait_ready(shops, names, min(t0 + a.timeout, a.stop_at), "floor")
        await w.stop()
    await api.close()
    times = [s.ready for s in shops.values() if s.ready is not None]
    converge = max([*times, t0 + dialplans_s]) - t0 if ok else None
    return {"converge_s": round(converge, 1) if converge else None, "ready": len(times),
            "waited_s": round(time.monotonic() - t0, 1), "applied_s": round(applied_s, 1),
            "dialplans_written_s": round(dialplans_s, 1), "cpu_pressure_pct": psi.percent(),
            "control_plane_cpu_s": minus(cp_cpu(cp), base_cpu), "tail": tail(shops, t0)}


# -- 2. the operator -------------------------------------------------------------------------------------------
async def with_operator(cp: ControlPlane, a: argparse.Namespace, tmp: Path, marks: dict[str, datetime]) -> Obj:
    kubeconfig = install(cp)
    create_namespace(cp, NS)
    with FakeFreeSwitchEsl() as esl, StatsServer() as stats:
        op = OperatorProcess(kubeconfig, tmp / "operator.log", [f"--freeswitch-esl=127.0.0.1:{esl.port}",
                                                                f"--stats-address-override={stats.address}",
                                                                *a.operator_arg])
        op.start()
        LIVE.append(lambda: [op.pid] if op.alive() else [])
        api = Api(load_credentials(str(cp.kubeconfig)))
        try:
            return await measure_operator(cp, a, api, op, esl, stats, marks)
        finally:
            await api.close()
            op.stop()


async def measure_operator(cp: ControlPlane, a: argparse.Namespace, api: Api, op: OperatorProcess,
                           esl: FakeFreeSwitchEsl, stats: StatsServer, marks: dict[str, datetime]) -> Obj:
    creds = load_credentials(str(cp.kubeconfig))
    names = [f"shop-{i:05d}" for i in range(a.count)]
    extra = [f"shop-{i:05d}" for i in range(a.count, a.count + a.onboard)]
    shops = {n: Shop() for n in [*names, *extra]}
    now = time.monotonic
    peak = [0.0]

    def on_storeagent(o: Obj) -> None:
        s = shops.get(o["metadata"]["name"])
        if s is None:
            return
        ok, reason = storeagent_ready(o)
        label = "Ready" if ok else reason
        if not s.reasons or s.reasons[-1][1] != label:
            s.reasons.append((now(), label))
        if ok and s.ready is None:
            s.ready = now()

    def on_deployment(o: Obj) -> None:
        s = shops.get(o["metadata"]["name"])
        if s is not None and s.deployment_ready is None and deployment_ready(o):
            s.deployment_ready = now()

    def sample() -> None:
        peak[0] = max(peak[0], vm_mb(op.pid))
        if not op.alive():
            raise RuntimeError("operator exited:\n" + op.log_tail())

    async with watch_session() as session:
        ws = [Watch(session, creds, f"{API}/namespaces/{NS}/storeagents", on_storeagent).start(),
              Watch(session, creds, f"/apis/apps/v1/namespaces/{NS}/deployments", on_deployment).start()]
        await asyncio.gather(*(w.synced.wait() for w in ws))
        await asyncio.sleep(5)  # the operator up and watching before the burst
        idle_rss = vm_mb(op.pid, "VmRSS")
        base_cpu, op_cpu0, psi = cp_cpu(cp), cpu_s(op.pid), Pressure()
        marks["operator_from"] = datetime.now(UTC)
        t0 = now()

        async def shop(i: int) -> None:
            shops[f"shop-{i:05d}"].created = now()
            await create(api, storeagent(i, a.replicas))

        await bounded(a.workers, [lambda i=i: shop(i) for i in range(a.count)], a.stop_at)  # type: ignore[misc]
        applied_s = now() - t0
        log(f"operator: {a.count} StoreAgents created in {applied_s:.1f} s")
        ok = await wait_ready(shops, names, min(t0 + a.timeout, a.stop_at), "operator", sample)
        sample()
        marks["operator_converged"] = datetime.now(UTC)
        times = [shops[n].ready for n in names if shops[n].ready is not None]
        out: Obj = {
            "converge_s": round(max(times) - t0, 1) if ok and times else None, "ready": len(times),
            "waited_s": round(now() - t0, 1), "created_s": round(applied_s, 1), "cpu_pressure_pct": psi.percent(),
            "operator_cpu_s": round(cpu_s(op.pid) - op_cpu0, 1), "operator_idle_rss_mb": round(idle_rss, 1),
            "operator_rss_at_converge_mb": round(vm_mb(op.pid, "VmRSS"), 1),
            "operator_peak_rss_mb": round(peak[0], 1), "control_plane_cpu_s": minus(cp_cpu(cp), base_cpu),
            "reloadxml_rounds": esl.reloads, "tail": tail({n: shops[n] for n in names}, t0),
        }
        if ok and a.onboard and now() + a.settle + a.onboard * a.onboard_interval + 60 < a.stop_at:
            out["onboarding"] = await onboard(a, api, shops, extra, sample, stats, marks)
        sample()
        out["operator_peak_rss_mb"] = round(peak[0], 1)
        for w in ws:
            await w.stop()
    return out


async def onboard(a: argparse.Namespace, api: Api, shops: dict[str, Shop], extra: list[str],
                  sample: Callable[[], None], stats: StatsServer, marks: dict[str, datetime]) -> Obj:
    """With N shops converged and their stats being polled: one new shop every interval, create -> Ready."""
    await asyncio.sleep(a.settle)
    polls0, psi = stats.polls, Pressure()
    marks["onboard_from"] = datetime.now(UTC)
    t_start = time.monotonic()
    pending: list[asyncio.Task[Obj]] = []
    for k, name in enumerate(extra):
        shops[name].created = time.monotonic()
        pending.append(asyncio.create_task(create(api, storeagent(a.count + k, a.replicas))))
        await asyncio.sleep(a.onboard_interval)
        sample()
    await asyncio.gather(*pending)
    await wait_ready(shops, extra, min(time.monotonic() + 180, a.stop_at), "onboarding", sample)
    marks["onboard_until"] = datetime.now(UTC)
    lat = [s.ready - s.created for n in extra if (s := shops[n]).ready is not None and s.created is not None]
    pods = [s.deployment_ready - s.created for n in extra
            if (s := shops[n]).deployment_ready is not None and s.created is not None]
    return {"shops": len(extra), "ready": len(lat), "p50_s": quantile(lat, 0.5), "p95_s": quantile(lat, 0.95),
            "max_s": quantile(lat, 1.0), "pods_ready_p50_s": quantile(pods, 0.5),
            "pods_ready_p95_s": quantile(pods, 0.95), "cpu_pressure_pct": psi.percent(),
            "stats_polls_per_s": round((stats.polls - polls0) / max(0.1, time.monotonic() - t_start), 1)}


def requests(audit: Path, user: str, n: int, since: datetime | None, until: datetime | None,
             agent: Callable[[str], bool] = lambda _: True) -> Obj:
    by_verb, by_code = audit_counts(audit, user, since, until, agent)
    return {"per_shop": per_shop(by_verb, n), "codes": dict(by_code)}


def is_bench(user_agent: str) -> bool:
    return "aiohttp" in user_agent  # the bench's client; the control plane's components name themselves


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--replicas", type=int, default=1, help="agent pods per shop")
    p.add_argument("--timeout", type=float, default=1800, help="seconds for each phase to converge")
    p.add_argument("--workers", type=int, default=32, help="shops created concurrently (both phases)")
    p.add_argument("--onboard", type=int, default=30, help="shops created one by one after converging (0: none)")
    p.add_argument("--onboard-interval", type=float, default=2.0)
    p.add_argument("--settle", type=float, default=20.0, help="seconds of steady state before onboarding")
    p.add_argument("--skip-floor", action="store_true")
    p.add_argument("--skip-operator", action="store_true", help="the floor alone")
    p.add_argument("--operator-arg", action="append", default=[], help="extra operator flag (repeat)")
    p.add_argument("--deadline", type=float, default=0,
                   help="seconds for the whole run (0: none): phases stop waiting then and report what they have")
    a = p.parse_args(argv)
    # SIGTERM (timeout, CI cancel) unwinds the context managers, so no control-plane process is left behind.
    signal.signal(signal.SIGTERM, on_sigterm)
    a.stop_at = time.monotonic() + a.deadline if a.deadline else float("inf")
    result: Obj = {"storeagents": a.count, "replicas_per_shop": a.replicas, "load_before": loadavg()}
    with tempfile.TemporaryDirectory(prefix="operator-bench-") as tmp_s:
        tmp = Path(tmp_s)
        if not a.skip_floor:
            (tmp / "floor").mkdir()
            cp = control_plane(tmp / "floor")
            LIVE.append(live_pids(cp))
            with cp:
                install(cp)
                create_namespace(cp, NS)
                result["floor"] = asyncio.run(floor(cp, a))
            floor_audit = tmp / "floor" / "audit.log"
            result["floor"]["requests"] = requests(floor_audit, ADMIN_USER, a.count, None, None, is_bench)
            result["floor"]["control_plane_requests_per_shop"] = per_shop(
                +Counter({k: v for k, v in by_component(floor_audit, ADMIN_USER).items() if k != "Python"}), a.count)
            log(f"floor: {json.dumps(result['floor'])}")
        if not a.skip_operator:
            (tmp / "op").mkdir()
            marks: dict[str, datetime] = {}
            cp = control_plane(tmp / "op")
            LIVE.append(live_pids(cp))
            with cp:
                result["operator"] = asyncio.run(with_operator(cp, a, tmp, marks))
            audit = tmp / "op" / "audit.log"
            result["operator"]["control_plane_requests_per_shop"] = per_shop(
                +Counter({k: v for k, v in by_component(audit, ADMIN_USER).items() if k != "Python"}), a.count)
            result["operator"]["requests"] = requests(audit, OPERATOR_USER, a.count, marks.get("operator_from"),
                                                      marks.get("operator_converged"))
            if "onboard_from" in marks:
                result["operator"]["onboarding"]["requests"] = requests(
                    audit, OPERATOR_USER, a.onboard, marks["onboard_from"], marks.get("onboard_until"))
    if a.skip_operator:
        print(json.dumps(result))
        return 0 if (result.get("floor") or {}).get("converge_s") else 1
    op, fl = result["operator"], result.get("floor") or {}
    if op.get("converge_s") and fl.get("converge_s"):
        result["ratio_to_floor"] = round(op["converge_s"] / fl["converge_s"], 2)
    result["rss_per_shop_kb"] = round(1024 * (op["operator_rss_at_converge_mb"] - op["operator_idle_rss_mb"])
                                      / max(1, a.count), 1)
    log(f"operator: {json.dumps(op)}")
    ob = op.get("onboarding") or {}
    log(f"{a.count} shops: floor {fl.get('converge_s')} s, operator {op.get('converge_s')} s, ratio "
        f"{result.get('ratio_to_floor')}; operator CPU {op['operator_cpu_s']} s, peak RSS "
        f"{op['operator_peak_rss_mb']} MB; onboarding p50 {ob.get('p50_s')} s p95 {ob.get('p95_s')} s")
    print(json.dumps(result))
    return 0 if op.get("converge_s") and (not a.onboard or ob.get("ready") == a.onboard) else 1


if __name__ == "__main__":
    raise SystemExit(main())
