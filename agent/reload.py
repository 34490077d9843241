"""`--watch-config`: the agent re-reads its shop file when it changes (`make demo-web`: the owner's page writes
the local shop file this agent serves). Calls in progress keep the shop they started with; the next call gets
the new one. A file that no longer validates is logged and ignored: the last good shop stays."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from storeagent.agent.app import AgentApp
from storeagent.agent.ports import ProviderSet
from storeagent.agent.wiring import OutboxService
from storeagent.shop import ShopConfig

log = logging.getLogger(__name__)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


async def watch_shop_file(path: Path, app: AgentApp, outbox: OutboxService, load: Callable[[Path], ShopConfig],
                          providers: Callable[[ShopConfig], ProviderSet], every_s: float = 1.0) -> None:
    seen = _stamp(path)
    while True:
        await asyncio.sleep(every_s)
        now = _stamp(path)
        if now is None or now == seen:
            continue
        seen = now
        try:
            shop = await asyncio.to_thread(load, path)
            if shop.store != app.shop.store:
                raise ValueError(f"store: {shop.store!r} is not this agent's shop {app.shop.store!r}")
            new_providers = await asyncio.to_thread(providers, shop)
        except (SystemExit, Exception) as e:  # load_shop exits with a message on a bad file
            log.warning("shop file %s changed but is not usable, keeping the last good one: %s", path, e)
            continue
        app.shop = app._deps.shop = outbox.shop = shop
        app._deps.providers = new_providers
        log.info("shop file %s reloaded: the next call uses it", path)
