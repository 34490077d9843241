"""What every handler needs, built once by the app and stored on it (no globals)."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from storeagent.web.auth import Auth, Session
from storeagent.web.db import Database
from storeagent.web.i18n import Translate
from storeagent.web.repo import Repo
from storeagent.web.settings import WebSettings
from storeagent.web.shops import Shops
from storeagent.web.throttle import Throttle

SESSION_COOKIE = "sa_session"
LANG_COOKIE = "sa_lang"


class WebMetrics:
    """All of the web service's prometheus objects (prefix storeagent_web_); labels stay low-cardinality."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("storeagent_web_requests_total", "HTTP requests by route class and status class",
                                ["route", "status"], registry=self.registry)
        self.signins = Counter("storeagent_web_signins_total", "sign-in attempts", ["result"], registry=self.registry)
        self.ingested = Counter("storeagent_web_ingested_total", "webhook items received", ["result"],
                                registry=self.registry)
        self.profile_writes = Counter("storeagent_web_profile_writes_total", "profile saves", ["result"],
                                      registry=self.registry)
        self.denied = Counter("storeagent_web_denied_total", "refused requests", ["reason"], registry=self.registry)


@dataclass
class Web:
    settings: WebSettings
    db: Database
    auth: Auth
    repo: Repo
    shops: Shops
    metrics: WebMetrics
    throttle: Throttle = field(default_factory=Throttle)


WEB_KEY = web.AppKey("storeagent_web", Web)


def ctx(request: web.Request) -> Web:
    return request.app[WEB_KEY]


def session_of(request: web.Request) -> Session | None:
    s = request.get("session")
    return s if isinstance(s, Session) else None


def tr(request: web.Request) -> Translate:
    t: Translate = request["t"]
    return t


def lang_of(request: web.Request) -> str:
    return str(request["lang"])
