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
    """The API server's side of a child write: create-only refuses an existing object (409) and changes
    nothing; a write by uid refuses another object (422, as kube-apiserver does for a changed uid)."""

    def __init__(self, live: dict[str, Any] | None) -> None:
        self.live = live
        self.applied: list[tuple[str, str, bool]] = []  # (name, expected uid, create-only)
        self.gets = 0

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.gets += 1
        return copy.deepcopy(self.live)

    async def apply_created(self, obj: dict[str, Any], expect_uid: str = "",
                            create_only: bool = False) -> tuple[dict[str, Any], bool]:
        self.applied.append((obj["metadata"]["name"], expect_uid, create_only))
        if create_only and self.live is not None:
            raise k8s.api_error(409, "PATCH", "/x", '{"kind":"Status","reason":"Conflict","message":"modified"}')
        if self.live is not None and expect_uid and self.live["metadata"]["uid"] != expect_uid:
            raise k8s.api_error(422, "PATCH", "/x", '{"kind":"Status","reason":"Invalid","message":"uid"}')
        if self.live is None and expect_uid:
            raise k8s.api_error(409, "PATCH", "/x", '{"kind":"Status","reason":"Conflict","message":"uid mismatch"}')
        created = self.live is None
        self.live = self.live or svc([ref()], uid="new")
        return copy.deepcopy(self.live), created


DESIRED = {"kind": "Service", "metadata": {"name": "bakery", "namespace": "t"}}


async def test_absent_is_created_in_one_write_and_then_written_by_uid_without_reading() -> None:
    api = FakeApi(None)
    w = children.ChildWriter(api)
    written: dict[tuple[str, str], children.Written] = {}
    await w.apply(written, DESIRED, "bakery", UID)
    assert written[("Service", "bakery")].uid == "new" and api.applied == [("bakery", "", True)]
    await w.apply(written, DESIRED, "bakery", UID)
    assert api.gets == 0 and api.applied[-1] == ("bakery", "new", False)


async def test_our_existing_object_is_read_once_then_written_by_its_uid() -> None:
    api = FakeApi(svc([ref()], uid="ours"))  # e.g. after an operator restart
    written: dict[tuple[str, str], children.Written] = {}
    await children.ChildWriter(api).apply(written, DESIRED, "bakery", UID)
    assert api.gets == 1 and api.applied == [("bakery", "", True), ("bakery", "ours", False)]
    assert written[("Service", "bakery")].uid == "ours"


async def test_a_shop_reconciled_by_an_earlier_process_reads_first_instead_of_a_refused_create() -> None:
    api = FakeApi(svc([ref()], uid="ours"))
    await children.ChildWriter(api).apply({}, DESIRED, "bakery", UID, likely_exists=True)
    assert api.gets == 1 and api.applied == [("bakery", "ours", False)]
    gone = FakeApi(None)  # the hint was wrong: read, absent, created
    await children.ChildWriter(gone).apply({}, DESIRED, "bakery", UID, likely_exists=True)
    assert gone.gets == 1 and gone.applied == [("bakery", "", True)]


async def test_foreign_object_is_refused_and_never_written() -> None:
    foreign = svc([], managers=("kubectl-client-side-apply",))
    api = FakeApi(foreign)
    with pytest.raises(children.NameInUse) as e:
        await children.ChildWriter(api).apply({}, DESIRED, "bakery", UID)
    # Only the create-only attempt, which the API server refused without changing anything.
    assert api.applied == [("bakery", "", True)] and api.live == foreign
    assert "Service t/bakery" in str(e.value) and "kubectl-client-side-apply" in str(e.value)


async def test_replaced_after_our_write_is_looked_at_again() -> None:
    api = FakeApi(None)
    w = children.ChildWriter(api)
    written: dict[tuple[str, str], children.Written] = {}
    await w.apply(written, DESIRED, "bakery", UID)
    theirs = svc([], managers=("kubectl-create",), uid="someone-elses")  # deleted and recreated by another
    api.live = copy.deepcopy(theirs)
    with pytest.raises(children.NameInUse):
        await w.apply(written, DESIRED, "bakery", UID)
    assert ("Service", "bakery") not in written and api.live == theirs


async def test_deleted_after_our_write_is_created_again() -> None:
    api = FakeApi(None)
    w = children.ChildWriter(api)
    written: dict[tuple[str, str], children.Written] = {}
    await w.apply(written, DESIRED, "bakery", UID)
    api.live = None  # deleted by someone: the uid precondition fails, create-only recreates it
    await w.apply(written, DESIRED, "bakery", UID)
    assert api.applied[-2:] == [("bakery", "new", False), ("bakery", "", True)] and api.gets == 0


async def test_stale_child_of_an_earlier_shop_waits_for_the_garbage_collector() -> None:
    with pytest.raises(children.StaleChild):
        await children.ChildWriter(FakeApi(svc([ref(uid="older")]))).apply({}, DESIRED, "bakery", UID)


async def test_api_errors_are_wrapped_with_the_object() -> None:
    class Refusing(FakeApi):
        async def apply_created(self, obj: dict[str, Any], expect_uid: str = "",
                                create_only: bool = False) -> tuple[dict[str, Any], bool]:
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
        await children.ChildWriter(Forbidden(svc([ref()]))).apply({}, DESIRED, "bakery", UID)
    assert e.value.error.retryable and e.value.error.delay_s == 30 and "HTTP 403 Forbidden" in str(e.value)
