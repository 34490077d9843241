"""`reloadxml` over inbound ESL: the exchange, failures, and coalescing of many requests into few reloads."""

from __future__ import annotations

import asyncio

from storeagent.operator import esl
from support.fake_freeswitch_esl import FakeFreeSwitchEsl


async def test_api_command_exchange() -> None:
    with FakeFreeSwitchEsl(password="s3cret") as fs:
        assert (await esl.api_command("127.0.0.1", fs.port, "s3cret", "reloadxml")).startswith("+OK")
        # The fake reads on its own thread: `exit` may still be in flight when api_command returns.
        for _ in range(100):
            if len(fs.commands) == 3:
                break
            await asyncio.sleep(0.02)
        assert fs.commands == ["auth s3cret", "api reloadxml", "exit"]


async def test_wrong_password_and_unreachable_are_errors() -> None:
    with FakeFreeSwitchEsl(password="right") as fs:
        r = esl.Reloader((f"127.0.0.1:{fs.port}",), "wrong", settle_s=60)
        task = asyncio.create_task(r.run())
        result = await asyncio.wait_for(r.reload(), 10)
        task.cancel()
        assert not result.ok and "auth refused" in result.message


async def test_many_requests_coalesce() -> None:
    with FakeFreeSwitchEsl() as fs:
        r = esl.Reloader((f"127.0.0.1:{fs.port}",), "ClueCon", settle_s=60, debounce_s=0.2)
        task = asyncio.create_task(r.run())
        results = await asyncio.wait_for(asyncio.gather(*(r.reload() for _ in range(100))), 20)
        task.cancel()
        assert all(x.ok for x in results)
        assert 1 <= fs.reloads <= 2


async def test_not_configured_is_ok_without_reload() -> None:
    r = esl.Reloader((), "x", settle_s=1)
    result = await r.reload()
    assert result.ok and "no FreeSWITCH ESL configured" in result.message
