"""Where a shop's StoreAgent lives and how the web service reads and writes it.

Two backends behind one interface:
- `KubeShops`: the StoreAgent objects on the API server (the deployable's ServiceAccount may get, list, watch,
  update and patch `storeagents` and nothing else; charts/storeagent/templates/web-rbac.yaml). Writes are a PUT
  with the resourceVersion read, so an edit made meanwhile (kubectl, another tab) is a conflict, not lost.
- `FileShops`: a StoreAgent manifest on disk (`make demo-web`): the same file the local agent reads.
Both validate the whole spec with the CRD's own pydantic model (`storeagent.operator.model.StoreAgentSpec`)
before writing, so the page can never store what admission would refuse.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from storeagent.operator.model import GROUP, PLURAL, VERSION, StoreAgentSpec

SHOP_ID_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\.[a-z]([-a-z0-9]*[a-z0-9])?$")


class Conflict(Exception):
    """The StoreAgent changed since it was read."""


class ShopGone(Exception):
    """No such StoreAgent (deleted, or never there)."""


@dataclass(frozen=True, slots=True)
class ShopRef:
    """A shop as the web service knows it: `<namespace>.<name>` (both DNS labels, so the dot is unambiguous)."""

    namespace: str
    name: str

    @property
    def id(self) -> str:
        return f"{self.namespace}.{self.name}"

    @classmethod
    def parse(cls, shop_id: str) -> ShopRef:
        if not SHOP_ID_RE.fullmatch(shop_id):
            raise ValueError(f"shop {shop_id[:80]!r}: expected <namespace>.<name> (DNS labels)")
        ns, name = shop_id.split(".", 1)
        return cls(ns, name)


@dataclass(frozen=True, slots=True)
class ShopDoc:
    spec: dict[str, Any]
    version: str  # resourceVersion, or a digest of the file
    live: str  # "live" | "pending" | "failed" | "local"
    detail: str = ""


def _hhmm(node: Any) -> Any:
    """Times as the manifests write them ("08:00", not pydantic's "08:00:00")."""
    if isinstance(node, dict):
        out = {k: _hhmm(v) for k, v in node.items()}
        for k in ("open", "close"):
            v = out.get(k)
            if isinstance(v, str) and len(v) == 8 and v.endswith(":00"):
                out[k] = v[:5]
        return out
    if isinstance(node, list):
        return [_hhmm(v) for v in node]
    return node


def validate_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The whole spec checked by the CRD's model (raises pydantic.ValidationError naming the field); what is
    written back is the spec as it was with the owner's part (profile, fallback) in the model's normal form,
    so fields the page does not edit are not rewritten with defaults."""
    model = StoreAgentSpec.model_validate(spec)
    out = copy.deepcopy(spec)
    out["profile"] = _hhmm(model.profile.model_dump(mode="json", by_alias=True, exclude_none=True))
    fallback = model.fallback.model_dump(mode="json", by_alias=True, exclude_none=True)
    if fallback:
        out["fallback"] = fallback
    else:
        out.pop("fallback", None)
    return out


class Shops(Protocol):
    async def read(self, shop: ShopRef) -> ShopDoc: ...

    async def write(self, shop: ShopRef, spec: dict[str, Any], version: str) -> ShopDoc: ...


def live_state(obj: dict[str, Any]) -> tuple[str, str]:
    """Whether the operator has rolled out the object's latest generation (its status says so)."""
    gen = obj.get("metadata", {}).get("generation")
    status = obj.get("status") or {}
    if status.get("observedGeneration") != gen:
        return "pending", ""
    for c in status.get("conditions") or []:
        if c.get("type") == "Ready":
            if c.get("status") == "True":
                return "live", ""
            return ("pending" if c.get("reason") in ("Progressing", "Rolling", "Pending") else "failed",
                    str(c.get("reason", "")))
    return "pending", ""


class KubeShops:
    """StoreAgents through the kubernetes client (sync; run on a thread so the loop never waits on the API)."""

    def __init__(self, kubeconfig: str = "") -> None:
        from kubernetes import client, config

        cfg = client.Configuration()
        if kubeconfig:
            config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)  # type: ignore[no-untyped-call]
        else:
            config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        self._api = client.CustomObjectsApi(client.ApiClient(cfg))

    async def _call(self, fn: Any, *args: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return await asyncio.to_thread(fn, *args)
        except ApiException as e:
            if e.status == 404:
                raise ShopGone(str(e.reason)) from None
            if e.status == 409:
                raise Conflict(str(e.reason)) from None
            raise

    async def read(self, shop: ShopRef) -> ShopDoc:
        obj = await self._call(self._api.get_namespaced_custom_object, GROUP, VERSION, shop.namespace, PLURAL,
                               shop.name)
        live, detail = live_state(obj)
        return ShopDoc(obj.get("spec", {}), obj["metadata"]["resourceVersion"], live, detail)

    async def write(self, shop: ShopRef, spec: dict[str, Any], version: str) -> ShopDoc:
        obj = await self._call(self._api.get_namespaced_custom_object, GROUP, VERSION, shop.namespace, PLURAL,
                               shop.name)
        if obj["metadata"]["resourceVersion"] != version:
            raise Conflict("changed since the page was loaded")
        obj["spec"] = validate_spec(spec)
        obj.pop("status", None)
        new = await self._call(self._api.replace_namespaced_custom_object, GROUP, VERSION, shop.namespace, PLURAL,
                               shop.name, obj)
        live, detail = live_state(new)
        return ShopDoc(new.get("spec", {}), new["metadata"]["resourceVersion"], live, detail)


class FileShops:
    """StoreAgent manifests on disk, one per shop (`make demo-web`); writes are atomic (temp file + rename)."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files

    def _path(self, shop: ShopRef) -> Path:
        try:
            return self.files[shop.id]
        except KeyError:
            raise ShopGone(shop.id) from None

    async def read(self, shop: ShopRef) -> ShopDoc:
        text = await asyncio.to_thread(self._path(shop).read_text, encoding="utf-8")
        doc = yaml.safe_load(text)
        return ShopDoc(doc.get("spec", {}), hashlib.sha256(text.encode()).hexdigest()[:16], "local")

    async def write(self, shop: ShopRef, spec: dict[str, Any], version: str) -> ShopDoc:
        path = self._path(shop)
        current = await self.read(shop)
        if current.version != version:
            raise Conflict("the file changed since the page was loaded")
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        doc["spec"] = validate_spec(spec)
        text = "# Written by `storeagent web` (the owner's page); the local agent reloads it.\n" + yaml.safe_dump(
            doc, allow_unicode=True, sort_keys=False)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        return ShopDoc(doc["spec"], hashlib.sha256(text.encode()).hexdigest()[:16], "local")
