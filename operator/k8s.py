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
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from storeagent.operator import model

FIELD_MANAGER = "storeagent-operator"
# etcd's revisions start at 1 for the empty store and every write increments them: no object's
# resourceVersion is ever "1" (tests/integration/test_operator_tenancy.py checks the API server agrees).
CREATE_ONLY_VERSION = "1"
TOKEN_REREAD_S = 10.0
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
    """An API call refused with an HTTP error; subclasses by status code carry their own retry policy.

    Modelled on kopf's `APIError` family: the class comes from the code, the text from the Status payload
    (`reason`, `message`, `details.retryAfterSeconds`), so the shop's status can say what the server said.
    """

    retryable = False
    default_delay_s = 0.0

    def __init__(self, status: int, method: str, path: str, body: str, retry_after_s: float | None = None) -> None:
        self.status = status
        self.method, self.path = method, path
        payload = _status_payload(body)
        self.reason: str = str(payload.get("reason") or "")
        self.message: str = str(payload.get("message") or body)[:500]
        details = payload.get("details") if isinstance(payload.get("details"), dict) else {}
        hinted = details.get("retryAfterSeconds") if details else None
        if retry_after_s is None and isinstance(hinted, int | float) and hinted > 0:
            retry_after_s = float(hinted)
        self.delay_s = max(self.default_delay_s, min(retry_after_s or 0.0, 300.0))
        super().__init__(f"{method} {path}: HTTP {status} {self.reason}: {self.message}".replace("  ", " "))


# Temporary: the request may succeed later without any change to the spec.
class ApiUnauthorizedError(ApiError):  # 401: a token mid-rotation
    retryable, default_delay_s = True, 10.0


class ApiForbiddenError(ApiError):  # 403: RBAC not installed yet, or a namespace being terminated
    retryable, default_delay_s = True, 30.0


class ApiNotFoundError(ApiError):  # 404: a namespace or CRD still being created
    retryable, default_delay_s = True, 10.0


class ApiConflictError(ApiError):  # 409: a concurrent writer; retry soon
    retryable, default_delay_s = True, 1.0


class ApiTooManyRequestsError(ApiError):  # 429: priority and fairness; honours Retry-After
    retryable, default_delay_s = True, 5.0


class ApiServerError(ApiError):  # 5xx: the API server or etcd is unwell
    retryable, default_delay_s = True, 5.0


class ApiNoResponseError(ApiError):  # no answer at all: refused, reset, or nothing read for the socket timeout
    retryable, default_delay_s = True, 5.0

    def __init__(self, method: str, path: str, cause: BaseException) -> None:
        detail = {"kind": "Status", "reason": "NoResponse", "message": f"{type(cause).__name__}: {cause}"}
        super().__init__(0, method, path, json.dumps(detail))


# Permanent until the spec changes: the request itself is wrong (422 Invalid, 400, 413 too large).
class ApiInvalidError(ApiError):
    pass


def _status_payload(body: str) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) and payload.get("kind") == "Status" else {}


_BY_CODE: dict[int, type[ApiError]] = {
    401: ApiUnauthorizedError, 403: ApiForbiddenError, 404: ApiNotFoundError, 409: ApiConflictError,
    422: ApiInvalidError, 429: ApiTooManyRequestsError,
}


def api_error(status: int, method: str, path: str, body: str, retry_after: str | None = None) -> ApiError:
    """The ApiError subclass for `status`, built from the response's Status payload."""
    cls = _BY_CODE.get(status) or (ApiServerError if status >= 500 else ApiInvalidError)
    try:
        hint = float(retry_after) if retry_after else None
    except ValueError:
        hint = None  # an HTTP date: fall back to the class's delay
    return cls(status, method, path, body, hint)


