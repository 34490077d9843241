"""What the operator keeps per shop: a cache rebuilt on every start, never a source of truth (controller.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from storeagent.operator import model, resources, status
from storeagent.operator.children import Written

Obj = dict[str, Any]


@dataclass
class ShopState:
    namespace: str
    name: str
    uid: str = ""
    shop: resources.Shop | None = None
    observed: status.Observed = field(default_factory=status.Observed)
    last_status: Obj | None = None
    stored_conditions: list[Obj] = field(default_factory=list)
    deployment_generation: int | None = None  # generation our last apply produced: anything else is a hand edit
    applying_deployment: bool = False  # our apply is in flight: its own events are not hand edits
    conflict_signature: tuple[Any, ...] = ()
    rivals: set[str] = field(default_factory=set)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    status_dirty: bool = False
    status_task: asyncio.Task[None] | None = None
    reconciling: bool = False  # a reconcile is writing the shop: status refreshes wait for its end
    status_written_at: float = -1e9  # monotonic start of the last status write (the coalescing window's anchor)
    # Children as this process last wrote them, (kind, name) -> uid and resourceVersion: an event carrying
    # another resourceVersion is someone else's edit (restored), one without the object a deletion.
    children: dict[tuple[str, str], Written] = field(default_factory=dict)
    child_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    dialplan_digest: str = ""  # sha256 of the file last written: a shard edit that changed it is restored
    dialplan_shard: str = ""  # the ConfigMap it was written to
    deleting: bool = False  # finalizer running or foreground deletion: children must not be recreated
    failure_event: tuple[str, str] | None = None  # last Warning posted for apply_error (no repeats)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def ref(self) -> Obj:
        return {"apiVersion": f"{model.GROUP}/{model.VERSION}", "kind": model.KIND,
                "metadata": {"namespace": self.namespace, "name": self.name, "uid": self.uid}}
