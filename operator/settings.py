"""The operator's one settings object: built once from argv/env in `__main__`, passed down explicitly."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field

from storeagent import __version__ as _version
from storeagent.policy import TenantPolicy


@dataclass(frozen=True)
class Settings:
    # Agent image when a shop sets no override; the tag follows the operator's own release.
    image_repository: str = "ghcr.io/storeagent/agent"
    image_tag: str = _version
    image_pull_policy: str = "IfNotPresent"
    # The agent without in-process speech models, for shops whose STT and TTS both name the speech service
    # (images/README.md); empty: every shop gets image_repository.
    slim_image_repository: str = ""
    slim_image_tag: str = _version
    # Secret (in each shop's namespace) holding the per-call stream-token key, mounted read-only into agents.
    stream_token_secret: str = "storeagent-stream-token"
    # Namespace FreeSWITCH runs in: dialplan ConfigMaps live there, NetworkPolicies admit its pods.
    freeswitch_namespace: str = "storeagent-system"
    freeswitch_pod_labels: dict[str, str] = field(
        default_factory=lambda: {"app.kubernetes.io/name": "freeswitch"}
    )
    # Who else may reach agent pods: Prometheus (scrape /metrics) and the operator (GET /v1/stats).
    prometheus_namespace_labels: dict[str, str] = field(
        default_factory=lambda: {"storeagent.dev/prometheus": "true"}
    )
    operator_namespace: str = "storeagent-system"
    operator_pod_labels: dict[str, str] = field(
        default_factory=lambda: {"app.kubernetes.io/name": "storeagent-operator"}
    )
    # FreeSWITCH inbound ESL endpoints to send `reloadxml` to; a headless Service name resolves to every pod.
    # Empty: dialplans are written but no reload is sent (DialplanSynced says so).
    freeswitch_esl: tuple[str, ...] = ()
    freeswitch_esl_password: str = "ClueCon"
    # kubelet refreshes mounted ConfigMaps about once a minute: reload again after this long so FreeSWITCH
    # reads the files that were still in flight at the first reload.
    dialplan_settle_seconds: float = 90.0
    # FreeSWITCH's outbound gateway (chart value freeswitch.trunk.gatewayName, defined by the FreeSWITCH conf):
    # fallback forwards bridge through it and every agent gets it for transfers, so all three agree.
    gateway: str = "carrier"
    # Seconds between /v1/stats polls of each shop's pods (status is patched only when it changed).
    stats_interval_seconds: float = 15.0
    stats_timeout_seconds: float = 2.0
    # Status changes arriving within this window are written as one patch (a rollout emits several in a row).
    status_coalesce_seconds: float = 1.0
    # Stats are fetched from the pod IP; tests point this at a local agent with "host:port".
    stats_address_override: str = ""
    # kopf watch settings against the known silent watch stalls (see docs/operator.md).
    watch_server_timeout_s: int = 300
    watch_client_timeout_s: int = 330
    request_timeout_s: float = 30.0
    peering_name: str = ""  # non-empty: kopf peering so only one of several replicas reconciles
    namespaces: tuple[str, ...] = ()  # empty: cluster-wide
    liveness_endpoint: str = ""

    # --- Tenant policy (issue 11, tenant-input): platform decisions a StoreAgent cannot override. ---------
    # Where baseUrl/webhook URLs may point and which numbers calls may go to; checked at reconcile and
    # rendered into every agent (STOREAGENT_TENANT_POLICY) for connect-time and transfer-time checks.
    tenant_policy: TenantPolicy = field(default_factory=TenantPolicy)
    # Agent data (the outbox: messages and call records not yet delivered): "" is an emptyDir of this size
    # (lost when the pod is deleted, after its drain); otherwise a PVC name, "{store}" replaced by the shop's
    # name (the platform provisions it; ReadWriteMany when a shop runs more than one replica).
    agent_data_claim: str = ""
    agent_data_size_limit: str = "1Gi"
    # /v1/debug/turns (every turn's text and timings) is for benchmarks and debugging only.
    agent_debug_endpoints: bool = False
    # Egress of agent pods: DNS to these pods, and these networks (providers and webhooks are on the
    # internet) minus the excepted private ranges; the URL policy's allowCidrs are added to the allowed.
    egress_dns_namespace: str = "kube-system"
    egress_dns_pod_labels: dict[str, str] = field(default_factory=lambda: {"k8s-app": "kube-dns"})
    egress_allow_cidrs: tuple[str, ...] = ("0.0.0.0/0", "::/0")
    egress_except_cidrs: tuple[str, ...] = (
        "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16", "127.0.0.0/8",
        "fc00::/7", "fe80::/10", "::1/128",
    )

    # The platform's shared speech service (chart `speech`): agents of shops choosing `speech` get its URL
    # (STOREAGENT_SPEECH_URL) and an egress rule to its pods; "" = none (those shops use in-process engines).
    speech_url: str = ""
    speech_namespace: str = "storeagent-system"
    speech_pod_labels: dict[str, str] = field(default_factory=lambda: {"app.kubernetes.io/name": "storeagent-speech"})

    # --- Controller boundaries (issue 11, tenant-control). --------------------------------------------------
    # Largest /v1/stats answer read from an agent pod (a real one is a few hundred bytes; the pod runs tenant
    # configuration, so its answer is bounded like any untrusted input). The deadline is stats_timeout_seconds.
    stats_max_bytes: int = 64 * 1024
    # Seconds before a shop whose child name is taken by someone else's object looks again.
    name_in_use_retry_seconds: float = 30.0
    # Shops writing their children at once (a burst of new shops): the API client has 32 connections, so more
    # only queue inside the operator, each holding its rendered objects and responses (memory), while the
    # shops admitted first wait longer for their Deployment. 32 keeps every connection busy.
    concurrent_shop_writes: int = 32


def bridge_template(gateway: str) -> str:
    """FreeSWITCH bridge string for a number through the gateway; {number} is the E.164 number."""
    return f"sofia/gateway/{gateway}/{{number}}"


def _labels(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"label selector {part!r} must be key=value")
        out[key] = value
    return out


def parse(argv: list[str], env: dict[str, str] | None = None) -> tuple[Settings, argparse.Namespace]:
    env = dict(os.environ if env is None else env)
    d = Settings()
    p = argparse.ArgumentParser(prog="storeagent operator run", description="Run the StoreAgent operator.")
    p.add_argument("--kubeconfig", default=env.get("KUBECONFIG", ""), help="default: in-cluster config")
    p.add_argument("--image-repository", default=env.get("STOREAGENT_AGENT_IMAGE", d.image_repository))
    p.add_argument("--image-tag", default=env.get("STOREAGENT_AGENT_TAG", d.image_tag))
    p.add_argument("--slim-image-repository", default=d.slim_image_repository,
                   help="agent image without speech models, for shops on the speech service")
    p.add_argument("--slim-image-tag", default=d.slim_image_tag)
    p.add_argument("--stream-token-secret", default=d.stream_token_secret)
    p.add_argument("--freeswitch-namespace", default=env.get("STOREAGENT_FS_NAMESPACE", d.freeswitch_namespace))
    p.add_argument("--operator-namespace", default=env.get("POD_NAMESPACE", d.operator_namespace))
    p.add_argument("--freeswitch-esl", default=env.get("STOREAGENT_FS_ESL", ""),
                   help="comma-separated host:port of FreeSWITCH inbound ESL")
    p.add_argument("--dialplan-settle-seconds", type=float, default=d.dialplan_settle_seconds)
    p.add_argument("--gateway", default=d.gateway, help="FreeSWITCH gateway for forwards and transfers")
    p.add_argument("--stats-interval", type=float, default=d.stats_interval_seconds)
    p.add_argument("--stats-address-override", default="", help=argparse.SUPPRESS)
    p.add_argument("--concurrent-shop-writes", type=int, default=d.concurrent_shop_writes,
                   help="shops writing their children at once (a burst of new shops)")
    p.add_argument("--peering", default="", help="kopf peering name; set when running more than one replica")
    p.add_argument("--namespace", action="append", default=[], help="watch only these (default: all)")
    p.add_argument("--liveness", default="", help="e.g. http://0.0.0.0:8080/healthz")
    p.add_argument("--verbose", action="store_true")
    # Tenant policy (chart: operator.tenantPolicy, operator.agentData, operator.agentDebugEndpoints).
    p.add_argument("--tenant-policy", default=env.get("STOREAGENT_TENANT_POLICY", ""),
                   help="JSON: {urls: {allowHttp, allowHosts, allowCidrs}, numbers: {allowedCountryCodes, "
                   "deniedPrefixes}}")
    p.add_argument("--agent-data-claim", default=d.agent_data_claim)
    p.add_argument("--agent-data-size-limit", default=d.agent_data_size_limit)
    p.add_argument("--agent-debug-endpoints", action="store_true")
    p.add_argument("--speech-url", default=d.speech_url, help="ws://host:port of the shared speech service")
    p.add_argument("--speech-namespace", default="", help="namespace of the speech pods (default: ours)")
    p.add_argument("--egress-allow-cidr", action="append", default=[],
                   help="replaces the default 0.0.0.0/0, ::/0 (repeat)")
    a = p.parse_args(argv)
    s = Settings(
        image_repository=a.image_repository,
        image_tag=a.image_tag,
        slim_image_repository=a.slim_image_repository,
        slim_image_tag=a.slim_image_tag,
        stream_token_secret=a.stream_token_secret,
        freeswitch_namespace=a.freeswitch_namespace,
        operator_namespace=a.operator_namespace,
        freeswitch_esl=tuple(x.strip() for x in a.freeswitch_esl.split(",") if x.strip()),
        freeswitch_esl_password=env.get("STOREAGENT_FS_ESL_PASSWORD", d.freeswitch_esl_password),
        dialplan_settle_seconds=a.dialplan_settle_seconds,
        gateway=a.gateway,
        stats_interval_seconds=a.stats_interval,
        stats_address_override=a.stats_address_override,
        concurrent_shop_writes=max(1, a.concurrent_shop_writes),
        peering_name=a.peering,
        namespaces=tuple(a.namespace),
        liveness_endpoint=a.liveness,
        tenant_policy=TenantPolicy.model_validate_json(a.tenant_policy) if a.tenant_policy else TenantPolicy(),
        agent_data_claim=a.agent_data_claim,
        agent_data_size_limit=a.agent_data_size_limit,
        agent_debug_endpoints=a.agent_debug_endpoints,
        egress_allow_cidrs=tuple(a.egress_allow_cidr) or d.egress_allow_cidrs,
        speech_url=a.speech_url,
        speech_namespace=a.speech_namespace or a.operator_namespace,
    )
    return s, a
