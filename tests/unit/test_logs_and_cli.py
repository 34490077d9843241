"""Structured logs carry the call uuid; the agent CLI rejects bad config with the field and the reason."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from pathlib import Path

from storeagent.agent.logs import JsonFormatter, _CallFilter, call_context


def test_log_records_carry_the_call_uuid_into_tasks_the_call_starts() -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    log = logging.getLogger("test.calls")
    h = Keep()
    h.addFilter(_CallFilter())
    log.addHandler(h)
    log.setLevel(logging.INFO)

    async def call() -> None:
        with call_context("fe20eecb-0dbf-436e-b074-9a11b98b4fd4"):
            await asyncio.create_task(asyncio.to_thread(lambda: None))
            await asyncio.create_task(_log_in_task(log))
        log.info("outside")

    asyncio.run(call())
    log.removeHandler(h)
    docs = [json.loads(JsonFormatter().format(r)) for r in records]
    assert docs[0]["call_uuid"] == "fe20eecb-0dbf-436e-b074-9a11b98b4fd4" and docs[0]["msg"] == "inside a task"
    assert "call_uuid" not in docs[1]


async def _log_in_task(log: logging.Logger) -> None:
    log.info("inside a task")


def test_invalid_shop_config_names_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "shop.yaml"
    bad.write_text("store: x\nphoneNumbers: ['555-1234']\nprofile: {name: X}\n")
    exe = Path(sys.executable).parent / "storeagent"
    r = subprocess.run([str(exe), "agent", "serve", "--config", str(bad)], capture_output=True, text=True,
                       timeout=60, cwd=tmp_path)
    assert r.returncode != 0
    assert "phoneNumbers" in r.stderr and "E.164" in r.stderr


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "storeagent"
    r = subprocess.run([str(exe), "agent", "serve", "--config", str(tmp_path / "nope.yaml")], capture_output=True,
                       text=True, timeout=60, cwd=tmp_path)
    assert r.returncode != 0 and "cannot read config" in r.stderr
