"""Secrets come only from env or mounted files, print as ****, and never reach logs, metrics or /v1/stats."""

from __future__ import annotations

import io
import json
import logging
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest

from storeagent.agent.errors import ConfigError, ProviderError
from storeagent.agent.logs import JsonFormatter
from storeagent.agent.metrics import AgentMetrics
from storeagent.agent.secrets import (
    REDACTED,
    RedactingFilter,
    Secret,
    Secrets,
    install_log_redaction,
    load_secret,
)
from storeagent.agent.stats import CallStats
from storeagent.agent.store.webhook import sign

DG = "dg-0123456789abcdef0123456789abcdef"
OA = "sk-test-ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
EL = "el_9f8e7d6c5b4a39281706f5e4d3c2b1a0"
WH = "whsec_super-secret-signing-key"


@pytest.fixture
def secrets(tmp_path: Path) -> Secrets:
    (tmp_path / "openai").write_text(OA + "\n")  # as `kubectl create secret --from-file` leaves it
    (tmp_path / "webhook").write_text(WH)
    env = {
        "DEEPGRAM_API_KEY": DG,
        "OPENAI_API_KEY_FILE": str(tmp_path / "openai"),
        "ELEVENLABS_API_KEY": EL,
        "STOREAGENT_WEBHOOK_SECRET_FILE": str(tmp_path / "webhook"),
        "UNRELATED": "not-a-secret-value",
    }
    return Secrets.from_env(env)


def test_loads_from_env_and_files(secrets: Secrets) -> None:
    assert secrets.names() == ["DEEPGRAM_API_KEY", "ELEVENLABS_API_KEY", "OPENAI_API_KEY", "STOREAGENT_WEBHOOK_SECRET"]
    assert secrets.get("OPENAI_API_KEY").reveal() == OA  # type: ignore[union-attr]  # trailing newline dropped
    assert secrets.get("STOREAGENT_WEBHOOK_SECRET").reveal() == WH  # type: ignore[union-attr]
    assert load_secret("DEEPGRAM_API_KEY", {}) is None


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"X": "abcdefghij", "X_FILE": "/nonexistent"}, "^X: set either X or X_FILE, not both"),
        ({"X_FILE": "/nonexistent/key"}, "^X_FILE: cannot read '/nonexistent/key'"),
        ({"X": "   "}, "^X: empty value"),
        ({"X": "short"}, "^X: shorter than 8 characters"),
    ],
)
def test_bad_secret_config_names_the_variable(env: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_secret("X", env)


def test_secret_never_prints_its_value() -> None:
    s = Secret(OA, "OPENAI_API_KEY")
    rendered = [str(s), repr(s), f"{s}", f"{s!r}", f"{s:>40}", "%s" % s, format(s), str([s]), str({"k": s})]  # noqa: UP031
    assert all(OA not in r for r in rendered)
    assert str(s) == REDACTED and repr(s) == "Secret(OPENAI_API_KEY=****)"
    with pytest.raises(TypeError):
        json.dumps({"key": s})  # a stats payload carrying a Secret fails loudly instead of leaking
    with pytest.raises(TypeError):
        pickle.dumps(s)
    assert s.reveal() == OA and s == Secret(OA) and s != Secret(DG)


@pytest.fixture
def captured(secrets: Secrets) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger writing JSON lines (the agent's own formatter) through the redaction installed as in production."""
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(JsonFormatter())
    install_log_redaction(secrets, [handler])
    logger = logging.getLogger("test.secrets")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, buf
    logger.removeHandler(handler)


def test_no_key_in_logs(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, buf = captured
    logger.info("connecting with key %s", DG)
    logger.info(f"header Authorization: Bearer {OA}")  # the careless f-string case
    logger.warning("retrying", extra={"detail": f"xi-api-key={EL}"})
    try:
        raise ProviderError("openai", "auth", f"Incorrect API key provided: {OA}", retryable=False)
    except ProviderError:
        logger.exception("provider failed")
    child = logging.getLogger("test.secrets.child")  # propagated records pass the handler's filter too
    child.error("webhook signing with %r", WH)
    out = buf.getvalue()
    for key in (DG, OA, EL, WH):
        assert key not in out
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 5
    assert lines[0]["msg"] == "connecting with key ****"
    assert "Incorrect API key provided: ****" in lines[3]["exc"]


def test_filter_redacts_record_fields_for_any_formatter(secrets: Secrets) -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "key=%s", (DG,), None)
    setattr(record, "extra_field", f"token {WH}")  # noqa: B010
    assert RedactingFilter(secrets).filter(record)
    assert record.getMessage() == "key=****"
    assert getattr(record, "extra_field") == "token ****"  # noqa: B009


def test_no_key_in_metrics_or_stats_payload(secrets: Secrets) -> None:
    metrics = AgentMetrics("sunrise-bakery")
    stats = CallStats("sunrise-bakery")
    err = ProviderError("deepgram", "auth", f"bad key {DG}", retryable=False)
    metrics.provider_error(err.provider, err.kind)  # recorders take labels, never messages
    metrics.webhook_delivery("retry")
    metrics.outbox_pending(3)
    stats.call_started()
    stats.call_ended("message", [])
    exposition = metrics.exposition().decode()
    payload = json.dumps({**stats.snapshot(ready=True, draining=False), "secrets": secrets.names()})
    for key in (DG, OA, EL, WH):
        assert key not in exposition and key not in payload
    assert 'storeagent_provider_errors_total{kind="auth",provider="deepgram",store="sunrise-bakery"} 1.0' in exposition


def test_webhook_signature_uses_the_revealed_value(secrets: Secrets) -> None:
    s = secrets.get("STOREAGENT_WEBHOOK_SECRET")
    assert s is not None
    assert sign(s, b"{}") == sign(WH.encode(), b"{}") != sign(b"other-secret-key", b"{}")
