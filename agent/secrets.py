"""Provider keys and the webhook signing secret: read only from the environment or mounted files, never logged.

Each secret `X` comes from the variable `X` or from the file named by `X_FILE` (the operator mounts the shop's
Kubernetes Secret as files; env works for `make demo` and local runs). Values are wrapped in `Secret`, whose
str/repr/format is `****`, and `json.dumps` refuses it, so a key cannot slip into a log line, a metric or the
`/v1/stats` payload by accident. `RedactingFilter` is the second net: it scrubs every loaded value from log
records, including exception text, in case a library echoes a key back (e.g. in an auth error message).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from storeagent.agent.errors import ConfigError

REDACTED = "****"
MIN_SECRET_LEN = 8  # shorter values cannot be scrubbed from logs without mangling ordinary words

# Everything the agent may need; a missing one just disables that provider (the offline ones need no key).
PROVIDER_KEYS = ("DEEPGRAM_API_KEY", "OPENAI_API_KEY", "ELEVENLABS_API_KEY")
WEBHOOK_SECRET = "STOREAGENT_WEBHOOK_SECRET"  # HMAC key for X-StoreAgent-Signature (docs/webhooks.md)
KNOWN_SECRETS = (*PROVIDER_KEYS, WEBHOOK_SECRET)


class Secret:
    """A secret string; only `reveal()` gives the value, everything else prints `****`."""

    __slots__ = ("_name", "_value")

    def __init__(self, value: str, name: str = "secret") -> None:
        self._value = value
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def reveal(self) -> str:
        """The real value: call it only where the key is handed to an SDK or used for signing."""
        return self._value

    def __str__(self) -> str:
        return REDACTED

    def __repr__(self) -> str:
        return f"Secret({self._name}={REDACTED})"

    def __format__(self, spec: str) -> str:
        return REDACTED

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would copy the value somewhere it is not tracked; nothing in the agent needs it.
        raise TypeError("Secret values cannot be pickled")


def load_secret(name: str, env: Mapping[str, str] | None = None) -> Secret | None:
    """`name` from the environment, or from the file named by `name_FILE`; None when neither is set.

    Both set is an error (which one wins would be a guess). A file's trailing newline is dropped, since
    `kubectl create secret --from-file` and editors add one.
    """
    e = os.environ if env is None else env
    direct = e.get(name)
    file_var = f"{name}_FILE"
    path = e.get(file_var)
    if direct is not None and path is not None:
        raise ConfigError(f"{name}: set either {name} or {file_var}, not both")
    if path is not None:
        try:
            value = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as err:
            raise ConfigError(f"{file_var}: cannot read {path!r}: {err.strerror}") from None
        source = file_var
    elif direct is not None:
        value, source = direct, name
    else:
        return None
    if not value.strip():
        raise ConfigError(f"{source}: empty value")
    if len(value) < MIN_SECRET_LEN:
        raise ConfigError(f"{source}: shorter than {MIN_SECRET_LEN} characters, not a real key")
    return Secret(value, name)


class Secrets:
    """The secrets this process loaded; the one place that knows which strings must never be printed."""

    def __init__(self, secrets: Iterable[Secret] = ()) -> None:
        self._by_name: dict[str, Secret] = {s.name: s for s in secrets}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, names: Iterable[str] = KNOWN_SECRETS) -> Secrets:
        loaded = (load_secret(n, env) for n in names)
        return cls(s for s in loaded if s is not None)

    def get(self, name: str) -> Secret | None:
        return self._by_name.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Secret]:
        return iter(self._by_name.values())

    def names(self) -> list[str]:
        """Names of the loaded secrets (safe to log or report; the values are not)."""
        return sorted(self._by_name)

    def redact(self, text: str) -> str:
        # Longest first, so a key that contains another key is scrubbed whole.
        for value in sorted((s.reveal() for s in self), key=len, reverse=True):
            if value in text:
                text = text.replace(value, REDACTED)
        return text


class RedactingFilter(logging.Filter):
    """Scrubs loaded secret values from log records (message, args, exception text, extra string fields).

    Attach it to handlers (`install_log_redaction`): a filter on a logger does not see records propagated
    from its children, a handler filter sees everything it writes.
    """

    def __init__(self, secrets: Secrets) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        s = self._secrets
        message = record.getMessage()
        clean = s.redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = s.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = s.redact(record.stack_info)
        for key, value in list(vars(record).items()):
            if isinstance(value, str) and key not in ("msg", "exc_text", "stack_info"):
                redacted = s.redact(value)
                if redacted != value:
                    setattr(record, key, redacted)
        return True


class RedactingFormatter(logging.Formatter):
    """Wraps a handler's formatter and scrubs its output: covers formatters that render the traceback from
    `exc_info` themselves (ignoring the filter's redacted `exc_text`), and anything else they add."""

    def __init__(self, inner: logging.Formatter | None, secrets: Secrets) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()
        self._secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        return self._secrets.redact(self.inner.format(record))


def install_log_redaction(secrets: Secrets, handlers: Iterable[logging.Handler] | None = None) -> RedactingFilter:
    """Redact on the given handlers (default: the root logger's): a RedactingFilter, and the formatter wrapped
    in a RedactingFormatter. Call after logging is set up (handlers added later are not covered)."""
    flt = RedactingFilter(secrets)
    for h in list(logging.getLogger().handlers if handlers is None else handlers):
        h.addFilter(flt)
        if not isinstance(h.formatter, RedactingFormatter):
            h.setFormatter(RedactingFormatter(h.formatter, secrets))
    return flt
