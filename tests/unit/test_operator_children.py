"""Child objects: never written when someone else made them (pure classification + the writer's decisions)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from storeagent.operator import children, k8s

UID = "uid-shop"


def svc(refs: list[dict[str, Any]] | None = None, managers: tuple[str, ...] = ("storeagent-operator",),
        uid: str = "svc-1") -> dict[str, Any]:
    return {"kind": "Service", "metadata": {
        "name": "bakery", "namespace": "t", "uid": uid, "resourceVersion": "7",
        "ownerReferences": refs or [], "managedFields": [{"manager": m} for m in managers]}}


def ref(uid: str = UID, name: str = "bakery", kind: str = "StoreAgent", controller: bool = True) -> dict[str, Any]:
    return {"apiVersion": "storeagent.dev/v1alpha1", "kind": kind, "name": name, "uid": uid, "controller": controller}


@pytest.mark.parametrize(("live", "verdict", "words"), [
    (svc([ref()]), children.Ownership.OURS, ""),
    (svc([ref(uid="older")]), children.Ownership.STALE, "earlier StoreAgent"),
    (svc([], managers=("kubectl-create",)), children.Ownership.FOREIGN, "kubectl-create"),
    (svc([ref(kind="Deployment", name="web")]), children.Ownership.FOREIGN, "Deployment web"),
    # A non-controller reference with our uid does not make it ours; nor does a reference to another shop.
    (svc([ref(controller=False)], managers=("helm",)), children.Ownership.FOREIGN, "helm"),
    (svc([ref(uid="x", name="other")]), children.Ownership.FOREIGN, "StoreAgent other"),
])
def test_classify(live: dict[str, Any], verdict: children.Ownership, words: str) -> None:
    got, holder = children.classify(live, "bakery", UID)
    assert got is verdict and words in holder


class FakeApi:
    def __init__(self, live: dict[str, Any] | None, race: dict[str, Any] | None = None) -> None:
        self.live, self.race = live, race
        self.applied: list[tuple[str, str]] = []
        self.gets = 0

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.gets += 1
        return copy.deepcopy(self.live)

    async def apply_created(self, obj: dict[str, Any], expect_uid: str = "") -> tuple[dict[str, Any], bool]:
        self.applied.append((obj["metadata"]["name"], expect_uid))
        if self.race is not None:  # someone created it between our read and our write
            self.live, self.race = self.race, None
        if self.live is not None and expect_uid and self.live["metadata"]["uid"] != expect_uid:
            raise k8s.api_error(422, "PATCH", "/x", '{"kind":"Status","reason":"Invalid","message":"uid"}')
        created = self.live is None
        self.live = self.live or svc([ref()], uid="new")
        return copy.deepcopy(self.live), created


DESIRED = {"kind": "Service", "metadata": {"name": "bakery", "namespace": "t"}}


async def test_absent_is_created_and_then_written_by_uid_without_reading() -> None:
    api = FakeApi(None)
    w = children.ChildWriter(api)
    written: dict[tuple[str, str], children.Written] = {}
    await w.apply(written, DESIRED, "bakery", UID)
    assert written[("Service", "bakery")].uid == "new" and api.applied == [("bakery", "")]
    await w.apply(written, DESIRED, "bakery", UID)
    assert api.gets == 1 and api.applied[-1] == ("bakery", "new")


async def test_foreign_object_is_refused_and_never_written() -> None:
    api = FakeApi(svc([], managers=("kubectl-client-side-apply",)))
    with pytest.raises(children.NameInUse) as e:
        await children.ChildWriter(api).apply({}, DESIRED, "bakery", UID)
    assert api.applied == [] and "Service t/bakery" in str(e.value) and "kubectl-client-side-apply" in str(e.value)


async def test_replaced_after_our_write_is_looked_at_again() -> None:
    api = FakeApi(None)
    w = children.ChildWriter(api)
    written: dict[tuple[str, str], children.Written] = {}
    await w.apply(written, DESIRED, "bakery", UID)
    api.live = svc([], managers=("kubectl-create",), uid="someone-elses")  # deleted and recreated by another
    with pytest.raises(children.NameInUse):
        await w.apply(written, DESIRED, "bakery", UID)
    assert ("Service", "bakery") not in written


async def test_created_by_someone_else_between_read_and_write_is_reported() -> None:
    api = FakeApi(None, race=svc([], managers=("kubectl-create", "storeagent-operator"), uid="theirs"))
    with pytest.raises(children.NameInUse, match="while being created"):
        await children.ChildWriter(api).apply({}, DESIRED, "bakery", UID)


async def test_stale_child_of_an_earlier_shop_waits_for_the_garbage_collector() -> None:
    with pytest.raises(children.StaleChild):
        await children.ChildWriter(FakeApi(svc([ref(uid="older")]))).apply({}, DESIRED, "bakery", UID)


async def test_api_errors_are_wrapped_with_the_object() -> None:
    class Refusing(FakeApi):
        async def apply_created(self, obj: dict[str, Any], expect_uid: str = "") -> tuple[dict[str, Any], bool]:
            raise k8s.api_error(422, "PATCH", "/api/v1/x", '{"kind":"Status","reason":"Invalid",'
                                '"message":"ConfigMap \\"bakery-config\\" is invalid: data: Too long"}')

    with pytest.raises(children.ApplyFailed) as e:
        await children.ChildWriter(Refusing(None)).apply({}, DESIRED, "bakery", UID)
    assert "Service t/bakery: HTTP 422 Invalid" in str(e.value) and "Too long" in str(e.value)
    assert e.value.error.retryable is False


async def test_a_refused_read_is_an_apply_failure_with_its_retry_policy() -> None:
    class Forbidden(FakeApi):
        async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
            raise k8s.api_error(403, "GET", "/x", '{"kind":"Status","reason":"Forbidden","message":"no get"}')

    with pytest.raises(children.ApplyFailed) as e:
        await children.ChildWriter(Forbidden(None)).apply({}, DESIRED, "bakery", UID)
    assert e.value.error.retryable and e.value.error.delay_s == 30 and "HTTP 403 Forbidden" in str(e.value)
