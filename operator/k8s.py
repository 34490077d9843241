"""The only module that talks to the Kubernetes API (besides kopf's own watching and event posting).

Objects are converged with server-side apply under one field manager (`force=true`: the operator's fields
win, a hand edit of them is undone; fields it never set stay with whoever set them). The shared dialplan
ConfigMaps are the exception: many shops write keys of the same object, so writes merge-patch only the keys
of the shops they carry, which the API server applies atomically without read-modify-write races.
Async on aiohttp, authenticated from a kubeconfig or the in-cluster service account.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from typing import Any

import aiohttp

from storeagent.operator import model

FIELD_MANAGER = "storeagent-operator"
Obj = dict[str, Any]

# kind -> (API prefix, plural)
KINDS: dict[str, tuple[str, str]] = {
    "ConfigMap": ("/api/v1", "configmaps"),
    "ServiceAccount": ("/api/v1", "serviceaccounts"),
    "Service": ("/api/v1", "services"),
    "Deployment": ("/apis/apps/v1", "deployments"),
    "PodDisruptionBudget": ("/apis/policy/v1", "poddisruptionbudgets"),
    "NetworkPolicy": ("/apis/networking.k8s.io/v1", "networkpolicies"),
    model.KIND: (f"/apis/{model.GROUP}/{model.VERSION}", model.PLURAL),
}


class ApiError(Exception):
    def __init__(self, status: int, method: str, path: str, body: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {body[:500]}")
        self.status = status
        # 409 (conflict), 429 and 5xx are worth retrying; 4xx otherwise means the request itself is wrong.
        self.retryable = status in (409, 429) or status >= 500


@dataclass(frozen=True)
class Credentials:
    server: str
    ssl: ssl.SSLContext | bool
    headers_fn: Any  # () -> dict[str, str]; re-read per request so rotated tokens are picked up


def _client_config(kubeconfig: str) -> Any:
    from kubernetes import client, config  # imported here: only this module depends on the client library

    cfg = client.Configuration()
    if kubeconfig:
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)  # type: ignore[no-untyped-call]
    else:
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    return cfg


def _bearer(cfg: Any) -> str:
    # kubernetes>=36 keeps the token under "BearerToken", older releases under "authorization"; calling the
    # getter (not reading api_key) runs the refresh hook, so rotated in-cluster tokens are picked up.
    for key in ("BearerToken", "authorization"):
        value = cfg.get_api_key_with_prefix(key)
        if value:
            return str(value)
    return ""


def load_credentials(kubeconfig: str) -> Credentials:
    cfg = _client_config(kubeconfig)
    ctx: ssl.SSLContext | bool
    if cfg.verify_ssl:
        ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
        if cfg.cert_file:
            ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    else:
        ctx = False

    def headers() -> dict[str, str]:
        auth = _bearer(cfg)
        return {"Authorization": auth} if auth else {}

    return Credentials(cfg.host.rstrip("/"), ctx, headers)


def connection_fields(kubeconfig: str) -> dict[str, Any]:
    """The same identity for kopf's own client (its login handler), from an explicit kubeconfig path."""
    cfg = _client_config(kubeconfig)
    scheme, _, token = _bearer(cfg).partition(" ")
    return {"server": cfg.host, "ca_path": cfg.ssl_ca_cert, "insecure": not cfg.verify_ssl,
            "certificate_path": cfg.cert_file, "private_key_path": cfg.key_file,
            "scheme": scheme or None, "token": token or None}


def object_path(kind: str, namespace: str, name: str = "", subresource: str = "") -> str:
    prefix, plural = KINDS[kind]
    path = f"{prefix}/namespaces/{namespace}/{plural}"
    if name:
        path += f"/{name}"
    if subresource:
        path += f"/{subresource}"
    return path


class Api:
    def __init__(self, creds: Credentials, timeout_s: float = 30.0) -> None:
        self._creds = creds
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._shells: set[tuple[str, str]] = set()  # dialplan ConfigMaps known to exist

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _s(self) -> aiohttp.ClientSession:
        if self._session is None:
            conn = aiohttp.TCPConnector(ssl=self._creds.ssl, limit=32)
            self._session = aiohttp.ClientSession(connector=conn, timeout=self._timeout)
        return self._session

    async def request(self, method: str, path: str, body: Obj | None = None, *,
                      content_type: str = "application/json", params: dict[str, str] | None = None,
                      ok_missing: bool = False) -> Obj | None:
        headers = {**self._creds.headers_fn(), "Accept": "application/json"}
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body)
        async with self._s().request(method, self._creds.server + path, data=data, headers=headers,
                                     params=params) as resp:
            text = await resp.text()
            if resp.status == 404 and ok_missing:
                return None
            if resp.status >= 400:
                raise ApiError(resp.status, method, path, text)
            return json.loads(text) if text else {}

    async def apply(self, obj: Obj) -> Obj:
        """Server-side apply: create or converge `obj` to what the operator wants."""
        meta = obj["metadata"]
        path = object_path(obj["kind"], meta["namespace"], meta["name"])
        params = {"fieldManager": FIELD_MANAGER, "force": "true"}
        out = await self.request("PATCH", path, obj, content_type="application/apply-patch+yaml", params=params)
        assert out is not None
        return out

    async def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        return await self.request("GET", object_path(kind, namespace, name), ok_missing=True)

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        await self.request("DELETE", object_path(kind, namespace, name), ok_missing=True)

    async def merge_patch(self, kind: str, namespace: str, name: str, patch: Obj, subresource: str = "",
                          ok_missing: bool = False) -> Obj | None:
        return await self.request("PATCH", object_path(kind, namespace, name, subresource), patch,
                                  content_type="application/merge-patch+json", ok_missing=ok_missing,
                                  params={"fieldManager": FIELD_MANAGER})

    async def patch_status(self, namespace: str, name: str, status: Obj) -> None:
        """Merge-patch a StoreAgent's status; a shop deleted meanwhile is not an error."""
        await self.merge_patch(model.KIND, namespace, name, {"status": status}, subresource="status",
                               ok_missing=True)

    async def set_dialplan_files(self, namespace: str, configmap: str, files: dict[str, str | None],
                                 labels: dict[str, str]) -> None:
        """Write (or with None remove) shops' files in a shared dialplan ConfigMap: one merge patch for all."""
        writes = any(xml is not None for xml in files.values())
        if writes:
            shell = {"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": configmap, "namespace": namespace, "labels": labels}}
            if (namespace, configmap) not in self._shells:
                if await self.get("ConfigMap", namespace, configmap) is None:
                    # The shell holds no data fields, so applying it never fights the per-key patches.
                    await self.apply(shell)
                self._shells.add((namespace, configmap))
        try:
            await self.merge_patch("ConfigMap", namespace, configmap, {"data": files}, ok_missing=not writes)
        except ApiError as e:
            if e.status != 404 or (namespace, configmap) not in self._shells:
                raise
            self._shells.discard((namespace, configmap))  # deleted behind our back: recreate once
            await self.set_dialplan_files(namespace, configmap, files, labels)
