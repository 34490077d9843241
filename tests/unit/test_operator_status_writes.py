"""How many status patches a new shop costs: its first ready pod's stats go out with the Ready it brings (a real
local HTTP server as the agent), and in a burst a change waits for the shop's next one (the API is a recorder)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from storeagent.operator import model, resources
from storeagent.operator.controller import Controller
from storeagent.operator.settings import Settings

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sunrise-bakery.yaml"


class RecordingApi:
    def __init__(self) -> None:
        self.statuses: list[dict[str, Any]] = []

    async def patch_status(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        self.statuses.append(body)


def deployment(generation: int, ready: int) -> dict[str, Any]:
    return {"metadata": {"name": "sunrise-bakery", "generation": generation},
            "status": {"observedGeneration": generation, "replicas": 1, "updatedReplicas": 1,
                       "readyReplicas": ready}}


async def test_first_ready_pod_brings_its_stats_in_the_ready_patch() -> None:
    polls = 0

    async def stats(_: web.Request) -> web.Response:
        nonlocal polls
        polls += 1
        return web.json_response({"calls_active": 0, "calls_total": 7, "draining": False,
                                  "voice_to_voice_ms": {"count": 7, "p50": 700.0, "p95": 900.0}})

    app = web.Application()
    app.router.add_get("/v1/stats", stats)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    api = RecordingApi()
    settings = Settings(stats_address_override=f"127.0.0.1:{port}", status_coalesce_seconds=0.0)
    ctl = Controller(api, settings, reloader=None, post_event=lambda *a: None)  # type: ignore[arg-type]
    loop = asyncio.create_task(ctl.stats_loop(lambda st: ["10.0.0.7"]))  # binds the pod index; first cycle 1 s on
    try:
        bakery(ctl)
        await ctl.on_deployment("shops", "sunrise-bakery", "MODIFIED", deployment(1, ready=0))
        await asyncio.sleep(0.05)
        assert polls == 0  # no ready pod yet: nothing to ask
        await ctl.on_deployment("shops", "sunrise-bakery", "MODIFIED", deployment(1, ready=1))
        await asyncio.sleep(0.05)
        assert polls == 1
        ready = [s for s in api.statuses if s["conditions"][0]["status"] == "True"]
        assert ready and ready[0]["callsTotal"] == 7 and ready[0]["voiceToVoice"] == {"p50Ms": 700.0, "p95Ms": 900.0}
        await ctl.on_deployment("shops", "sunrise-bakery", "MODIFIED", deployment(1, ready=1))
        await asyncio.sleep(0.05)
        assert polls == 1  # only the first ready pod asks at once; the stats loop does the rest
    finally:
        loop.cancel()
        await ctl.close()
        await runner.cleanup()


def bakery(ctl: Controller) -> None:
    st = ctl.state("shops", "sunrise-bakery")
    spec = yaml.safe_load(EXAMPLE.read_text())["spec"]
    st.shop = resources.Shop("sunrise-bakery", "shops", "uid-1", model.parse_spec(spec))
    st.uid, st.deployment_generation = "uid-1", 1
    st.observed.generation = st.observed.reconciled_generation = 1
    st.observed.replicas_wanted, st.observed.dialplan_ok, st.observed.dialplan_reason = 1, True, "Reloaded"


async def test_in_a_burst_a_status_change_waits_for_the_next_and_both_go_in_one_patch() -> None:
    api = RecordingApi()
    ctl = Controller(api, Settings(status_coalesce_seconds=0.3, concurrent_shop_writes=1),  # type: ignore[arg-type]
                     reloader=None, post_event=lambda *a: None)  # type: ignore[arg-type]
    bakery(ctl)
    try:
        # Idle: the first change is written at once (leading edge: onboarding one shop is not held back).
        await ctl.on_deployment("shops", "sunrise-bakery", "MODIFIED", deployment(1, ready=0))
        await asyncio.sleep(0.05)
        assert len(api.statuses) == 1
        await asyncio.sleep(0.4)
        # A burst: every child-writing slot is taken. The next change waits a whole window, and the one after
        # it (within the window) joins the same patch.
        async with ctl._writing:
            await ctl.on_deployment("shops", "sunrise-bakery", "MODIFIED", deployment(1, ready=0) | {
                "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 1, "readyReplicas": 0}})
            await asyncio.sleep(0.1)
            assert len(api.statuses) == 1
            await ctl.on_deployment("shops", "sunrise-bakery", "MODIFIED", deployment(1, ready=1))
            await asyncio.sleep(0.35)
        assert len(api.statuses) == 2
        assert api.statuses[1]["conditions"][0]["status"] == "True"  # the later change, in the one patch
    finally:
        await ctl.close()
