"""Connect-time URL policy: resolve, check every address, connect to exactly the checked address.

The operator checked the URL's shape and host at reconcile; a name can still resolve to a private, loopback
or metadata address later (DNS rebinding: a short TTL, first a public answer, then 169.254.169.254). So each
connection resolves the name itself, refuses when any answer is outside the platform's policy, and hands the
checked addresses to the connector, which never resolves again. TLS still verifies the original host name.

- aiohttp (webhook, ElevenLabs): `policy_connector(policy)`, a TCPConnector with a checking resolver;
- httpx (OpenAI): `policy_httpx_client(policy)`, an httpcore network backend that connects to checked IPs;
- anything else (Deepgram's SDK opens its own websocket): `await precheck(url, policy)` before connecting,
  which narrows the window to the SDK's own lookup but cannot close it (docs/security.md says so).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpcore
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult

from storeagent.policy import IP, PolicyError, UrlPolicy, check_resolved, check_url


async def resolve_checked(host: str, port: int, policy: UrlPolicy, family: int = socket.AF_UNSPEC) -> list[IP]:
    """Every address `host` resolves to, if the policy allows all of them (PolicyError otherwise)."""
    try:
        literal: IP | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        return check_resolved(host, [literal], policy)
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
    seen: list[IP] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in seen:
            seen.append(ip)
    return check_resolved(host, seen, policy)


class PolicyResolver(AbstractResolver):
    """aiohttp resolver that only ever returns addresses the policy allows."""

    def __init__(self, policy: UrlPolicy) -> None:
        self._policy = policy

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        try:
            ips = await resolve_checked(host, port, self._policy, family)
        except PolicyError as e:
            raise OSError(str(e)) from None  # aiohttp turns it into ClientConnectorError: retried, logged
        return [ResolveResult(hostname=host, host=str(ip), port=port,
                              family=socket.AF_INET6 if ip.version == 6 else socket.AF_INET,
                              proto=0, flags=socket.AI_NUMERICHOST) for ip in ips]

    async def close(self) -> None:
        return None


class _PolicyConnector(aiohttp.TCPConnector):
    """aiohttp skips the resolver for literal IPs (a redirect's Location, a websocket URL): judge those too."""

    def __init__(self, policy: UrlPolicy) -> None:
        super().__init__(resolver=PolicyResolver(policy), use_dns_cache=False)
        self._policy = policy

    async def _resolve_host(self, host: str, port: int, traces: Any = None) -> list[ResolveResult]:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return await super()._resolve_host(host, port, traces)
        try:
            check_resolved(host, [ipaddress.ip_address(host)], self._policy)
        except PolicyError as e:
            raise OSError(str(e)) from None
        return await super()._resolve_host(host, port, traces)


def policy_connector(policy: UrlPolicy) -> aiohttp.TCPConnector:
    return _PolicyConnector(policy)


class _PolicyBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, policy: UrlPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        try:
            ips = await resolve_checked(host, port, self._policy)
        except PolicyError as e:
            raise httpcore.ConnectError(str(e)) from None
        # TLS (start_tls) is given the original host by httpcore: SNI and certificate checks are unchanged.
        return await self._inner.connect_tcp(str(ips[0]), port, timeout=timeout, local_address=local_address,
                                             socket_options=socket_options)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not allowed by the URL policy")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def policy_httpx_client(policy: UrlPolicy, **kwargs: Any) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport()
    # httpx has no public hook for name resolution; its pool takes a network backend, so swap the pool
    # for one built with ours (same defaults as httpx's own).
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(), network_backend=_PolicyBackend(policy),
        max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)
    return httpx.AsyncClient(transport=transport, trust_env=False, **kwargs)


async def precheck(url: str, policy: UrlPolicy) -> None:
    """Static check plus one resolution (for clients whose connection we cannot hook)."""
    host = check_url(url, policy)
    parts = urlsplit(url)
    await resolve_checked(host, parts.port or (443 if parts.scheme in ("https", "wss") else 80), policy)
