"""Writing a shop's child objects without ever taking over an object the operator did not create.

A tenant picks a StoreAgent's name, and so the names of its children (Service `<name>`, ConfigMap
`<name>-config`, ...). Server-side apply with force would rewrite an object of that name made by someone
else, and the owner reference it adds would let the garbage collector delete that object with the shop.
So before the first write of a child the operator reads it: absent, or controlled by this very StoreAgent
(owner reference with its uid), it may be written; anything else is refused (`NameInUse`), and the shop's
status and an Event name the object. Later writes carry the uid that was checked, so an object deleted and
recreated by someone else in between is refused by the API server instead of rewritten.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from storeagent.operator import model
from storeagent.operator.k8s import FIELD_MANAGER, ApiConflictError, ApiError, ApiInvalidError

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

    async def apply_created(self, obj: Obj, expect_uid: str = "") -> tuple[Obj, bool]: ...


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


def _only_ours(obj: Obj) -> bool:
    managers = {m.get("manager") for m in (obj.get("metadata") or {}).get("managedFields") or []}
    return managers <= {FIELD_MANAGER}


class ChildWriter:
    def __init__(self, api: ApplyApi) -> None:
        self.api = api

    async def check(self, written: dict[tuple[str, str], Written], obj: Obj, shop_name: str,
                    shop_uid: str) -> str:
        """The uid the write must find ("" for a new object); raises NameInUse / StaleChild."""
        kind, meta = obj["kind"], obj["metadata"]
        if (rec := written.get((kind, meta["name"]))) is not None:
            return rec.uid
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
                    shop_uid: str) -> Obj:
        """Check (first time) and write one child; records what was written in `written`."""
        kind, meta = obj["kind"], obj["metadata"]
        key = (kind, meta["name"])
        uid = await self.check(written, obj, shop_name, shop_uid)
        try:
            out, created = await self._apply(obj, uid, precondition_errors=key in written)
        except (ApiConflictError, ApiInvalidError):
            # The object we wrote before may be gone or replaced (uid precondition failed): look again.
            written.pop(key, None)
            uid = await self.check(written, obj, shop_name, shop_uid)
            out, created = await self._apply(obj, uid, precondition_errors=False)
        if not uid and not created and not _only_ours(out):
            # Absent when read, present when written: someone else created it in between. Our fields are on it
            # now; say so rather than treat it as ours.
            raise NameInUse(kind, meta["namespace"], meta["name"], "created by someone else while being created")
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
