"""Pure builders: a shop's desired Kubernetes objects as plain dicts (no clients; applied by `k8s.py`).

Every object carries the shop's labels and an owner reference (garbage collection on delete). Fields the
operator does not set are left to other managers under server-side apply; fields it sets are reclaimed.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import yaml

from storeagent.operator import model
from storeagent.operator.settings import Settings

Obj = dict[str, Any]
AGENT_NAME = "storeagent-agent"
MANAGED_BY = "storeagent-operator"
STORE_LABEL = "storeagent.dev/store"
CONFIG_HASH = "storeagent.dev/config-hash"
ESL_PORT = 8084
HTTP_PORT = 8080
DRAIN_MARGIN_S = 30  # grace beyond the longest call: SIGTERM -> finish calls -> exit
CONFIG_DIR = "/etc/storeagent"
TOKEN_DIR = "/var/run/storeagent/stream-token"
WEBHOOK_SECRET_DIR = "/var/run/storeagent/webhook"
DATA_DIR = "/var/lib/storeagent"
# SIGTERM -> live calls drain for STOREAGENT_DRAIN_SECONDS -> the outbox drains (5 s) -> exit: the kubelet's
# SIGKILL comes at terminationGracePeriodSeconds, so the call drain ends this much earlier.
EXIT_MARGIN_S = 15
PROVIDER_KEYS = ("DEEPGRAM_API_KEY", "OPENAI_API_KEY", "ELEVENLABS_API_KEY")


@dataclass(frozen=True)
class Shop:
    name: str
    namespace: str
    uid: str
    spec: model.StoreAgentSpec

    @property
    def service_host(self) -> str:
        return f"{self.name}.{self.namespace}.svc.cluster.local"


def selector(shop: Shop) -> dict[str, str]:
    return {"app.kubernetes.io/name": AGENT_NAME, STORE_LABEL: shop.name}


def labels(shop: Shop) -> dict[str, str]:
    return {**selector(shop), "app.kubernetes.io/instance": shop.name, "app.kubernetes.io/managed-by": MANAGED_BY}


def owner_ref(shop: Shop) -> Obj:
    return {"apiVersion": f"{model.GROUP}/{model.VERSION}", "kind": model.KIND, "name": shop.name,
            "uid": shop.uid, "controller": True, "blockOwnerDeletion": True}


def _meta(shop: Shop, name: str) -> Obj:
    return {"name": name, "namespace": shop.namespace, "labels": labels(shop), "ownerReferences": [owner_ref(shop)]}


_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def config_name(shop: Shop) -> str:
    return f"{shop.name}-config"


def sa_name(shop: Shop) -> str:
    return f"{shop.name}-agent"


def shop_yaml(shop: Shop) -> str:
    cfg = shop.spec.shop_config(shop.name).model_dump(by_alias=True, mode="json", exclude_none=True)
    # libyaml's emitter when present (5x faster, same output; it runs twice per reconcile: file and hash).
    return yaml.dump(cfg, Dumper=_DUMPER, sort_keys=False, allow_unicode=True)


def desired_configmap(shop: Shop) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(shop, config_name(shop)),
            "data": {"shop.yaml": shop_yaml(shop)}}


def desired_service_account(shop: Shop) -> Obj:
    # No RBAC binds to it and no token is mounted: the agent never talks to the API.
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(shop, sa_name(shop)),
            "automountServiceAccountToken": False}


def desired_service(shop: Shop) -> Obj:
    return {
        "apiVersion": "v1", "kind": "Service", "metadata": _meta(shop, shop.name),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(shop),
            "ports": [
                {"name": "esl", "port": ESL_PORT, "targetPort": "esl", "protocol": "TCP"},
                {"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"},
            ],
        },
    }


def _env(shop: Shop, settings: Settings) -> list[Obj]:
    env: list[Obj] = [
        {"name": "STOREAGENT_CONFIG", "value": f"{CONFIG_DIR}/shop.yaml"},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "STOREAGENT_MAX_CALLS", "value": str(shop.spec.scaling.max_calls_per_pod)},
        {"name": "STOREAGENT_STREAM_TOKEN_KEY_FILE", "value": f"{TOKEN_DIR}/key"},
        {"name": "STOREAGENT_TRANSFER_GATEWAY", "value": settings.gateway},  # the gateway FreeSWITCH defines
        {"name": "STOREAGENT_DATA_DIR", "value": DATA_DIR},
        {"name": "STOREAGENT_DRAIN_SECONDS", "value": str(grace_seconds(shop) - EXIT_MARGIN_S)},
        # The platform's URL and number policy, re-checked by the agent where it connects and transfers.
        {"name": "STOREAGENT_TENANT_POLICY",
         "value": settings.tenant_policy.model_dump_json(by_alias=True)},
    ]
    if settings.agent_debug_endpoints:
        env.append({"name": "STOREAGENT_DEBUG_ENDPOINTS", "value": "true"})
    if _uses_speech(shop, settings):
        env.append({"name": "STOREAGENT_SPEECH_URL", "value": settings.speech_url})
    if shop.spec.webhook is not None and shop.spec.webhook.signing_secret_ref is not None:
        env.append({"name": "STOREAGENT_WEBHOOK_SECRET_FILE", "value": f"{WEBHOOK_SECRET_DIR}/secret"})
    if shop.spec.secret_ref is not None:
        for key in PROVIDER_KEYS:
            env.append({"name": key, "valueFrom": {"secretKeyRef": {
                "name": shop.spec.secret_ref.name, "key": key, "optional": True}}})
    return env


def _resources(shop: Shop) -> Obj:
    out: Obj = {}
    for kind in ("requests", "limits"):
        rl = getattr(shop.spec.resources, kind).model_dump(exclude_none=True)
        if rl:
            out[kind] = rl
    return out


def _image(shop: Shop, settings: Settings) -> tuple[str, str]:
    # The platform's images only: a tenant-chosen image would run any code with the shop's provider keys.
    if settings.slim_image_repository and _speech_only(shop, settings):
        return f"{settings.slim_image_repository}:{settings.slim_image_tag}", settings.image_pull_policy
    return f"{settings.image_repository}:{settings.image_tag}", settings.image_pull_policy


def _speech_only(shop: Shop, settings: Settings) -> bool:
    """STT and TTS are served by the platform's speech service first: the agent needs no speech models of its own
    (with the service down, its offline members are espeak-ng and no recognizer)."""
    p = shop.spec.providers
    return bool(settings.speech_url) and p.stt.name == "speech" and p.tts.name == "speech"


def grace_seconds(shop: Shop) -> int:
    return shop.spec.max_call_seconds + DRAIN_MARGIN_S


def _data_volume(shop: Shop, settings: Settings) -> Obj:
    if settings.agent_data_claim:
        return {"name": "data", "persistentVolumeClaim": {
            "claimName": settings.agent_data_claim.replace("{store}", shop.name)}}
    return {"name": "data", "emptyDir": {"sizeLimit": settings.agent_data_size_limit}}


def _extra_volumes(shop: Shop) -> tuple[list[Obj], list[Obj]]:
    """(volumes, mounts) for the webhook signing secret, when the shop has one."""
    ref = shop.spec.webhook.signing_secret_ref if shop.spec.webhook is not None else None
    if ref is None:
        return [], []
    return ([{"name": "webhook-secret", "secret": {"secretName": ref.name, "items": [{"key": ref.key,
                                                                                     "path": "secret"}]}}],
            [{"name": "webhook-secret", "mountPath": WEBHOOK_SECRET_DIR, "readOnly": True}])


def config_hash(shop: Shop) -> str:
    return hashlib.sha256(shop_yaml(shop).encode()).hexdigest()[:16]


def desired_deployment(shop: Shop, settings: Settings) -> Obj:
    image, pull = _image(shop, settings)
    extra_volumes, extra_mounts = _extra_volumes(shop)
    http_probe = {"port": "http", "scheme": "HTTP"}
    container = {
        "name": "agent",
        "image": image,
        "imagePullPolicy": pull,
        "command": ["storeagent", "agent", "serve"],
        "ports": [
            {"name": "esl", "containerPort": ESL_PORT, "protocol": "TCP"},
            {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
        ],
        "env": _env(shop, settings),
        "resources": _resources(shop),
        "livenessProbe": {"httpGet": {**http_probe, "path": "/healthz"}, "periodSeconds": 10,
                          "timeoutSeconds": 3, "failureThreshold": 3},
        "readinessProbe": {"httpGet": {**http_probe, "path": "/readyz"}, "periodSeconds": 5,
                           "timeoutSeconds": 3, "failureThreshold": 2},
        "startupProbe": {"httpGet": {**http_probe, "path": "/healthz"}, "periodSeconds": 2,
                         "failureThreshold": 60},
        "securityContext": {
            "runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
            "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "stream-token", "mountPath": TOKEN_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "data", "mountPath": DATA_DIR},
            *extra_mounts,
        ],
    }
    pod_labels = labels(shop)
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(shop, shop.name),
        "spec": {
            "replicas": shop.spec.scaling.replicas,
            "selector": {"matchLabels": selector(shop)},
            # Never below the wanted capacity during a roll: new pod ready first, old one drains its calls.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": pod_labels, "annotations": {CONFIG_HASH: config_hash(shop)}},
                "spec": {
                    "serviceAccountName": sa_name(shop),
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": grace_seconds(shop),
                    "securityContext": {"runAsNonRoot": True, "fsGroup": 10001,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                    "volumes": [
                        {"name": "config", "configMap": {"name": config_name(shop)}},
                        {"name": "stream-token", "secret": {"secretName": settings.stream_token_secret,
                                                            "items": [{"key": "key", "path": "key"}]}},
                        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
                        _data_volume(shop, settings),
                        *extra_volumes,
                    ],
                },
            },
        },
    }


def desired_pdb(shop: Shop) -> Obj:
    # maxUnavailable (not minAvailable) so a one-replica shop does not block node drains forever.
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": _meta(shop, shop.name),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(shop)}}}


def desired_network_policy(shop: Shop, settings: Settings) -> Obj:
    def ns(name: str) -> Obj:
        return {"matchLabels": {"kubernetes.io/metadata.name": name}}

    http = {"protocol": "TCP", "port": HTTP_PORT}
    esl = {"protocol": "TCP", "port": ESL_PORT}
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": _meta(shop, shop.name),
        "spec": {
            "podSelector": {"matchLabels": selector(shop)},
            # Egress: DNS, and the internet minus private ranges (providers, webhooks), plus what the
            # platform's URL policy allows: a compromised or misled agent cannot reach cluster services or
            # the cloud metadata endpoint.
            "policyTypes": ["Ingress", "Egress"],
            "egress": _egress(settings) + _speech_egress(shop, settings),
            "ingress": [
                {"from": [{"namespaceSelector": ns(settings.freeswitch_namespace),
                           "podSelector": {"matchLabels": dict(settings.freeswitch_pod_labels)}}],
                 "ports": [esl, http]},
                {"from": [{"namespaceSelector": {"matchLabels": dict(settings.prometheus_namespace_labels)}}],
                 "ports": [http]},
                {"from": [{"namespaceSelector": ns(settings.operator_namespace),
                           "podSelector": {"matchLabels": dict(settings.operator_pod_labels)}}],
                 "ports": [http]},
            ],
        },
    }


def _egress(settings: Settings) -> list[Obj]:
    dns = [{"protocol": p, "port": 53} for p in ("UDP", "TCP")]
    rules: list[Obj] = [{"to": [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": settings.egress_dns_namespace}},
        "podSelector": {"matchLabels": dict(settings.egress_dns_pod_labels)}}], "ports": dns}]
    blocks: list[Obj] = []
    for cidr in settings.egress_allow_cidrs:
        net = ipaddress.ip_network(cidr, strict=False)
        excepts = [e for e in settings.egress_except_cidrs
                   if (x := ipaddress.ip_network(e, strict=False)).version == net.version and x.subnet_of(net)]  # type: ignore[arg-type]
        blocks.append({"ipBlock": {"cidr": cidr, **({"except": excepts} if excepts else {})}})
    blocks += [{"ipBlock": {"cidr": c}} for c in settings.tenant_policy.urls.allow_cidrs]
    if blocks:
        rules.append({"to": blocks})
    return rules


def _uses_speech(shop: Shop, settings: Settings) -> bool:
    return bool(settings.speech_url) and shop.spec.providers.uses("speech")


def _speech_egress(shop: Shop, settings: Settings) -> list[Obj]:
    """The speech pods sit on the cluster's private network, which the egress above excludes: one rule for them,
    only for shops that use the service."""
    if not _uses_speech(shop, settings):
        return []
    port = urlsplit(settings.speech_url).port or 80
    return [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": settings.speech_namespace}},
                     "podSelector": {"matchLabels": dict(settings.speech_pod_labels)}}],
             "ports": [{"protocol": "TCP", "port": port}]}]


def desired_all(shop: Shop, settings: Settings) -> list[Obj]:
    """The Deployment last: what it references exists before it."""
    return [
        desired_service_account(shop),
        desired_configmap(shop),
        desired_service(shop),
        desired_network_policy(shop, settings),
        desired_pdb(shop),
        desired_deployment(shop, settings),
    ]


def fingerprint(obj: Obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]
