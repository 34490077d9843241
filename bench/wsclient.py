"""A minimal RFC 6455 websocket client as an asyncio Protocol, for the load generator.

Why not aiohttp's client: the generator drives hundreds of calls from one 20 ms clock, and a frame written
here is one `transport.write` with no task, no await and no per-message object; downlink frames are parsed in
`data_received`, so a call costs no task of its own. Only what the audio websocket uses: one handshake with
headers, unfragmented text/binary frames, ping -> pong, close.

Client frames carry the all-zero masking key: the XOR is then the identity, so the generator spends nothing
on it, while the agent's reader unmasks every masked frame whatever the key (its cost is unchanged).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
from collections.abc import Callable
from urllib.parse import urlsplit

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_ZERO_MASK = b"\x00\x00\x00\x00"
OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x2, 0x8, 0x9, 0xA


def _header(opcode: int, n: int) -> bytes:
    if n < 126:
        return bytes((0x80 | opcode, 0x80 | n)) + _ZERO_MASK
    if n < 65536:
        return bytes((0x80 | opcode, 0x80 | 126)) + struct.pack("!H", n) + _ZERO_MASK
    return bytes((0x80 | opcode, 0x80 | 127)) + struct.pack("!Q", n) + _ZERO_MASK


class WsClient(asyncio.Protocol):
    """One websocket. `on_binary(data, now)` / `on_text(text, now)` run inside `data_received` (`now` is
    loop.time() when the bytes were read); `on_closed()` once when the connection ends."""

    def __init__(self, on_binary: Callable[[bytes, float], None], on_text: Callable[[str, float], None],
                 on_closed: Callable[[], None]) -> None:
        self._on_binary, self._on_text, self._on_closed = on_binary, on_text, on_closed
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._key = base64.b64encode(os.urandom(16))
        self._upgraded: asyncio.Future[None] | None = None
        self.closed = False

    async def connect(self, url: str, headers: dict[str, str], timeout: float = 10.0) -> None:
        """Open `url` (ws://host:port/path) and complete the upgrade; raises ConnectionError when refused."""
        loop = asyncio.get_running_loop()
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        self._upgraded = loop.create_future()
        await loop.create_connection(lambda: self, host, port)
        lines = [f"GET {parts.path or '/'} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {self._key.decode()}", "Sec-WebSocket-Version: 13",
                 *(f"{k}: {v}" for k, v in headers.items())]
        self._write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await asyncio.wait_for(self._upgraded, timeout)

    # ------------------------------------------------------------------ sending (synchronous)
    def send_binary(self, data: bytes) -> None:
        self._write(_header(OP_BINARY, len(data)) + data)

    def send_text(self, text: str) -> None:
        data = text.encode()
        self._write(_header(OP_TEXT, len(data)) + data)

    def close(self) -> None:
        if self._transport is not None and not self.closed:
            self._write(_header(OP_CLOSE, 2) + struct.pack("!H", 1000))
            self._transport.close()

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    # ------------------------------------------------------------------ Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self._upgraded is not None and not self._upgraded.done():
            self._upgraded.set_exception(ConnectionError(f"closed during the upgrade: {exc}"))
        if not self.closed:
            self.closed = True
            self._on_closed()

    def data_received(self, data: bytes) -> None:
        now = asyncio.get_running_loop().time()
        self._buf += data
        if self._upgraded is not None and not self._upgraded.done():
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._buf[:end]).decode("latin-1")
            del self._buf[: end + 4]
            accept = base64.b64encode(hashlib.sha1(self._key + _GUID).digest()).decode()
            if not head.startswith("HTTP/1.1 101") or accept not in head:
                self._upgraded.set_exception(ConnectionError(head.split("\r\n", 1)[0]))
                if self._transport is not None:
                    self._transport.close()
                return
            self._upgraded.set_result(None)
        self._parse(now)

    def _parse(self, now: float) -> None:
        buf = self._buf
        while len(buf) >= 2:
            opcode, n, pos = buf[0] & 0x0F, buf[1] & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    return
                n, pos = struct.unpack_from("!H", buf, 2)[0], 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n, pos = struct.unpack_from("!Q", buf, 2)[0], 10
            if len(buf) < pos + n:
                return
            payload = bytes(buf[pos : pos + n])  # the server never masks
            del buf[: pos + n]
            if opcode == OP_BINARY:
                self._on_binary(payload, now)
            elif opcode == OP_TEXT:
                self._on_text(payload.decode("utf-8", "replace"), now)
            elif opcode == OP_PING:
                self._write(_header(OP_PONG, n) + payload)
            elif opcode == OP_CLOSE:
                self.close()
                return
