"""Reconciliation, free of kopf: parse -> desire -> apply -> dialplan -> status, per shop.

`handlers.py` feeds it kopf's events; the state here is a cache rebuilt on every start (resume handlers),
never a source of truth: every write is a converging apply or a keyed merge patch, so an operator killed
mid-reconcile simply reconciles again and creates nothing twice.

Status writes go through one writer task per shop: changes arriving within `status_coalesce_seconds` (a
Deployment rolling out emits several status events in a row) become one patch, and a shop's patches never
overtake each other (two concurrent patches could land out of order and leave a stale status behind).
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import aiohttp
from pydantic import ValidationError

from storeagent.operator import children as children_mod
from storeagent.operator import dialplan, memtrim, model, resources, status
from storeagent.operator.children import ApplyFailed, ChildWriter, NameInUse, StaleChild, Written
from storeagent.operator.esl import Reloader
from storeagent.operator.k8s import Api, ApiError
from storeagent.operator.metrics import OperatorMetrics
from storeagent.operator.settings import Settings, bridge_template
from storeagent.operator.shardwriter import ShardWriter
from storeagent.operator.shopstate import ShopState
from storeagent.operator.spec_errors import InvalidSpec as InvalidSpec  # re-exported for handlers.py
from storeagent.operator.spec_errors import RetryLater as RetryLater
from storeagent.operator.spec_errors import format_error as _format_error

log = logging.getLogger(__name__)
Obj = dict[str, Any]
DIALPLAN_LABEL = "storeagent.dev/dialplan"


def _digest(text: str | None) -> str:
    return hashlib.sha256(text.encode()).hexdigest() if text is not None else ""
EventPoster = Callable[[Obj, str, str, str], None]  # (object ref, type, reason, message)


class Controller:
    def __init__(self, api: Api, settings: Settings, reloader: Reloader, post_event: EventPoster,
                 metrics: OperatorMetrics | None = None) -> None:
        self.api = api
        self.metrics = metrics or OperatorMetrics()
        self.settings = settings
        self.reloader = reloader
        self.post_event = post_event
        self.shops: dict[str, ShopState] = {}
        self.dialplans = ShardWriter(api)
        self.children = ChildWriter(api)
        # Every shop's number claim, fed by the kopf index handler; ownership is computed once per change of
        # the claims, not once per shop and timer tick (that was O(shops^2) work every stats interval).
        self._claims: dict[str, dialplan.Claim] = {}
        self._ownership_cache: dialplan.Ownership | None = None
        self._http: aiohttp.ClientSession | None = None
        # Children seen in the watches' initial listings, not yet claimed by their shop's first reconcile:
        # (kind, namespace, name) -> (controlling StoreAgent's uid, the object as listed).
        self._listed: dict[tuple[str, str, str], tuple[str, Written]] = {}
        # Shops by the dialplan ConfigMap their file is in: an event of one shard checks its own shops only
        # (each shard patch comes back as an event; scanning all shops for each was O(shops^2) in a burst).
        self._shard_members: dict[str, dict[str, ShopState]] = {}
        self._writing = asyncio.Semaphore(settings.concurrent_shop_writes)  # reconciles writing children
        self._pod_ips: Callable[[ShopState], list[str]] | None = None  # the pod index, bound by stats_loop

    def state(self, namespace: str, name: str) -> ShopState:
        key = f"{namespace}/{name}"
        if key not in self.shops:
            self.shops[key] = ShopState(namespace, name)
        return self.shops[key]

    # -- StoreAgent create/update/resume ------------------------------------------------------------------
    async def reconcile(self, body: Obj) -> None:
        meta, spec = body["metadata"], body.get("spec") or {}
        st = self.state(meta["namespace"], meta["name"])
        if st.uid != meta["uid"]:
            st.children.clear()  # a new StoreAgent of the same name: nothing of the old one is ours
        st.uid = meta["uid"]
        st.deleting = bool(meta.get("deletionTimestamp"))
        st.observed.generation = meta.get("generation")
        if st.last_status is None:
            st.stored_conditions = list((body.get("status") or {}).get("conditions") or [])
        st.observed.spec_error = None  # judged afresh: a fixed spec must not keep the old verdict
        try:
            parsed = model.parse_spec(spec)
            if not model.valid_store_name(st.name):
                raise InvalidSpec(f"metadata.name {st.name!r} must be a DNS-1035 label of at most 52 characters")
            # The platform's URL and number policy (tenant-input): refused specs get no pods and no dialplan.
            if refused := model.policy_violations(parsed, self.settings.tenant_policy):
                raise InvalidSpec("; ".join(refused))
            try:  # a stored value outside the dialplan allowlist (written before a rule existed)
                dialplan.check_spec(st.namespace, st.name, parsed)
            except dialplan.RenderError as e:
                raise InvalidSpec(str(e)) from e
        except ValidationError as e:
            st.observed.spec_error = _format_error(e)
        except InvalidSpec as e:
            st.observed.spec_error = str(e)
        if st.observed.spec_error is not None:
            msg = st.observed.spec_error
            st.shop = None
            await self.refresh_status(st)
            self.post_event(st.ref(), "Warning", "InvalidSpec", msg)
            raise InvalidSpec(msg)
        st.shop = resources.Shop(st.name, st.namespace, st.uid, parsed)
        st.observed.numbers = tuple(parsed.phone_numbers)
        st.observed.replicas_wanted = parsed.scaling.replicas
        # Status changes seen meanwhile (the Deployment's events) wait for this reconcile's verdict: one patch
        # at its end instead of half-done states (dialplan pending) written on the way.
        st.reconciling = True
        try:
            out = await self._write_children(st)
            self._observe_deployment(st, out)
            st.observed.reconciled_generation = st.observed.generation
            await self.sync_dialplan(st, cascade=True)
        except NameInUse as e:
            await self._failed(st, "NameInUse", str(e))
            # The other object may be removed by its owner: look again now and then.
            raise RetryLater(str(e), self.settings.name_in_use_retry_seconds) from e
        except StaleChild as e:
            await self._failed(st, "WaitingForGarbageCollection", str(e))
            raise RetryLater(str(e), 5.0) from e
        except ApplyFailed as e:
            await self._failed(st, "ApplyFailed", self._verdict(str(e), e.error))
            raise
        except ApiError as e:  # the dialplan ConfigMap in the operator's namespace
            await self._failed(st, "DialplanWriteFailed", self._verdict(str(e), e))
            raise
        except dialplan.RenderError as e:  # check_spec above should have caught it: still say so
            await self._failed(st, "RenderFailed", f"{e} (not retried until the StoreAgent changes)")
            raise InvalidSpec(str(e)) from e
        except Exception as e:  # a bug: the status says something failed instead of keeping an old verdict
            await self._failed(st, "ReconcileError", f"{type(e).__name__}: {e}"[:500])
            raise
        finally:
            st.reconciling = False
        st.observed.apply_error, st.failure_event = None, None
        await self.refresh_status(st)
        if st.observed.dialplan_ok is False:
            raise RetryLater(st.observed.dialplan_message, 15.0)

    @staticmethod
    def _verdict(message: str, e: ApiError) -> str:
        if e.retryable:
            return f"{message} (retrying in {e.delay_s:g} s)"
        return f"{message} (not retried until the StoreAgent changes)"

    async def _failed(self, st: ShopState, reason: str, message: str) -> None:
        st.reconciling = False  # the verdict is in: write it
        st.observed.apply_error = (reason, message)
        await self.refresh_status(st)
        if st.failure_event != (reason, message):
            st.failure_event = (reason, message)
            self.post_event(st.ref(), "Warning", reason, message)

    async def _write_children(self, st: ShopState) -> Obj:
        """The supporting objects in parallel, then the Deployment: a shop none of whose names may be written
        never gets pods. (A taken name is found by its create-only write; the shop's other objects are its own,
        owned by it and removed with it.)"""
        assert st.shop is not None
        async with self._writing:  # rendered only once admitted: a waiting shop holds nothing but its event
            return await self._write_children_now(st)

    async def _write_children_now(self, st: ShopState) -> Obj:
        assert st.shop is not None
        *support, deployment = resources.desired_all(st.shop, self.settings)
        async with st.child_lock:
            for o in [*support, deployment]:
                self._adopt_listed(st, o)
            seen_before = bool(st.stored_conditions)  # a status from an earlier process: its children exist
            applied = await asyncio.gather(
                *(self.children.apply(st.children, o, st.name, st.uid, seen_before) for o in support),
                return_exceptions=True)
            taken = [a for a in applied if isinstance(a, NameInUse)]
            if len(taken) > 1:
                also = ", ".join(f"{t.kind} {t.name}" for t in taken[1:])
                raise NameInUse(taken[0].kind, st.namespace, taken[0].name, f"{taken[0].holder}; also taken: {also}")
            for a in [*taken, *applied]:
                if isinstance(a, BaseException):
                    raise a
            return await self._apply_deployment(st, deployment)

    def listed(self, kind: str, obj: Obj) -> None:
        """A child from a watch's initial listing (an operator start): remember it if it is controlled by a
        StoreAgent, so that shop's first reconcile writes it by uid without reading it first."""
        meta = obj["metadata"]
        store = (meta.get("labels") or {}).get(resources.STORE_LABEL)
        if not store:
            return
        st = self.shops.get(f"{meta['namespace']}/{store}")
        if st is not None and (kind, meta["name"]) in st.children:
            return  # a re-listing: this process wrote it and knows it
        owner = next((r.get("uid") for r in meta.get("ownerReferences") or []
                      if r.get("controller") and r.get("kind") == model.KIND), None)
        if owner:
            self._listed[(kind, meta["namespace"], meta["name"])] = (str(owner), children_mod.Written(
                str(meta.get("uid")), str(meta.get("resourceVersion", "")), children_mod.essence_digest(obj)))

    def _adopt_listed(self, st: ShopState, obj: Obj) -> None:
        """Caller holds `st.child_lock`. The listing saw this child controlled by this very StoreAgent: the same
        verdict a read would give (`children.classify`), and the write still carries the uid as a precondition."""
        kind, name = obj["kind"], obj["metadata"]["name"]
        hit = self._listed.pop((kind, st.namespace, name), None)
        if hit is not None and hit[0] == st.uid and (kind, name) not in st.children:
            st.children[(kind, name)] = hit[1]

    # -- number claims ------------------------------------------------------------------------------------
    def set_claim(self, key: str, claim: dialplan.Claim | None) -> None:
        if self._claims.get(key) == claim:
            return
        if claim is None:
            self._claims.pop(key, None)
        else:
            self._claims[key] = claim
        self._ownership_cache = None

    def resync_claims(self, claims: Iterable[dialplan.Claim]) -> None:
        """Adopt kopf's index wholesale (it also drops objects that vanished without our finalizer)."""
        fresh = {c.key: c for c in claims}
        if fresh != self._claims:
            self._claims = fresh
            self._ownership_cache = None

    def _ownership(self, exclude: str = "") -> dialplan.Ownership:
        if exclude:
            return dialplan.ownership(c for k, c in self._claims.items() if k != exclude)
        if self._ownership_cache is None:
            self._ownership_cache = dialplan.ownership(self._claims.values())
        return self._ownership_cache

    # -- dialplan -------------------------------------------------------------------------------------------

    async def sync_dialplan(self, st: ShopState, cascade: bool, exclude: str = "") -> None:
        if st.shop is None:
            return
        async with st.lock:
            own = self._ownership(exclude)
            spec = st.shop.spec
            lost = own.lost_by(st.key, spec.phone_numbers)
            rivals = own.rivals(st.key, spec.phone_numbers)
            kept = [n for n in spec.phone_numbers if n not in lost]
            xml = dialplan.render(
                namespace=st.namespace, name=st.name, numbers=kept, service_host=st.shop.service_host,
                esl_port=resources.ESL_PORT, fallback=spec.fallback,
                bridge_template=bridge_template(self.settings.gateway),
                apology=dialplan.apology_file(spec.language), generation=st.observed.generation or 0)
            shard = dialplan.configmap_name(dialplan.shard_of(st.namespace, st.name))
            await self.dialplans.write(
                self.settings.freeswitch_namespace, shard, dialplan.file_key(st.namespace, st.name), xml,
                {"app.kubernetes.io/managed-by": resources.MANAGED_BY, DIALPLAN_LABEL: "true"})
            st.dialplan_digest, st.dialplan_shard = _digest(xml), shard
            self._shard_members.setdefault(shard, {})[st.key] = st
            result = await self.reloader.reload()
            self.metrics.dialplan_reload(result.ok)
            o = st.observed
            o.dialplan_ok = result.ok
            o.dialplan_reason = ("Reloaded" if self.reloader.configured else "Written") if result.ok else "ReloadFailed"
            o.dialplan_message = result.message
            o.lost = {n: [own.owner[n]] for n in lost}
            o.kept_contested = {n: who for n, who in rivals.items() if n not in lost}
            previous_rivals, st.rivals = st.rivals, {k for who in rivals.values() for k in who}
            signature = tuple(sorted((n, tuple(w)) for n, w in rivals.items()))
            changed = signature != st.conflict_signature
            st.conflict_signature = signature
        if changed and rivals:
            for n, who in sorted(rivals.items()):
                holder = own.owner[n]
                verdict = "kept by this shop" if holder == st.key else f"kept by {holder} (claimed first)"
                msg = f"{n} is also claimed by {', '.join(who)}: {verdict}; never taken over silently"
                self.post_event(st.ref(), "Warning", "NumberConflict", msg)
                for other in who:
                    if (ost := self.shops.get(other)) is not None:
                        self.post_event(ost.ref(), "Warning", "NumberConflict",
                                        f"{n} is also claimed by {st.key}: kept by {holder}")
        if cascade:
            for other in sorted(previous_rivals | st.rivals):
                if (ost := self.shops.get(other)) is not None and ost.shop is not None:
                    await self.sync_dialplan(ost, cascade=False, exclude=exclude)
                    await self.refresh_status(ost)

    async def recheck(self, st: ShopState) -> None:
        """Periodic catch-all: re-render when number ownership moved under this shop (a rival came or went)."""
        if st.shop is None:
            return
        own = self._ownership()
        lost = set(own.lost_by(st.key, st.shop.spec.phone_numbers))
        contested = own.rivals(st.key, st.shop.spec.phone_numbers)
        if lost != set(st.observed.lost) or set(contested) != set(st.observed.kept_contested) | lost:
            await self.sync_dialplan(st, cascade=True)
        await self.refresh_status(st)

    # -- deletion ---------------------------------------------------------------------------------------------
    async def delete(self, namespace: str, name: str) -> None:
        """Finalizer: remove the shop's dialplan and reload before the object goes; children go by GC."""
        key = f"{namespace}/{name}"
        st = self.shops.get(key) or ShopState(namespace, name)
        st.deleting = True
        shard = dialplan.configmap_name(dialplan.shard_of(namespace, name))
        await self.dialplans.write(self.settings.freeswitch_namespace, shard, dialplan.file_key(namespace, name),
                                   None, {})
        result = await self.reloader.reload()
        if not result.ok:
            raise RetryLater(result.message, 10.0)
        self.shops.pop(key, None)
        self._shard_members.get(shard, {}).pop(key, None)
        self.set_claim(key, None)
        if st.status_task is not None:
            st.status_task.cancel()
        self.metrics.shop_deleted(namespace, name)
        for other in sorted(st.rivals):  # a number this shop held may now go to the next claimant
            if (ost := self.shops.get(other)) is not None:
                await self.sync_dialplan(ost, cascade=False, exclude=key)
                await self.refresh_status(ost)

    # -- Deployment events: readiness and drift --------------------------------------------------------------
    def _observe_deployment(self, st: ShopState, dep: Obj) -> None:
        s = dep.get("status") or {}
        o = st.observed
        o.replicas = int(s.get("replicas", 0) or 0)
        o.ready_replicas = int(s.get("readyReplicas", 0) or 0)
        o.updated_replicas = int(s.get("updatedReplicas", 0) or 0)
        o.deployment_generation_seen = int(s.get("observedGeneration", 0) or 0) >= int(
            dep["metadata"].get("generation", 0) or 0)

    def mark_deleting(self, namespace: str, name: str) -> None:
        """Deletion started (foreground deletion removes children first): stop restoring them."""
        if (st := self.shops.get(f"{namespace}/{name}")) is not None:
            st.deleting = True

    async def on_deployment(self, namespace: str, store: str, event_type: str, dep: Obj) -> None:
        st = self.shops.get(f"{namespace}/{store}")
        if st is None or st.shop is None or dep["metadata"].get("name") != st.name:
            return  # not reconciled by this process yet: its resume handler applies it
        gone = event_type == "DELETED"
        foreign = dep["metadata"].get("generation") != st.deployment_generation
        if gone:
            st.children.pop(("Deployment", st.name), None)
        # While our own apply is in flight its events carry a generation we have not learned yet; a hand edit
        # made before our apply is overwritten by it, one made after shows up as a later generation.
        if (not st.applying_deployment and not st.deleting
                and (gone or (foreign and not dep["metadata"].get("deletionTimestamp")))):
            t0 = time.monotonic()
            try:
                async with st.child_lock:
                    dep = await self._apply_deployment(st, resources.desired_deployment(st.shop, self.settings))
            except (NameInUse, ApplyFailed) as e:
                await self._restore_refused(st, e)
                return
            self._restored(st, "Deployment", st.name, "deleted" if gone else "edited", t0)
        had_ready = st.observed.ready_replicas > 0
        self._observe_deployment(st, dep)
        if (not had_ready and st.observed.ready_replicas > 0 and self._pod_ips is not None
                and (ips := self._pod_ips(st))):
            # The shop's first ready pod: its stats go out in the same status patch as the Ready it brings
            # (the stats loop would ask up to one interval later: one more patch per new shop).
            await guarded(self.poll_stats(st, ips), f"stats {st.key}")
        await self.refresh_status(st)

    async def _restore_refused(self, st: ShopState, e: NameInUse | ApplyFailed) -> None:
        """A restore outside a reconcile could not write: the status and an Event say why (no exception: the
        watch event that asked for it has nobody to retry it; the shop's next reconcile or event does)."""
        if isinstance(e, NameInUse):
            await self._failed(st, "NameInUse", str(e))
        else:
            await self._failed(st, "ApplyFailed", self._verdict(str(e), e.error))

    def _restored(self, st: ShopState, kind: str, name: str, why: str, t0: float) -> None:
        took = time.monotonic() - t0
        log.info("%s %s/%s %s outside the operator: restored in %.3f s", kind, st.namespace, name, why, took)
        self.metrics.child_restored(kind)

    async def on_child(self, kind: str, namespace: str, store: str, event_type: str, obj: Obj) -> None:
        """A ConfigMap, Service, ServiceAccount, NetworkPolicy or PDB of a shop changed or went away."""
        st = self.shops.get(f"{namespace}/{store}")
        if st is None or st.shop is None or st.deleting:
            return
        name = obj["metadata"]["name"]
        shop = st.shop
        names = {"ConfigMap": resources.config_name(shop), "ServiceAccount": resources.sa_name(shop)}
        if name != names.get(kind, st.name):
            return  # carries our labels but is not one of this shop's objects: none of our business
        uid, rv = obj["metadata"].get("uid"), obj["metadata"].get("resourceVersion")

        def foreign() -> bool:
            """A deletion, a replacement or an edit of ours by someone else?"""
            rec = st.children.get((kind, name))
            if event_type == "DELETED":
                return True
            if rec is None:
                return False  # never written by this process yet: its (resume) reconcile writes it
            if rec.uid != uid:
                return True
            # Our own write, or only its status moved.
            return rec.resource_version != rv and rec.essence != children_mod.essence_digest(obj)

        # Judged twice: without the lock, so the events of a shop's own writes do not queue behind the
        # reconcile holding it (each waiting event holds one of kopf's workers), and again under it.
        if not foreign():
            return
        t0 = time.monotonic()
        try:
            async with st.child_lock:
                if not foreign():
                    return
                rec = st.children.get((kind, name))
                if rec is not None and (event_type == "DELETED" or rec.uid != uid):
                    st.children.pop((kind, name), None)  # gone or replaced: check the name before writing
                # Rendered only now: most events are our own writes, and rendering costs a YAML dump.
                desired = next(o for o in resources.desired_all(shop, self.settings)
                               if o["kind"] == kind and o["metadata"]["name"] == name)
                out = await self.children.apply(st.children, desired, st.name, st.uid)
        except (NameInUse, ApplyFailed) as e:
            await self._restore_refused(st, e)
            return
        # An apply that changed nothing (someone else's status update, a label of theirs) is no restore.
        if event_type == "DELETED" or out["metadata"].get("resourceVersion") != rv:
            self._restored(st, kind, name, "deleted" if event_type == "DELETED" else "edited", t0)

    async def on_dialplan_configmap(self, name: str, event_type: str, obj: Obj) -> None:
        """A shard ConfigMap was edited or deleted: rewrite every shop file in it that is not what we wrote."""
        namespace = self.settings.freeswitch_namespace
        if obj["metadata"].get("namespace") != namespace:
            return
        if event_type == "DELETED":
            self.api.forget_shell(namespace, name)
        else:
            rv = str(obj["metadata"].get("resourceVersion") or "")
            if rv.isdigit() and int(rv) < self.api.dialplan_versions.get((namespace, name), 0):
                return  # a state from before our latest write: the event of that write follows
        data = {} if event_type == "DELETED" else (obj.get("data") or {})
        t0 = time.monotonic()
        stale = [st for st in list(self._shard_members.get(name, {}).values())
                 if self.shops.get(st.key) is st and st.shop is not None and not st.deleting and st.dialplan_digest
                 and st.dialplan_shard == name
                 and _digest(data.get(dialplan.file_key(st.namespace, st.name))) != st.dialplan_digest]
        if not stale:
            return
        # One batch: the shard writer carries all of them in one patch.
        await asyncio.gather(*(guarded(self.sync_dialplan(st, cascade=False), f"dialplan {st.key}")
                               for st in stale))
        took = time.monotonic() - t0
        log.info("dialplan ConfigMap %s/%s %s outside the operator: %d shop file(s) restored in %.3f s",
                 namespace, name, "deleted" if event_type == "DELETED" else "edited", len(stale), took)
        self.metrics.child_restored("DialplanConfigMap")
        for st in stale:
            await self.refresh_status(st)

    async def _apply_deployment(self, st: ShopState, deployment: Obj) -> Obj:
        """Caller holds `st.child_lock`."""
        st.applying_deployment = True
        try:
            assert st.shop is not None
            out = await self.children.apply(st.children, deployment, st.name, st.uid, bool(st.stored_conditions))
        finally:
            st.applying_deployment = False
        st.deployment_generation = out["metadata"].get("generation")
        return out

    # -- agent stats -----------------------------------------------------------------------------------------
    async def poll_stats(self, st: ShopState, pod_ips: list[str]) -> None:
        if self._http is None:
            # No keep-alive pool: one idle connection per agent pod (1,000 shops: 1,000 sockets and their
            # buffers) would cost more than a new connection per poll; the limit bounds a burst of timers.
            self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32, force_close=True))
        override = self.settings.stats_address_override
        # The override is one agent standing in for the shop's pods; like them it is asked only once a pod is
        # ready (a 1,000-shop burst polled every new shop every interval, each a connection to nothing).
        urls = ([f"http://{override}"] if pod_ips else []) if override else [
            f"http://{ip}:{resources.HTTP_PORT}" for ip in pod_ips]
        timeout = self.settings.stats_timeout_seconds
        limit = self.settings.stats_max_bytes
        got = await asyncio.gather(*(status.fetch_stats(self._http, u, timeout, limit) for u in urls))
        st.observed.totals = status.aggregate([g for g in got if g is not None])
        await self.refresh_status(st)

    async def stats_loop(self, pod_ips: Callable[[ShopState], list[str]],
                         before_cycle: Callable[[], None] = lambda: None) -> None:
        """Every `stats_interval_seconds`: re-check number ownership and poll every shop's agents.

        One loop for all shops rather than a kopf timer per shop: a timer is two tasks and a retained copy of
        the object per shop, and 1,000 timers started together poll in one burst. Here the shops are spread
        evenly over the interval, with a bounded number of polls in flight.
        """
        self._pod_ips = pod_ips
        slots = asyncio.Semaphore(32)
        pending: set[asyncio.Task[None]] = set()

        async def one(st: ShopState) -> None:
            try:
                if self.shops.get(st.key) is st and st.shop is not None:
                    await guarded(self.recheck(st), f"recheck {st.key}")
                    await guarded(self.poll_stats(st, pod_ips(st)), f"stats {st.key}")
            finally:
                slots.release()

        interval = self.settings.stats_interval_seconds
        await asyncio.sleep(min(1.0, interval))
        while True:
            started = asyncio.get_running_loop().time()
            try:
                before_cycle()
            except Exception:  # a failed resync must not end the loop
                log.exception("stats cycle")
            memtrim.trim()  # what the last burst freed goes back to the OS (memtrim.py)
            shops = [st for st in self.shops.values() if st.shop is not None]
            gap = interval / max(1, len(shops))
            for st in shops:
                await slots.acquire()
                task = asyncio.create_task(one(st))
                pending.add(task)
                task.add_done_callback(pending.discard)
                await asyncio.sleep(gap)
            await asyncio.sleep(max(0.0, started + interval - asyncio.get_running_loop().time()))

    async def close(self) -> None:
        for st in self.shops.values():
            if st.status_task is not None:
                st.status_task.cancel()
        await self.dialplans.close()
        if self._http is not None:
            await self._http.close()

    # -- status --------------------------------------------------------------------------------------------
    async def refresh_status(self, st: ShopState) -> None:
        """Ask for the shop's status to be written; the shop's writer task patches it soon (coalesced)."""
        st.status_dirty = True
        if st.reconciling:
            return  # the reconcile ends with a refresh of its own
        if st.status_task is None or st.status_task.done():
            # A context of its own: the task would otherwise keep the copy of the caller's, and with it kopf's
            # cause of the handler that asked (the whole body of a StoreAgent, Deployment or pod event) for as
            # long as the shop keeps its last writer task, i.e. for good.
            st.status_task = asyncio.create_task(self._status_writer(st), name=f"status {st.key}",
                                                 context=contextvars.Context())

    async def _status_writer(self, st: ShopState) -> None:
        # Leading edge: a change after a quiet spell is written at once (a new shop's Ready is not held back by
        # the window); changes within `status_coalesce_seconds` of the last write wait for the window to close
        # and go out as one patch (a rollout emits several status events in a row).
        window = self.settings.status_coalesce_seconds
        retry = 0.0
        while st.status_dirty and self.shops.get(st.key) is st:
            wait = st.status_written_at + window - time.monotonic()
            if self._writing.locked():
                # A burst (every child-writing slot taken): the trailing edge, so the shop's next change (its
                # Deployment's first status, soon after the apply) joins this patch instead of one of its own.
                wait = max(wait, window)
            await asyncio.sleep(max(retry, wait))
            st.status_dirty = False
            st.status_written_at = time.monotonic()
            try:
                await self._write_status(st)
                retry = 0.0
            except Exception as e:  # the API server is busy or away: keep the latest status and try again
                log.warning("status %s: %s; retrying", st.key, e)
                st.status_dirty = True
                retry = 5.0

    async def _write_status(self, st: ShopState) -> None:
        """Patch the status only when something other than timestamps changed."""
        new = status.compose(st.observed)
        by_type = {c["type"]: c["status"] == "True" for c in new["conditions"]}
        self.metrics.shop_status(st.namespace, st.name, ready=by_type["Ready"],
                                 dialplan_synced=by_type["DialplanSynced"], paused=by_type.get("Paused", False))
        previous = st.last_status
        base = previous["conditions"] if previous is not None else st.stored_conditions
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        full = status.with_transition_times(new, base, now)
        if previous is not None and status.strip_times(full) == status.strip_times(previous):
            return
        await self.api.patch_status(st.namespace, st.name, full)
        st.last_status = full


async def guarded(coro: Awaitable[None], what: str) -> None:
    try:
        await coro
    except Exception:  # a status refresh must never kill a timer or watcher
        log.exception("%s failed", what)
