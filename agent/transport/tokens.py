"""Per-call audio stream tokens: minted by the agent, carried to FreeSWITCH in `uuid_storeagent ... start`,
presented by mod_storeagent when it opens the audio websocket.

Format (ASCII, no spaces, safe in an ESL api argument and an HTTP header):

    sa1.<call uuid>.<expiry, unix ms>.<nonce, base64url>.<HMAC-SHA256 of the first four fields, base64url>

The uuid is in clear so a token presented for another call is told apart ("wrong_call") from a forged one.
The key is per process (random) unless settings provide one; a token is good for one connection and a short
time, so no long-lived secret ever reaches FreeSWITCH. Verification never short-circuits on secret data:
signatures are compared with `hmac.compare_digest`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from typing import Literal

TokenReason = Literal["missing", "malformed", "expired", "bad_signature", "reused", "wrong_call"]

_VERSION = "sa1"
_UUID_RE = re.compile(r"^[A-Za-z0-9-]{1,64}$")  # FreeSWITCH uuids are 36-char hex with dashes
_B64_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_NONCE_BYTES = 12
_SIG_B64_LEN = 43  # 32 bytes, base64url without padding
MAX_TOKEN_CHARS = 256  # anything longer is malformed without parsing


class TokenError(Exception):
    """A stream token was refused; `reason` is a low-cardinality label (metric and log)."""

    def __init__(self, reason: TokenReason, detail: str = "") -> None:
        super().__init__(f"stream token refused: {reason}" + (f" ({detail})" if detail else ""))
        self.reason: TokenReason = reason


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class StreamTokens:
    """Mints and verifies single-use, short-lived per-call tokens.

    `ttl` (seconds, default 30): the module connects within milliseconds of the start command; 30 s covers a
    slow FreeSWITCH under load while keeping a leaked token nearly worthless. `clock` returns unix seconds
    (injectable for tests).
    """

    def __init__(
        self,
        key: bytes | None = None,
        *,
        ttl: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if key is not None and len(key) < 16:
            raise ValueError("key: at least 16 bytes are needed for HMAC-SHA256")
        if not ttl > 0:
            raise ValueError(f"ttl: {ttl!r} must be > 0 seconds")
        self._key = key if key is not None else secrets.token_bytes(32)
        self._ttl = ttl
        self._clock = clock
        self._used: dict[str, int] = {}  # signature -> expiry ms; expired ones are refused anyway

    def mint(self, uuid: str) -> str:
        if not _UUID_RE.match(uuid):
            raise ValueError(f"uuid: {uuid!r} is not a call uuid (1-64 of [A-Za-z0-9-])")
        expiry = int((self._clock() + self._ttl) * 1000)
        payload = f"{_VERSION}.{uuid}.{expiry}.{_b64(secrets.token_bytes(_NONCE_BYTES))}"
        return f"{payload}.{self._sign(payload)}"

    def check(self, uuid: str, token: str | None) -> TokenReason | None:
        """None if the token admits this call (and consumes it), else the reason it is refused."""
        try:
            self.verify(uuid, token)
        except TokenError as e:
            return e.reason
        return None

    def verify(self, uuid: str, token: str | None) -> None:
        """Accept (and consume) the token for `uuid`, or raise TokenError naming why not."""
        if not token:
            raise TokenError("missing")
        if len(token) > MAX_TOKEN_CHARS or not token.isascii():
            raise TokenError("malformed", "too long or not ASCII")
        parts = token.split(".")
        if len(parts) != 5 or parts[0] != _VERSION:
            raise TokenError("malformed", "expected sa1.<uuid>.<expiry>.<nonce>.<sig>")
        _, tok_uuid, expiry_s, nonce, sig = parts
        if (
            not _UUID_RE.match(tok_uuid)
            or not expiry_s.isdigit()
            or not _B64_RE.match(nonce)
            or len(sig) != _SIG_B64_LEN
            or not _B64_RE.match(sig)
        ):
            raise TokenError("malformed", "bad field")
        expected = self._sign(token.rsplit(".", 1)[0])
        if not hmac.compare_digest(expected.encode("ascii"), sig.encode("ascii")):
            raise TokenError("bad_signature")
        if not hmac.compare_digest(tok_uuid.encode("ascii"), uuid.encode("utf-8", "replace")):
            raise TokenError("wrong_call", f"token is for {tok_uuid}")
        now_ms = int(self._clock() * 1000)
        expiry = int(expiry_s)
        if expiry <= now_ms:
            raise TokenError("expired", f"{(now_ms - expiry) / 1000:.1f} s ago")
        self._forget_expired(now_ms)
        if sig in self._used:
            raise TokenError("reused")
        self._used[sig] = expiry

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())

    def _forget_expired(self, now_ms: int) -> None:
        # Expired tokens are refused by their expiry, so the used-set only needs live ones: it stays as small
        # as the number of calls started in the last `ttl` seconds.
        if len(self._used) > 64:
            for sig in [s for s, exp in self._used.items() if exp <= now_ms]:
                del self._used[sig]
