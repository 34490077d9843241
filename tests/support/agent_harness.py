"""Start a real AgentApp on 127.0.0.1 (ephemeral ports) with given providers, for e2e tests and the bench."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from storeagent.agent.app import AgentApp
from storeagent.agent.metrics import AgentMetrics
from storeagent.agent.pipeline.conversation import ConversationOutcome
from storeagent.agent.ports import CallControl, ProviderSet, Tools
from storeagent.agent.settings import AgentSettings, TurnSettings
from storeagent.agent.store.tools import ShopTools
from storeagent.shop import ShopConfig, shop_config_from_manifest

ROOT = Path(__file__).resolve().parents[2]


def bakery(**overrides: object) -> ShopConfig:
    doc = yaml.safe_load((ROOT / "examples" / "sunrise-bakery.yaml").read_text())
    shop = shop_config_from_manifest(doc)
    return shop.model_copy(update=overrides) if overrides else shop


@dataclass
class Finished:
    outcomes: dict[str, ConversationOutcome] = field(default_factory=dict)
    event: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, uuid: str, call: CallControl, outcome: ConversationOutcome, duration: float) -> None:
        self.outcomes[uuid] = outcome
        self.event.set()

    async def wait_for(self, uuid: str, timeout: float = 15.0) -> ConversationOutcome:
        async with asyncio.timeout(timeout):
            while uuid not in self.outcomes:
                self.event.clear()
                await self.event.wait()
        return self.outcomes[uuid]


@contextlib.asynccontextmanager
async def running_agent(providers: ProviderSet, shop: ShopConfig | None = None, *, max_calls: int = 50,
                        turn: TurnSettings | None = None, tmp: Path | None = None,
                        metrics: AgentMetrics | None = None,
                        tools: Callable[[CallControl], Tools] | None = None,
                        ) -> AsyncIterator[tuple[AgentApp, Finished]]:
    shop = shop or bakery()
    settings = AgentSettings(host="127.0.0.1", esl_port=0, http_port=0, advertise_host="127.0.0.1",
                             max_calls=max_calls, drain_seconds=10, turn=turn or TurnSettings(),
                             data_dir=tmp or Path("/tmp"))
    finished = Finished()
    tools_factory = tools or (lambda call: ShopTools(shop))
    app = AgentApp(settings, shop, providers, tools_factory, on_finished=finished, metrics=metrics)
    await app.start()
    try:
        yield app, finished
    finally:
        await app.stop()


async def until(predicate: Callable[[], bool], timeout: float, step: float = 0.005) -> bool:
    """Poll a condition the code under test exposes no event for; True as soon as it holds, False at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(step)
    return True
