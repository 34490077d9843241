"""Writing a shop's child objects without ever taking over an object the operator did not create.

A tenant picks a StoreAgent's name, and so the names of its children (Service `<name>`, ConfigMap
`<name>-config`, ...). Server-side apply with force would rewrite an object of that name made by someone
else, and the owner reference it adds would let the garbage collector delete that object with the shop.
So the first write of a child in this process is create-only (`Api.apply_created(create_only=True)`: the
API server creates it if absent and otherwise refuses with 409, changing nothing). Only on a 409 is the
object read: controlled by this very StoreAgent (owner reference with its uid), it is written; anything else
is refused (`NameInUse`), and the shop's status and an Event name the object. Later writes carry the uid
that was checked, so an object deleted and recreated by someone else in between is refused by the API
server instead of rewritten.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from storeagent.operator import model
from storeagent.operator.k8s import ApiConflictError, ApiError, ApiInvalidError

log = logging.getLogger(__name__)
Obj = dict[str, Any]


class Ownership(Enum):
    OURS = "ours"  # controlled by this StoreAgent (its uid)
    STALE = "stale"  # ours from an earlier StoreAgent of the same name: the garbage collector removes it
    FOREIGN = "foreign"  # made by someone else: never written


class NameInUse(Exception):
    def __init__(self, kind: str, namespace: str, name: str, holder: str) -> None:
        super().__init__(f"{kind} {namespace}/{name} already exists and was not created for this StoreAgent "
                         f"({holder}); it is left untouched: rename the StoreAgent or remove that object")
        self.kind, self.namespace, self.name, self.holder = kind, namespace, name, holder


class StaleChild(Exception):
    """An object of a previous StoreAgent with the same name that the garbage collector has yet to remove."""


class ApplyFailed(Exception):
    def __init__(self, kind: str, namespace: str, name: str, error: ApiError) -> None:
        super().__init__(f"{kind} {namespace}/{name}: HTTP {error.status} {error.reason}: {error.message}")
        self.error = error


@dataclass(frozen=True)
class Written:
    uid: str
    resource_version: str
    essence: str = ""  # digest of what others could edit: an event with the same essence changed only status


def essence_digest(obj: Obj) -> str:
    """Digest of an object without its status and bookkeeping metadata: status updates by controllers (a
    PDB's, a Service's) leave it unchanged, any edit of spec, data, labels or owner references changes it."""
    meta = obj.get("metadata") or {}
    body = {k: v for k, v in obj.items() if k not in ("status", "metadata")}
    body["metadata"] = {k: meta.get(k) for k in ("labels", "annotations", "ownerReferences")}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class ApplyApi(Protocol):
    async def get(self, kind: str, namespace: str, name: str) -> Obj | None: ...

    async def apply_created(self, obj: Obj, expect_uid: str = "",
                            create_only: bool = False) -> tuple[Obj, bool]: ...


def classify(live: Obj, shop_name: str, shop_uid: str) -> tuple[Ownership, str]:
    """Whose is `live`? Returns the verdict and, for the record, who controls it."""
    meta = live.get("metadata") or {}
    refs = [r for r in meta.get("ownerReferences") or [] if isinstance(r, dict)]
    controllers = [r for r in refs if r.get("controller")]
    if any(r.get("uid") == shop_uid and r.get("kind") == model.KIND for r in controllers):
        return Ownership.OURS, ""
    ours_by_kind = [r for r in controllers if r.get("kind") == model.KIND
                    and str(r.get("apiVersion", "")).startswith(f"{model.GROUP}/") and r.get("name") == shop_name]
    if ours_by_kind and len(ours_by_kind) == len(controllers):
        return Ownership.STALE, f"owned by an earlier StoreAgent {shop_name} (uid {ours_by_kind[0].get('uid')})"
    if controllers:
        c = controllers[0]
        return Ownership.FOREIGN, f"controlled by {c.get('kind')} {c.get('name')}"
    managers = sorted({str(m.get("manager")) for m in meta.get("managedFields") or [] if isinstance(m, dict)})
    return Ownership.FOREIGN, "created by " + (", ".join(managers) if managers else "someone else")


class ChildWriter:
    def __init__(self, api: ApplyApi) -> None:
        self.api = api

    async def check(self, obj: Obj, shop_name: str, shop_uid: str) -> str:
        """Read an existing child: the uid a write must find ("" if it is gone); raises NameInUse / StaleChild."""
        kind, meta = obj["kind"], obj["metadata"]
        try:
            live = await self.api.get(kind, meta["namespace"], meta["name"])
        except ApiError as e:  # e.g. 403 while the RBAC is being installed: same policy as a failed write
            raise ApplyFailed(kind, meta["namespace"], meta["name"], e) from e
        if live is None:
            return ""
        verdict, holder = classify(live, shop_name, shop_uid)
        if verdict is Ownership.STALE:
            raise StaleChild(f"{kind} {meta['namespace']}/{meta['name']}: {holder}, waiting for its removal")
        if verdict is Ownership.FOREIGN:
            raise NameInUse(kind, meta["namespace"], meta["name"], holder)
        return str(live["metadata"]["uid"])

    async def apply(self, written: dict[tuple[str, str], Written], obj: Obj, shop_name: str,
                    shop_uid: str, likely_exists: bool = False) -> Obj:
        """Write one child (create-only the first time, else by the uid recorded); records it in `written`.

        `likely_exists` (the shop was reconciled before, by an earlier process): read first instead of trying a
        create that would be refused."""
        kind, meta = obj["kind"], obj["metadata"]
        key = (kind, meta["name"])
        out: Obj | None = None
        if (rec := written.get(key)) is not None:
            try:
                out, _ = await self._apply(obj, rec.uid, precondition_errors=True)
            except (ApiConflictError, ApiInvalidError):
                written.pop(key, None)  # what we wrote before is gone or replaced (uid precondition): look again
        elif likely_exists and (uid := await self.check(obj, shop_name, shop_uid)):
            out, _ = await self._apply(obj, uid, precondition_errors=False)
        for _ in range(3):  # absent -> create; present -> read and judge; gone again meanwhile -> create again
            if out is not None:
                break
            try:
                out, _ = await self.api.apply_created(obj, create_only=True)
            except ApiConflictError:
                if uid := await self.check(obj, shop_name, shop_uid):
                    out, _ = await self._apply(obj, uid, precondition_errors=False)
            except ApiError as e:
                raise ApplyFailed(kind, meta["namespace"], meta["name"], e) from e
        if out is None:
            raise ApplyFailed(kind, meta["namespace"], meta["name"], ApiConflictError(
                409, "PATCH", kind, "created and deleted again by someone else while being written"))
        written[key] = Written(str(out["metadata"]["uid"]), str(out["metadata"].get("resourceVersion", "")),
                               essence_digest(out))
        return out

    async def _apply(self, obj: Obj, uid: str, precondition_errors: bool) -> tuple[Obj, bool]:
        """`precondition_errors`: let 409/422 through unwrapped, as a possibly failed uid precondition."""
        kind, meta = obj["kind"], obj["metadata"]
        try:
            return await self.api.apply_created(obj, expect_uid=uid)
        except ApiError as e:
            if precondition_errors and isinstance(e, ApiConflictError | ApiInvalidError):
                raise
            raise ApplyFailed(kind, meta["namespace"], meta["name"], e) from e
