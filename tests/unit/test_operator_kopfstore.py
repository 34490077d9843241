"""kopf's diff base is a digest: a large spec no longer lands in an annotation (capped at 256 KiB)."""

from __future__ import annotations

from typing import Any

from kopf import AnnotationsDiffBaseStorage
from kopf._cogs.structs import bodies, patches
from kopf._cogs.structs.ids import HandlerId

from storeagent.operator.kopfstore import (
    ANNOTATION_COPY,
    ANNOTATION_DIGEST,
    PRIVATE_PREFIXES,
    HashedDiffBaseStorage,
    QuietProgressStorage,
    RememberedDiffBaseStorage,
    digest_of,
)


def body(spec: dict[str, Any], annotations: dict[str, str] | None = None) -> bodies.Body:
    return bodies.Body({"apiVersion": "storeagent.dev/v1alpha1", "kind": "StoreAgent",
                        "metadata": {"name": "s", "namespace": "t", "annotations": annotations or {},
                                     "resourceVersion": "1", "generation": 1},
                        "spec": spec, "status": {"conditions": []}})


def test_digest_is_small_stable_and_changes_with_the_spec() -> None:
    store = HashedDiffBaseStorage(prefix="storeagent.dev", key="last-handled-digest")
    faq = {"faq": [{"q": "why?", "a": "x" * 1_000_000}]}
    a = store.build(body=body(faq))
    # kopf's own bookkeeping and our progress annotations do not count as a change.
    b = store.build(body=body(faq, {"storeagent.dev/reconcile": "{}", "storeagent.dev/kopf-managed": "yes"}))
    assert a == b
    assert store.build(body=body({**faq, "x": 1})) != a
    assert store.build(body=body(faq, {"team": "bakers"})) != a  # a user's annotation is a change
    patch = patches.Patch()
    store.store(body=body(faq), patch=patch, essence=a)
    stored = patch["metadata"]["annotations"]
    assert sum(len(v or "") for v in stored.values()) < 200
    assert store.fetch(body=body(faq, {k: v for k, v in stored.items() if v})) == a


def test_an_old_full_copy_is_removed_on_the_next_store() -> None:
    store = HashedDiffBaseStorage(prefix="storeagent.dev", key="last-handled-digest")
    old = body({"a": 1}, {"storeagent.dev/last-handled-configuration": '{"spec":{"a":1}}'})
    patch = patches.Patch()
    store.store(body=old, patch=patch, essence=store.build(body=old))
    assert patch["metadata"]["annotations"]["storeagent.dev/last-handled-configuration"] is None


def test_the_digest_is_kopfs_essence_whatever_else_the_body_carries() -> None:
    """Built from a slimmed body (no status, no managedFields): the same digest as from kopf's full essence,
    so an upgraded operator does not see every shop as changed."""
    store = HashedDiffBaseStorage(prefix="storeagent.dev", key="last-handled-digest")
    full = body({"a": [1, {"b": 2}]}, {"team": "bakers", "storeagent.dev/reconcile": "{}"})
    heavy = bodies.Body({**full, "metadata": {**full["metadata"], "labels": {"x": "y"},
                                               "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {}}}]},
                         "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    essence = dict(AnnotationsDiffBaseStorage(prefix="storeagent.dev").build(body=heavy))
    annotations = essence["metadata"]["annotations"]
    for k in [k for k in annotations if k.startswith(PRIVATE_PREFIXES)]:
        del annotations[k]
    assert store.build(body=heavy) == {"digest": digest_of(essence)}
    assert store.build(body=heavy) != store.build(body=full)  # the label is part of it


def test_objects_without_change_handlers_get_no_digest_at_all() -> None:
    """Children, pods and dialplan ConfigMaps have only event handlers: kopf never reads their diff base, so
    none is computed (it was a copy and a JSON dump of every event's body); StoreAgents still get theirs."""
    store = HashedDiffBaseStorage(prefix="storeagent.dev", key="last-handled-digest")
    shard = bodies.Body({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dialplan-00"},
                         "data": {f"shop-{i}.xml": "<x/>" * 250 for i in range(300)}})
    assert store.build(body=shard) == {"digest": ""}
    assert store.build(body=body({"a": 1}))["digest"] not in ("", store.build(body=body({"a": 2}))["digest"])


def test_the_remembered_digest_costs_no_patch_and_is_per_object() -> None:
    """kopf stores the diff base after each handled change: kept in the process, that is no write at all (it
    was the second of kopf's two patches of every new StoreAgent); the digest itself is the hashed one."""
    store = RememberedDiffBaseStorage(prefix="storeagent.dev", key="last-handled-digest")
    shop = body({"a": 1})
    shop["metadata"]["uid"] = "uid-1"
    assert store.fetch(body=shop) is None  # unknown: kopf treats it as new (the same reconcile handler)
    essence = store.build(body=shop)
    assert essence == HashedDiffBaseStorage(prefix="storeagent.dev").build(body=shop)
    patch = patches.Patch()
    store.store(body=shop, patch=patch, essence=essence)
    assert not patch and store.fetch(body=shop) == essence
    other = body({"a": 1})
    other["metadata"]["uid"] = "uid-2"  # recreated under the same name: a new object
    assert store.fetch(body=other) is None
    store.forget("uid-1")
    assert store.fetch(body=shop) is None


def test_annotations_of_earlier_releases_are_removed_once() -> None:
    store = RememberedDiffBaseStorage(prefix="storeagent.dev", key="last-handled-digest")
    old = body({"a": 1}, {ANNOTATION_DIGEST: "{}", ANNOTATION_COPY: "{}", "team": "bakers"})
    old["metadata"]["uid"] = "uid-1"
    patch = patches.Patch()
    store.store(body=old, patch=patch, essence=store.build(body=old))
    assert patch == {"metadata": {"annotations": {ANNOTATION_DIGEST: None, ANNOTATION_COPY: None}}}


def test_a_handler_done_at_once_leaves_no_progress_patch_a_retry_keeps_its_marker() -> None:
    """kopf stores each handler's progress and purges it when all are done; the "kopf-managed" marker that
    came with the record stayed and was a patch of its own per new StoreAgent. Kept while a record is."""
    store = QuietProgressStorage(prefix="storeagent.dev")
    shop = body({"a": 1})
    done = patches.Patch()
    store.store(key=HandlerId("reconcile"), record={"started": "t", "success": True}, body=shop, patch=done)
    store.purge(key=HandlerId("reconcile"), body=shop, patch=done)
    assert not done
    retry = patches.Patch()
    store.store(key=HandlerId("reconcile"), record={"started": "t", "retries": 1}, body=shop, patch=retry)
    assert set(retry["metadata"]["annotations"]) == {"storeagent.dev/reconcile", "storeagent.dev/kopf-managed"}
    # Purged later, on an object that carries the record and the marker: both go, as kopf does it.
    marked = body({"a": 1}, {"storeagent.dev/reconcile": "{}", "storeagent.dev/kopf-managed": "yes"})
    cleanup = patches.Patch()
    store.purge(key=HandlerId("reconcile"), body=marked, patch=cleanup)
    assert cleanup == {"metadata": {"annotations": {"storeagent.dev/reconcile": None}}}
