"""Thin kopf wiring: every handler translates a kopf event into one `Controller` call.

Registered on an explicit registry (not import-time decorators) so the settings chosen on the command line
(timer interval, namespaces) are known when handlers are declared.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import kopf

from storeagent.operator import dialplan, model, resources
from storeagent.operator.children import ApplyFailed
from storeagent.operator.controller import DIALPLAN_LABEL, Controller, InvalidSpec, RetryLater, guarded
from storeagent.operator.esl import Reloader
from storeagent.operator.k8s import Api, ApiError, connection_fields, load_credentials
from storeagent.operator.kopfstore import QuietProgressStorage, RememberedDiffBaseStorage
from storeagent.operator.metrics import OperatorMetrics, serve_from_env
from storeagent.operator.settings import Settings

log = logging.getLogger(__name__)
SA = (model.GROUP, model.VERSION, model.PLURAL)
MANAGED = {"app.kubernetes.io/managed-by": resources.MANAGED_BY}
# Children watched for deletions and hand edits (the Deployment has its own handler: readiness too).
CHILD_KINDS = {
    "ConfigMap": ("", "v1", "configmaps"),
    "Service": ("", "v1", "services"),
    "ServiceAccount": ("", "v1", "serviceaccounts"),
    "NetworkPolicy": ("networking.k8s.io", "v1", "networkpolicies"),
    "PodDisruptionBudget": ("policy", "v1", "poddisruptionbudgets"),
}


def _post_event(ref: dict[str, Any], type_: str, reason: str, message: str) -> None:
    kopf.event(ref, type=type_, reason=reason, message=message[:1000])  # type: ignore[arg-type]


def register(registry: kopf.OperatorRegistry, settings: Settings, kubeconfig: str) -> None:
    holder: dict[str, Any] = {}
    diff_base = RememberedDiffBaseStorage(prefix="storeagent.dev", key="last-handled-digest")

    def ctl() -> Controller:
        c: Controller = holder["controller"]
        return c

    @kopf.on.login(registry=registry, id="login")
    def login(**_: Any) -> kopf.ConnectionInfo:
        # An explicit registry has no default login handler; and kopf's would read $KUBECONFIG, not our flag.
        return kopf.ConnectionInfo(**connection_fields(kubeconfig))

    @kopf.on.startup(registry=registry, id="startup")
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure(settings, _settings, diff_base)
        api = Api(load_credentials(kubeconfig), timeout_s=_settings.request_timeout_s)
        reloader = Reloader(_settings.freeswitch_esl, _settings.freeswitch_esl_password,
                            _settings.dialplan_settle_seconds)
        metrics = OperatorMetrics()
        serve_from_env(metrics)  # $STOREAGENT_OPERATOR_METRICS_ADDRESS, set by the chart
        holder["controller"] = Controller(api, _settings, reloader, _post_event, metrics)
        holder["reloader_task"] = asyncio.create_task(reloader.run(), name="reloadxml")
        holder["stats_task"] = asyncio.create_task(
            holder["controller"].stats_loop(pod_ips, resync_claims), name="stats")

    _settings = settings

    @kopf.on.cleanup(registry=registry, id="cleanup")
    async def cleanup(**_: Any) -> None:
        for name in ("reloader_task", "stats_task"):
            if (task := holder.get(name)) is not None:
                task.cancel()
        if "controller" in holder:
            await ctl().close()
            await ctl().api.close()

    tenant_namespaces = set(settings.namespaces)

    def served(namespace: str | None, **_: Any) -> bool:
        # With a namespace list kopf also watches the operator's own namespace (the dialplan ConfigMaps);
        # StoreAgents there are served only if it is one of the listed namespaces.
        return not tenant_namespaces or namespace in tenant_namespaces

    # Index handlers are coroutines: kopf runs plain functions in a thread pool, a thread hop per event.
    @kopf.index(*SA, registry=registry, id="number_claims", when=served)
    async def number_claims(**kw: Any) -> dict[str, Any]:
        namespace, name, uid, spec, meta = kw["namespace"], kw["name"], kw["uid"], kw["spec"], kw["meta"]
        # A shop being deleted claims nothing: its numbers may pass on to the next claimant.
        if meta.get("deletionTimestamp"):
            ctl().set_claim(f"{namespace}/{name}", None)
            ctl().mark_deleting(namespace, name)  # foreground deletion removes children first: no restores
            return {}
        numbers = spec.get("phoneNumbers") or []
        claim = dialplan.Claim(namespace, name, str(meta.get("creationTimestamp", "")),
                               tuple(n for n in numbers if isinstance(n, str)), uid)
        ctl().set_claim(claim.key, claim)
        return {"all": claim}

    @kopf.index("", "v1", "pods", labels=MANAGED, registry=registry, id="agent_pods")
    async def agent_pods(**kw: Any) -> dict[Any, Any]:
        namespace, labels, status = kw["namespace"], kw["labels"], kw["status"]
        store = labels.get(resources.STORE_LABEL)
        if not store:
            return {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        return {(namespace, store): (status.get("podIP") or "", ready)}

    def bind(kw: dict[str, Any]) -> Controller:
        # kopf hands its live indexes only to handlers; the stats loop reads the same (live) objects.
        holder["number_claims"], holder["agent_pods"] = kw["number_claims"], kw["agent_pods"]
        return ctl()

    def resync_claims() -> None:
        # The index handler keeps the controller's claims current; once per stats cycle adopt kopf's index as
        # a whole, which also forgets an object deleted without our finalizer (kopf drops it from the index).
        if (claims := holder.get("number_claims")) is not None:
            ctl().resync_claims(claims.get("all", []))

    def pod_ips(st: Any) -> list[str]:
        pods = holder.get("agent_pods")
        found = pods.get((st.namespace, st.name), []) if pods is not None else []
        return [ip for ip, ready in found if ready and ip]

    @kopf.on.resume(*SA, registry=registry, id="reconcile", when=served)
    @kopf.on.create(*SA, registry=registry, id="reconcile", when=served)
    @kopf.on.update(*SA, registry=registry, id="reconcile", when=served)
    async def reconcile(**kw: Any) -> None:
        c = bind(kw)
        t0 = time.monotonic()

        def done(result: str) -> None:
            c.metrics.reconciled(result, time.monotonic() - t0)

        try:
            await c.reconcile(dict(kw["body"]))
            done("success")
        except InvalidSpec as e:
            done("error")
            raise kopf.PermanentError(str(e)) from e
        except RetryLater as e:
            done("retry")
            raise kopf.TemporaryError(str(e), delay=e.delay_s) from e
        except (ApplyFailed, ApiError) as e:
            raise _kopf_error(e, done) from e
        except Exception:
            done("error")
            raise

    @kopf.on.delete(*SA, registry=registry, id="delete", when=served)
    async def delete(**kw: Any) -> None:
        try:
            await bind(kw).delete(kw["namespace"], kw["name"])
            diff_base.forget(str(kw["uid"]))
        except RetryLater as e:
            raise kopf.TemporaryError(str(e), delay=e.delay_s) from e
        except ApiError as e:  # a finalizer must not give up: an undeletable shop is worse than a retry
            raise kopf.TemporaryError(str(e), delay=max(5.0, e.delay_s)) from e

    @kopf.on.event("apps", "v1", "deployments", labels=MANAGED, registry=registry, id="deployments")
    async def deployment_event(**kw: Any) -> None:
        store, event_type, namespace = kw["labels"].get(resources.STORE_LABEL), kw["type"], kw["namespace"]
        if event_type is None:  # the initial listing: the shop's resume handler applies it (by uid, unread)
            bind(kw).listed("Deployment", dict(kw["body"]))
            return
        if not store:
            return
        await guarded(bind(kw).on_deployment(namespace, store, event_type, dict(kw["body"])),
                      f"deployment {namespace}/{store}")

    for kind, (group, version, plural) in CHILD_KINDS.items():
        register_child(registry, kind, group, version, plural, bind)

    @kopf.on.event("", "v1", "configmaps", labels={DIALPLAN_LABEL: "true"}, registry=registry, id="dialplans")
    async def dialplan_event(**kw: Any) -> None:
        if kw["type"] is None:  # the initial listing: every shop writes its file on resume anyway
            return
        await guarded(bind(kw).on_dialplan_configmap(kw["name"], kw["type"], dict(kw["body"])),
                      f"dialplan ConfigMap {kw['name']}")


def register_child(registry: kopf.OperatorRegistry, kind: str, group: str, version: str, plural: str,
                   bind: Any) -> None:
    """One event handler per child kind (a function each: kopf keys handlers by id)."""

    async def child_event(**kw: Any) -> None:
        store, event_type, namespace = kw["labels"].get(resources.STORE_LABEL), kw["type"], kw["namespace"]
        if event_type is None:  # the initial listing: the shop's resume handler applies it (by uid, unread)
            bind(kw).listed(kind, dict(kw["body"]))
            return
        if not store:
            return
        await guarded(bind(kw).on_child(kind, namespace, store, event_type, dict(kw["body"])),
                      f"{kind} {namespace}/{kw['name']}")

    kopf.on.event(group, version, plural, labels=MANAGED, registry=registry, id=f"child-{plural}")(child_event)


def _kopf_error(e: ApplyFailed | ApiError, done: Any) -> Exception:
    """kopf's retry policy from the API error's class: temporary ones after their delay, the rest permanent."""
    err = e.error if isinstance(e, ApplyFailed) else e
    if err.retryable:
        done("retry")
        return kopf.TemporaryError(str(e), delay=err.delay_s)
    done("error")
    return kopf.PermanentError(str(e))


MANAGED_SELECTOR = ",".join(f"{k}={v}" for k, v in MANAGED.items())


def configure(s: kopf.OperatorSettings, settings: Settings,
              diff_base: RememberedDiffBaseStorage | None = None) -> None:
    """kopf settings; why each matters is in docs/operator.md ("Watch stalls")."""
    # A watch that silently stops delivering events is the classic kopf failure: bound it from both sides.
    s.watching.server_timeout = settings.watch_server_timeout_s
    s.watching.client_timeout = settings.watch_client_timeout_s
    s.watching.connect_timeout = 30
    s.watching.reconnect_backoff = 1.0
    s.networking.request_timeout = settings.request_timeout_s
    s.networking.connect_timeout = 30
    # Our own annotations/finalizer names, so nothing is written under another project's prefix.
    s.persistence.finalizer = "storeagent.dev/dialplan"
    s.persistence.progress_storage = QuietProgressStorage(prefix="storeagent.dev")
    # A digest, not a copy of the spec: annotations are capped at 256 KiB in total, and a copied spec above
    # that made every later patch of the object fail with 422. The handlers never read kopf's diff; kept in
    # this process, not in an annotation (one patch per new StoreAgent less: kopfstore.py).
    s.persistence.diffbase_storage = diff_base or RememberedDiffBaseStorage(
        prefix="storeagent.dev", key="last-handled-digest")
    # Filter children on the server: only objects the operator labelled travel over the watches.
    for _kind, (group, _version, plural) in CHILD_KINDS.items():
        s.watching.label_selectors[(group, plural) if group else plural] = MANAGED_SELECTOR
    s.watching.label_selectors[("apps", "deployments")] = MANAGED_SELECTOR
    s.watching.label_selectors["pods"] = MANAGED_SELECTOR
    s.posting.level = logging.INFO
    # Per-object workers: a cap bounds memory in a burst (1,000 shops at once: ~350 MB uncapped), and a short
    # idle timeout frees a slot soon after an object settles (default 5 s: 64 slots gave ~3 shops/s).
    s.batching.worker_limit = 200
    s.batching.idle_timeout = 1.0
    if settings.peering_name:
        s.peering.name = settings.peering_name
        s.peering.mandatory = True
        s.peering.clusterwide = True  # the chart grants clusterkopfpeerings only