@dataclass(frozen=True)
class Credentials:
    server: str
    ssl: ssl.SSLContext | bool
    headers_fn: Any  # () -> dict[str, str]; re-read every TOKEN_REREAD_S so rotated tokens are picked up


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

    cached: list[Any] = [0.0, {}]  # (monotonic time read, headers)

    def headers() -> dict[str, str]:
        # The client library's refresh hook re-reads the kubeconfig or token file on every call (3 % of the
        # operator's CPU in the 1,000-shop bench, one per request): read at most every TOKEN_REREAD_S. A
        # projected service-account token is rotated long (minutes) before the old one expires.
        now = time.monotonic()
        if now - cached[0] >= TOKEN_REREAD_S or not cached[0]:
            auth = _bearer(cfg)
            cached[0], cached[1] = now, ({"Authorization": auth} if auth else {})
        return dict(cached[1])

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
        # Per socket operation, not total: in a burst requests queue for one of the pooled connections, and
        # that wait must not count as the API server being slow (it made reconciles time out in the bench).
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout_s, sock_read=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._shells: set[tuple[str, str]] = set()  # dialplan ConfigMaps known to exist
        # Latest resourceVersion each dialplan ConfigMap had after our patch: a watch event older than that
        # shows a state before our write, not an edit to undo. (kube-apiserver's versions are etcd revisions,
        # integers that grow; should one not be, no event is skipped.)
        self.dialplan_versions: dict[tuple[str, str], int] = {}

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
        out, _ = await self._request_status(method, path, body, content_type=content_type, params=params,
                                            ok_missing=ok_missing)
        return out

    async def _request_status(self, method: str, path: str, body: Obj | None = None, *,
                              content_type: str = "application/json", params: dict[str, str] | None = None,
                              ok_missing: bool = False) -> tuple[Obj | None, int]:
        headers = {**self._creds.headers_fn(), "Accept": "application/json"}
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body)
        try:
            async with self._s().request(method, self._creds.server + path, data=data, headers=headers,
                                         params=params) as resp:
                text = await resp.text()
                status, retry_after = resp.status, resp.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError) as e:
            # An overloaded API server (the 1,000-shop bench) answers some applies after the socket timeout: a
            # temporary error with its own short retry, not an unexpected exception (kopf waits 60 s for those;
            # it made the bench's last 1 % wait a minute).
            raise ApiNoResponseError(method, path, e) from e
        if status == 404 and ok_missing:
            return None, status
        if status >= 400:
            raise api_error(status, method, path, text, retry_after)
        return (json.loads(text) if text else {}), status

    async def apply(self, obj: Obj, expect_uid: str = "") -> Obj:
        """Server-side apply: create or converge `obj` to what the operator wants.

        `expect_uid`: the object must still be the one the caller checked (the API server refuses to change
        an object's uid), so an object deleted and recreated by someone else meanwhile is not taken over.
        """
        out, _ = await self.apply_created(obj, expect_uid)
        return out

    async def apply_created(self, obj: Obj, expect_uid: str = "", create_only: bool = False) -> tuple[Obj, bool]:
        """`apply`, also telling whether this call created the object (201) or changed an existing one.

        `create_only`: create `obj` if absent, else refuse with 409 (ApiConflictError) and change nothing. The
        apply carries a resourceVersion no object has (CREATE_ONLY_VERSION): the API server checks it as a
        precondition against an existing object, and not at all when the apply creates one. One request instead
        of a read and a write, and no window between them in which someone else's object could appear.
        """
        meta = obj["metadata"]
        if expect_uid or create_only:
            meta = {**meta, **({"uid": expect_uid} if expect_uid else {}),
                    **({"resourceVersion": CREATE_ONLY_VERSION} if create_only else {})}
            obj = {**obj, "metadata": meta}
        path = object_path(obj["kind"], meta["namespace"], meta["name"])
        params = {"fieldManager": FIELD_MANAGER, "force": "true"}
        out, status = await self._request_status("PATCH", path, obj, content_type="application/apply-patch+yaml",
                                                 params=params)
        assert out is not None
        return out, status == 201

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

    def _note_written(self, namespace: str, configmap: str, out: Obj | None) -> None:
        rv = str(((out or {}).get("metadata") or {}).get("resourceVersion") or "")
        if rv.isdigit():
            key = (namespace, configmap)
            self.dialplan_versions[key] = max(self.dialplan_versions.get(key, 0), int(rv))

    def forget_shell(self, namespace: str, configmap: str) -> None:
        """A dialplan ConfigMap was deleted: the next write recreates it."""
        self._shells.discard((namespace, configmap))

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
            out = await self.merge_patch("ConfigMap", namespace, configmap, {"data": files}, ok_missing=not writes)
            self._note_written(namespace, configmap, out)
        except ApiError as e:
            if e.status != 404 or (namespace, configmap) not in self._shells:
                raise
            self._shells.discard((namespace, configmap))  # deleted behind our back: recreate once
            await self.set_dialplan_files(namespace, configmap, files, labels)
