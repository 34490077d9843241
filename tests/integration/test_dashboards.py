"""Every panel query of every Grafana dashboard, evaluated by a real Prometheus that scraped a real agent serving
loopback calls and the real operator reconciling a StoreAgent, must return data. An empty, NaN-only or invalid panel
fails; so does a template variable that resolves to nothing.

Operator series come from the operator process of the control-plane tests (the session `operator` fixture, with
STOREAGENT_OPERATOR_METRICS_ADDRESS set as the chart sets it): a shop is applied once Prometheus scrapes it, so its
reconciles, dialplan reload and shop gauges land inside the queried range.
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import queue
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.agent_traffic import place_calls, serving_agent
from support.operator_env import create_namespace, get_or_none, storeagent_path, wait_for
from support.prometheus import PrometheusServer, ScrapeJob
from support.speech_service import caller_speech, speech_service

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHART = Path(__file__).resolve().parents[2] / "charts" / "storeagent"
DASHBOARDS = sorted((CHART / "dashboards").glob("*.json"))
NAMESPACE = "shops"  # the label a PodMonitor scrape adds to agent series
SHOP_NS, SHOP = "dashboards", "dash-bakery"  # the StoreAgent the operator reconciles under Prometheus's eye
EXAMPLE = CHART.parents[1] / "examples" / "sunrise-bakery.yaml"
# Grafana's built-ins as Grafana would expand them for a "last 5 minutes" view.
BUILTINS = {"__rate_interval": "5m", "__interval": "15s", "__range": "5m"}


def panels() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                yield board["uid"], panel, target


def substitute(expr: str, variables: dict[str, str]) -> str:
    def one(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name not in variables:
            raise AssertionError(f"query uses ${name}, which the test cannot resolve: {expr}")
        return variables[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", one, expr)


def has_data(result: list[dict[str, Any]]) -> bool:
    """At least one series with at least one finite value."""
    for series in result:
        values = series.get("values") or [series["value"]]
        if any(math.isfinite(float(v[1])) for v in values):
            return True
    return False


def storeagent() -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))
    doc["metadata"] = {"name": SHOP, "namespace": SHOP_NS}
    doc["spec"]["phoneNumbers"] = ["+15557770001"]  # no other test's number: no conflict
    doc["spec"]["scaling"]["replicas"] = 1
    return doc


async def speech_traffic(url: str) -> None:
    """One recognised utterance and one spoken clause through the speech service (real engines)."""
    from storeagent.agent.ports import AudioFormat
    from storeagent.agent.providers.speech import SpeechSTT, SpeechTTS

    fmt = AudioFormat(8000)
    pcm = await asyncio.to_thread(caller_speech, "What time do you open on Saturday?")
    stt = await SpeechSTT(url).open(fmt, "en-US")
    try:
        for i in range(0, len(pcm), fmt.frame_bytes):
            await stt.send(pcm[i:i + fmt.frame_bytes])
            await asyncio.sleep(0.02)  # real time, as an agent sends
        await stt.finalize()
        async with asyncio.timeout(30):
            async for ev in stt.events():
                if getattr(ev, "is_final", False):
                    break
    finally:
        await stt.aclose()
    tts = await SpeechTTS(url).open(fmt, "en-US")
    try:
        async for _ in tts.synthesize("We open at eight on Saturday."):
            pass
    finally:
        await tts.aclose()


def reconcile_a_shop(operator: Any) -> None:
    """Apply a StoreAgent and wait until the operator has reconciled it to Ready (blocking: run in a thread)."""
    cp = operator.cp
    create_namespace(cp, SHOP_NS)
    cp.kubectl("apply", "-f", "-", input=json.dumps(storeagent()))

    def ready() -> bool:
        obj = get_or_none(cp, storeagent_path(SHOP_NS, SHOP)) or {}
        st = obj.get("status") or {}
        return (st.get("observedGeneration") == obj["metadata"]["generation"]
                and any(c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions") or []))

    wait_for(ready, 120, f"StoreAgent {SHOP_NS}/{SHOP} Ready")


@pytest.fixture(scope="module")
def prometheus_with_traffic(operator: Any, tmp_path_factory: pytest.TempPathFactory
                            ) -> Iterator[tuple[PrometheusServer, float]]:
    """Prometheus scraping an agent that served calls and keeps serving (as Grafana would see it), and the
    operator while it reconciles a shop, until the module's tests are done; yields the server and the wall time
    the traffic started."""
    tmp = tmp_path_factory.mktemp("dashboards")
    ready: queue.Queue[tuple[PrometheusServer, float] | BaseException] = queue.Queue()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def scenario() -> None:
        try:
            async with serving_agent(tmp) as (app, script):
                # The shared speech service (its own process and workers) with real streams through it.
                with speech_service(tmp, "--workers", "1", "--saturation-s", "60") as speech:
                    jobs = [ScrapeJob("storeagent-agents", f"127.0.0.1:{app.http_port}",
                                      {"namespace": NAMESPACE, "pod": "sunrise-bakery-0"}),
                            ScrapeJob("storeagent-operator", operator.metrics_address, honor_labels=True),
                            ScrapeJob("storeagent-speech", f"127.0.0.1:{speech.port}",
                                      {"namespace": "storeagent-system", "pod": "storeagent-speech-0"})]
                    with PrometheusServer(tmp / "prometheus", jobs) as prom:
                        await asyncio.to_thread(prom.wait_for_scrapes)
                        start = time.time()
                        # The shop is reconciled while the calls run: reconciles, a dialplan reload, shop gauges.
                        await asyncio.gather(asyncio.to_thread(reconcile_a_shop, operator), place_calls(app, script),
                                             speech_traffic(speech.url))
                        await asyncio.sleep(3.0)  # a few scrapes after the last call
                        ready.put((prom, start))
                        await stop.wait()
        except BaseException as e:
            ready.put(e)

    thread = threading.Thread(target=loop.run_until_complete, args=(scenario(),), daemon=True)
    thread.start()
    got = ready.get(timeout=300)
    if isinstance(got, BaseException):
        thread.join(30)
        raise got
    try:
        yield got
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(60)
        loop.close()
        operator.cp.kubectl("delete", "storeagent", SHOP, "-n", SHOP_NS, "--ignore-not-found", "--timeout=60s")


def test_the_agent_really_served_the_calls(prometheus_with_traffic: tuple[PrometheusServer, float]) -> None:
    prom, _ = prometheus_with_traffic
    outcomes = {r["metric"]["outcome"]: float(r["value"][1])
                for r in prom.query('storeagent_calls_total{store="sunrise-bakery"}')}
    assert sum(outcomes.values()) == 4, outcomes
    assert outcomes["message"] >= 1, outcomes
    errors = prom.query('storeagent_provider_errors_total{provider="openai"}')
    assert errors and float(errors[0]["value"][1]) >= 1
    refused = prom.query('storeagent_protocol_errors_total{wire="audio_ws"}')
    assert refused and refused[0]["metric"]["reason"].startswith("token_"), refused


def test_operator_series_come_from_the_real_operator(prometheus_with_traffic: tuple[PrometheusServer, float]
                                                     ) -> None:
    prom, _ = prometheus_with_traffic
    shop = prom.query(f'storeagent_shop_ready{{namespace="{SHOP_NS}", store="{SHOP}"}}')
    assert [float(r["value"][1]) for r in shop] == [1.0], shop
    synced = prom.query(f'storeagent_shop_dialplan_synced{{namespace="{SHOP_NS}", store="{SHOP}"}}')
    assert [float(r["value"][1]) for r in synced] == [1.0], synced
    reconciles = prom.query('increase(storeagent_operator_reconciles_total{result="success"}[5m])')
    assert reconciles and float(reconciles[0]["value"][1]) > 0, reconciles
    reloads = prom.query('storeagent_operator_dialplan_reloads_total{result="success"}')
    assert reloads and float(reloads[0]["value"][1]) >= 1, reloads


def test_template_variables_resolve(prometheus_with_traffic: tuple[PrometheusServer, float]) -> None:
    prom, _ = prometheus_with_traffic
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for var in board["templating"]["list"]:
            if var["type"] != "query":
                continue
            m = re.fullmatch(r"label_values\((.+), (\w+)\)", var["definition"])
            assert m, f"{path.name}: variable {var['name']} is not a label_values query"
            match = substitute(m.group(1), {"namespace": ".*"})
            values = prom.label_values(m.group(2), match)
            assert values, f"{path.name}: variable ${var['name']} ({var['definition']}) resolves to nothing"


@pytest.mark.parametrize(("uid", "panel", "target"), list(panels()),
                         ids=[f"{u}:{p['title']}:{t['refId']}" for u, p, t in panels()])
def test_every_panel_query_returns_data(prometheus_with_traffic: tuple[PrometheusServer, float], uid: str,
                                        panel: dict[str, Any], target: dict[str, Any]) -> None:
    prom, start = prometheus_with_traffic
    store = prom.label_values("store", 'storeagent_calls_active{namespace=~".*"}')
    assert store == ["sunrise-bakery"]
    expr = substitute(target["expr"], {**BUILTINS, "namespace": ".*", "store": store[0]})
    end = time.time()
    if target.get("instant"):
        result = prom.query(expr, at=end)
    else:
        result = prom.query_range(expr, start, end, step=2)
    assert has_data(result), f"{uid} / {panel['title']}: no data for {expr}\n{result}"
