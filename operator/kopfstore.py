"""kopf's diff base as a digest of the object's essence instead of a copy of it.

kopf's `AnnotationsDiffBaseStorage` writes the whole last-handled spec into an annotation. Annotations are
capped at 256 KiB per object, so a StoreAgent with a larger spec (a long FAQ) got a 422 on every patch kopf
made afterwards: its finalizer, its progress, everything. kopf needs the diff base only to tell whether
anything changed (and to hand old/new/diff to handlers, which ours never read), so a digest does: same
essence, same digest; any change of spec, labels or annotations, another digest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any, cast

import kopf
from kopf._cogs.structs import bodies, dicts, patches  # the storage API's types

from storeagent.operator import model

PRIVATE_PREFIXES = ("storeagent.dev/", "kopf.zalando.org/")
ANNOTATION_COPY = "storeagent.dev/last-handled-configuration"  # kopf's full copy (releases before the digest)
ANNOTATION_DIGEST = "storeagent.dev/last-handled-digest"  # the digest (releases before it was kept in memory)
# The essence of every object that is not a StoreAgent: nothing ever reads it (see `build`).
UNREAD = cast(bodies.BodyEssence, {"digest": ""})


def digest_of(essence: Any) -> str:
    return hashlib.sha256(json.dumps(essence, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class HashedDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    def build(self, *, body: bodies.Body,
              extra_fields: Iterable[dicts.FieldSpec] | None = None) -> bodies.BodyEssence:
        fields = list(extra_fields or [])
        if body.get("kind", model.KIND) != model.KIND and not fields:  # (kopf sets `kind` on listed items too)
            # kopf builds a diff base for every event of every kind it watches, but only change handlers read
            # it, and only StoreAgents have those: the children, pods and dialplan ConfigMaps have event
            # handlers alone. Their digest was a copy and a JSON dump of each event's body for nothing (a
            # dialplan shard is ~1 KB per shop in it, and comes back on every shard patch).
            return UNREAD
        if not fields:
            # kopf deep-copies the whole body (status, managedFields and all) before dropping everything but the
            # spec, labels and annotations: a fifth of the operator's CPU in the 1,000-shop bench, since every
            # status patch comes back as an event. Hand it only what it keeps; the essence is the same.
            meta = body.get("metadata") or {}
            slim = {k: v for k, v in body.items() if k not in ("metadata", "status")}
            slim["metadata"] = {k: meta[k] for k in ("labels", "annotations") if k in meta}
            body = bodies.Body(cast(bodies.RawBody, slim))
        essence = cast(dict[str, Any], super().build(body=body, extra_fields=fields))
        # Our own and kopf's bookkeeping (progress, finalizer marks) is not part of what the user changed;
        # the full storage removes it later (progress_storage.clear), a digest must not contain it at all.
        annotations = (essence.get("metadata") or {}).get("annotations") or {}
        for key in [k for k in annotations if k.startswith(PRIVATE_PREFIXES)]:
            del annotations[key]
        return cast(bodies.BodyEssence, {"digest": digest_of(essence)})

    def store(self, *, body: bodies.Body, patch: patches.Patch, essence: bodies.BodyEssence) -> None:
        super().store(body=body, patch=patch, essence=essence)
        # Drop the full copy an earlier release wrote, so an upgraded operator frees the annotation space.
        if ANNOTATION_COPY in body.metadata.annotations:
            patch.metadata.annotations[ANNOTATION_COPY] = None


class RememberedDiffBaseStorage(HashedDiffBaseStorage):
    """The digest kept in this process only: no annotation, and so no patch of its own.

    kopf patched every StoreAgent twice: its finalizer, then (after the first reconcile) the diff base. The
    diff base tells kopf whether anything changed since the last handled state; our handlers never read the
    diff, and every StoreAgent is reconciled whenever an operator starts (resume or, with no digest known,
    create: the same handler), so a digest that does not outlive the process loses nothing. The second patch
    (a write of each StoreAgent and an event to every watcher) is gone. Keyed by uid: a StoreAgent recreated
    under the same name is a new object.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._digests: dict[str, bodies.BodyEssence] = {}

    def fetch(self, *, body: bodies.Body) -> bodies.BodyEssence | None:
        return self._digests.get(str(body.metadata.uid))

    def store(self, *, body: bodies.Body, patch: patches.Patch, essence: bodies.BodyEssence) -> None:
        self._digests[str(body.metadata.uid)] = essence
        # Only the cleanup of what earlier releases wrote reaches the object (a patch for upgraded shops only).
        for key in (ANNOTATION_COPY, ANNOTATION_DIGEST):
            if key in body.metadata.annotations:
                patch.metadata.annotations[key] = None

    def forget(self, uid: str) -> None:
        self._digests.pop(uid, None)


class QuietProgressStorage(kopf.AnnotationsProgressStorage):
    """kopf's progress annotations, without the "kopf-managed" marker on objects that keep no progress.

    kopf writes the marker (it tells other kopf-based operators these annotations are bookkeeping) with the
    first progress record and purges the record when the handler succeeds; the marker stayed and was the
    only content of a patch per new StoreAgent. It is still written whenever a record is kept (a retry).
    """

    def purge(self, *, key: Any, body: bodies.Body, patch: patches.Patch) -> None:
        super().purge(key=key, body=body, patch=patch)
        marker = f"{self.prefix}/kopf-managed"
        ours = [k for k in patch.metadata.annotations if k.startswith(f"{self.prefix}/") and k != marker]
        if not ours and marker not in body.metadata.annotations and marker in patch.metadata.annotations:
            dicts.remove(patch, ["metadata", "annotations", marker])  # and the stanzas left empty
