"""kopf's diff base is a digest: a large spec no longer lands in an annotation (capped at 256 KiB)."""

from __future__ import annotations

from typing import Any

from kopf import AnnotationsDiffBaseStorage
from kopf._cogs.structs import bodies, patches

from storeagent.operator.kopfstore import PRIVATE_PREFIXES, HashedDiffBaseStorage, digest_of


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
