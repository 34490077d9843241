"""The agent process's one settings object (principle 6): every knob, its unit and why its default.

Read once at start from environment variables (`STOREAGENT_*`, plus `POD_IP` from the downward API) and CLI flags;
then passed down explicitly. Nothing reads the environment after start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from storeagent.policy import TenantPolicy


class TurnSettings(BaseModel):
    """Turn-taking. Times in milliseconds of audio."""

    model_config = ConfigDict(frozen=True)

    vad_aggressiveness: int = Field(2, ge=0, le=3, description="webrtcvad mode: 2 rejects line noise")
    speech_start_ms: int = Field(60, ge=20, description="speech needed to open a turn (and to barge in): 3 frames")
    end_of_turn_ms: int = Field(500, ge=100, description="silence that ends a turn; shorter cuts callers off")
    preroll_ms: int = Field(300, ge=0, description="audio before the onset sent to STT so first phonemes survive")
    min_turn_ms: int = Field(120, ge=20, description="shorter bursts: no reply (barge-in still stops speech)")
    ack_after_ms: int = Field(1000, ge=200, description="no agent audio this long after a turn: say a short filler")
    stt_final_timeout_ms: int = Field(2500, ge=200, description="wait this long for a final transcript after a turn")
    # Off by default: in make bench-speech (piper callers, quiet box) it cut one of four questions off at an inner
    # pause and that answer came 9.2 s after the caller finished (0.14-0.21 s with the timer): docs/turn-taking.md.
    smart_turn: bool = Field(False, description="judge pauses with the smart-turn model when installed (endturn.py)")


class AgentSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    config_path: Path = Field(Path("/etc/storeagent/shop.yaml"), description="ShopConfig YAML (operator ConfigMap)")
    host: str = Field("0.0.0.0", description="bind address for both listeners")
    esl_port: int = Field(8084, description="FreeSWITCH's `socket` application connects here")
    http_port: int = Field(8080, description="audio websocket, /metrics, /healthz, /readyz, /v1/stats")
    advertise_host: str = Field(
        "127.0.0.1", description="host FreeSWITCH uses to reach our audio websocket (POD_IP in Kubernetes)"
    )
    max_calls: int = Field(50, ge=1, description="concurrent calls; more are refused so FreeSWITCH runs the fallback")
    drain_seconds: float = Field(630.0, ge=0, description="SIGTERM: live calls get this long (max call + margin)")
    audio_attach_timeout_s: float = Field(5.0, gt=0, description="the module must connect its websocket this fast")
    stream_token_key_file: Path | None = Field(None, description="shared HMAC key for stream tokens; random if unset")
    stream_token_ttl_s: float = Field(30.0, gt=0, description="a token is single use and expires this fast")
    transfer_gateway: str = Field(
        "carrier", pattern=r"^[a-z0-9][a-z0-9-]{0,62}$",
        description="sofia gateway that reaches staff phones; the operator sets the FreeSWITCH conf's name",
    )
    data_dir: Path = Field(Path("./data"), description="durable outbox (messages, call records)")
    log_format: str = Field("json", pattern="^(json|text)$")
    debug_endpoints: bool = Field(False, description="/v1/debug/turns (every turn's text): benchmarks only")
    web_sessions: bool = Field(
        False, description="accept browser test calls (uuids web-*) whose token the owner web minted with the "
        "shared stream_token_key_file (agent/websession.py); off: only FreeSWITCH's calls")
    tenant_policy: TenantPolicy = Field(
        default_factory=TenantPolicy,
        description="the platform's URL and number policy (operator-rendered JSON); unset: the strict default")
    speech_url: str = Field(
        "", pattern=r"^(wss?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?)?$",
        description="the platform's speech service (ws://host:port) for shops choosing providers `speech`; "
        "set by the operator, never by a shop")
    turn: TurnSettings = Field(default_factory=TurnSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> AgentSettings:
        e = os.environ if env is None else env
        data: dict[str, object] = {}
        mapping = {
            "STOREAGENT_CONFIG": "config_path",
            "STOREAGENT_HOST": "host",
            "STOREAGENT_ESL_PORT": "esl_port",
            "STOREAGENT_HTTP_PORT": "http_port",
            "STOREAGENT_ADVERTISE_HOST": "advertise_host",
            "STOREAGENT_MAX_CALLS": "max_calls",
            "STOREAGENT_DRAIN_SECONDS": "drain_seconds",
            "STOREAGENT_STREAM_TOKEN_KEY_FILE": "stream_token_key_file",
            "STOREAGENT_DATA_DIR": "data_dir",
            "STOREAGENT_TRANSFER_GATEWAY": "transfer_gateway",
            "STOREAGENT_LOG_FORMAT": "log_format",
            "STOREAGENT_DEBUG_ENDPOINTS": "debug_endpoints",
            "STOREAGENT_SPEECH_URL": "speech_url",
            "STOREAGENT_WEB_SESSIONS": "web_sessions",
        }
        if "POD_IP" in e:
            data["advertise_host"] = e["POD_IP"]
        for var, field in mapping.items():
            if var in e:
                data[field] = e[var]
        if e.get("STOREAGENT_TENANT_POLICY"):
            data["tenant_policy"] = TenantPolicy.model_validate_json(e["STOREAGENT_TENANT_POLICY"])
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(data)
