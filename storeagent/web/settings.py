"""The web service's one settings object (principle 6): flags and `STOREAGENT_WEB_*` variables, read once."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from storeagent.web.shops import ShopRef


class ShopEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    ref: ShopRef
    file: Path | None = Field(None, description="a StoreAgent manifest on disk; unset: the object on the API server")
    webhook_secret: bytes | None = Field(None, description="HMAC key the shop's agent signs its webhook with")
    agent_url: str = Field("", description="the shop's agent (http://host:port) for browser test calls")


class WebSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    host: str = Field("0.0.0.0", description="bind address")
    port: int = Field(8090, description="HTTP port: pages, /v1/ingest webhook, /metrics, /healthz")
    database: str = Field("data/web.sqlite", description="SQLite path, or a postgresql:// URL")
    kubeconfig: str = Field("", description="kubeconfig for the StoreAgent API; empty: in-cluster ServiceAccount")
    shops: tuple[ShopEntry, ...] = ()
    session_ttl_s: float = Field(8 * 3600.0, gt=0, description="a session ends this long after sign-in")
    invite_ttl_s: float = Field(72 * 3600.0, gt=0, description="an invitation link works this long, once")
    secure_cookies: bool = Field(True, description="cookies only over https; off for plain-http local runs")
    allow_unsigned_webhooks: bool = Field(False, description="demo only: accept unsigned webhook items")
    stream_token_key: bytes | None = Field(None, description="the agents' stream-token HMAC key (test calls)")
    public_url: str = Field("http://127.0.0.1:8090", description="base of invitation links")

    def shop(self, shop_id: str) -> ShopEntry | None:
        return next((s for s in self.shops if s.ref.id == shop_id), None)
