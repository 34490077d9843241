"""`reloadxml` over FreeSWITCH's inbound event socket, coalesced and retried.

Many shops change at once (startup, a bulk apply): every caller awaits the next reload round that starts
after its request, so 1,000 dialplan writes cost a handful of reloads, not 1,000. After the last change a
second round runs `settle_s` later, because the kubelet refreshes mounted ConfigMaps only about once a minute
and the first reload may have read files still in flight.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReloadResult:
    ok: bool
    message: str
    at: float


class EslError(Exception):
    pass


async def _read_frame(reader: asyncio.StreamReader) -> tuple[dict[str, str], bytes]:
    raw = await reader.readuntil(b"\n\n")
    headers: dict[str, str] = {}
    for line in raw.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            headers[key.strip()] = value.strip()
    length = int(headers.get("Content-Length", "0") or 0)  # counts bytes
    body = await reader.readexactly(length) if length else b""
    return headers, body


async def api_command(host: str, port: int, password: str, command: str, timeout_s: float = 5.0) -> str:
    """Run one `api` command on an inbound ESL connection; returns the response body or raises EslError."""
    async def run() -> str:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            headers, _ = await _read_frame(reader)
            if headers.get("Content-Type") != "auth/request":
                raise EslError(f"{host}:{port}: expected auth/request, got {headers}")
            writer.write(f"auth {password}\n\n".encode())
            await writer.drain()
            headers, _ = await _read_frame(reader)
            if not headers.get("Reply-Text", "").startswith("+OK"):
                raise EslError(f"{host}:{port}: auth refused: {headers.get('Reply-Text', '')}")
            writer.write(f"api {command}\n\n".encode())
            await writer.drain()
            while True:  # skip any event frames; the api/response is what we wait for
                headers, body = await _read_frame(reader)
                if headers.get("Content-Type") == "api/response":
                    break
            writer.write(b"exit\n\n")
            await writer.drain()
            return body.decode("utf-8", "replace")
        finally:
            writer.close()

    try:
        return await asyncio.wait_for(run(), timeout_s)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError) as e:
        raise EslError(f"{host}:{port}: {type(e).__name__}: {e}") from e


async def _resolve(target: str) -> list[tuple[str, int]]:
    host, _, port_s = target.rpartition(":")
    port = int(port_s)
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({(str(i[4][0]), port) for i in infos})


class Reloader:
    def __init__(self, targets: tuple[str, ...], password: str, settle_s: float, debounce_s: float = 0.25):
        self._targets = targets
        self._password = password
        self._settle_s = settle_s
        self._debounce_s = debounce_s
        self._wanted = 0
        self._done = 0
        self._cond = asyncio.Condition()
        self._wake = asyncio.Event()
        self._settle_at: float | None = None
        self.last = ReloadResult(True, "no reload yet", 0.0)
        self.rounds = 0

    @property
    def configured(self) -> bool:
        return bool(self._targets)

    async def reload(self) -> ReloadResult:
        """Wait for a reload round that starts after this call; returns its result."""
        if not self._targets:
            return ReloadResult(True, "files written; no FreeSWITCH ESL configured to reload", time.time())
        async with self._cond:
            self._wanted += 1
            ticket = self._wanted
            self._wake.set()
            await self._cond.wait_for(lambda: self._done >= ticket)
            return self.last

    async def run(self) -> None:
        while True:
            timeout = None if self._settle_at is None else max(0.0, self._settle_at - time.monotonic())
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
                settle_round = False
            except TimeoutError:
                settle_round = True
            self._wake.clear()
            await asyncio.sleep(0 if settle_round else self._debounce_s)
            ticket = self._wanted
            result = await self._reload_all()
            self.rounds += 1
            self._settle_at = None if settle_round else time.monotonic() + self._settle_s
            async with self._cond:
                self.last = result
                self._done = max(self._done, ticket)
                self._cond.notify_all()

    async def _reload_all(self) -> ReloadResult:
        failures: list[str] = []
        count = 0
        for target in self._targets:
            try:
                addrs = await _resolve(target)
            except (OSError, ValueError) as e:
                failures.append(f"{target}: cannot resolve: {e}")
                continue
            for host, port in addrs:
                count += 1
                try:
                    reply = await api_command(host, port, self._password, "reloadxml")
                    if not reply.startswith("+OK"):
                        failures.append(f"{host}:{port}: {reply.strip()}")
                except EslError as e:
                    failures.append(str(e))
        if failures:
            log.warning("reloadxml failed: %s", "; ".join(failures))
            return ReloadResult(False, "reloadxml failed: " + "; ".join(failures)[:400], time.time())
        return ReloadResult(True, f"reloadxml accepted by {count} FreeSWITCH", time.time())
