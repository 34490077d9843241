"""Owner credentials: invitation links, passwords (scrypt), sessions that expire, CSRF tokens.

Secrets the database holds are hashes only: an invitation token or a session id read from a backup cannot be
replayed (sha256 of 32 random bytes cannot be inverted); passwords are scrypt (n=2^14, r=8, p=1, 16-byte salt,
the parameters in the stored string so they can be raised later). Every comparison is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from storeagent.web.db import Database

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
PASSWORD_MIN = 10
PASSWORD_MAX = 256  # scrypt's cost does not grow with the length, but a 1 MB form field is not a password
USERNAME_RE = r"^[A-Za-z0-9._@+-]{3,64}$"


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    dk = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(dk)}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, dk = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), dklen=32)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, _unb64(dk))


# A fixed hash to check against when the user does not exist, so a wrong user name costs the same as a wrong
# password (no user enumeration by timing).
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Session:
    owner_id: str
    shop: str
    csrf: str
    expires_at: float


class Auth:
    """Invitations, sign-in and sessions on the web database. `clock`: unix seconds, injectable for tests."""

    def __init__(self, db: Database, *, session_ttl_s: float, invite_ttl_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.session_ttl_s = session_ttl_s
        self.invite_ttl_s = invite_ttl_s
        self._clock = clock

    def now(self) -> float:
        return float(self._clock())

    async def invite(self, shop: str) -> str:
        """A one-time invitation token for `shop` (put it in a link); only its hash is stored."""
        token = secrets.token_urlsafe(32)
        await self.db.execute("INSERT INTO invites (token_hash, shop, expires_at) VALUES (?, ?, ?)",
                              token_hash(token), shop, self.now() + self.invite_ttl_s)
        return token

    async def invite_shop(self, token: str) -> str | None:
        """The shop a live, unused invitation is for, or None."""
        rows = await self.db.fetch("SELECT shop FROM invites WHERE token_hash = ? AND used_at IS NULL "
                                   "AND expires_at > ?", token_hash(token), self.now())
        return str(rows[0]["shop"]) if rows else None

    async def accept_invite(self, token: str, username: str, password: str) -> str | None:
        """Spend the invitation and create (or reset the password of) the shop's owner; returns the owner id."""
        shop = await self.invite_shop(token)
        if shop is None:
            return None
        # The UPDATE is the single-use gate: of two concurrent submissions only one changes the row.
        spent = await self.db.execute("UPDATE invites SET used_at = ? WHERE token_hash = ? AND used_at IS NULL",
                                      self.now(), token_hash(token))
        if spent != 1:
            return None
        pw = hash_password(password)
        rows = await self.db.fetch("SELECT id FROM owners WHERE shop = ? AND username = ?", shop, username)
        if rows:
            owner_id = str(rows[0]["id"])
            await self.db.execute("UPDATE owners SET password_hash = ? WHERE id = ?", pw, owner_id)
            await self.db.execute("DELETE FROM sessions WHERE owner_id = ?", owner_id)  # a reset signs out
        else:
            owner_id = secrets.token_hex(12)
            await self.db.execute("INSERT INTO owners (id, shop, username, password_hash, created_at) "
                                  "VALUES (?, ?, ?, ?, ?)", owner_id, shop, username, pw, self.now())
        return owner_id

    async def sign_in(self, shop: str, username: str, password: str) -> str | None:
        rows = await self.db.fetch("SELECT id, password_hash FROM owners WHERE shop = ? AND username = ?",
                                   shop, username)
        stored = str(rows[0]["password_hash"]) if rows else _DUMMY_HASH
        ok = check_password(password, stored)
        return str(rows[0]["id"]) if rows and ok else None

    async def start_session(self, owner_id: str) -> str:
        rows = await self.db.fetch("SELECT shop FROM owners WHERE id = ?", owner_id)
        if not rows:
            raise ValueError(f"owner {owner_id!r} does not exist")
        sid = secrets.token_urlsafe(32)
        now = self.now()
        await self.db.execute("DELETE FROM sessions WHERE expires_at <= ?", now)
        await self.db.execute("INSERT INTO sessions (id_hash, owner_id, shop, csrf, created_at, expires_at) "
                              "VALUES (?, ?, ?, ?, ?, ?)", token_hash(sid), owner_id, str(rows[0]["shop"]),
                              secrets.token_urlsafe(24), now, now + self.session_ttl_s)
        return sid

    async def session(self, sid: str | None) -> Session | None:
        if not sid or len(sid) > 100:
            return None
        rows = await self.db.fetch("SELECT owner_id, shop, csrf, expires_at FROM sessions WHERE id_hash = ? "
                                   "AND expires_at > ?", token_hash(sid), self.now())
        if not rows:
            return None
        r = rows[0]
        return Session(str(r["owner_id"]), str(r["shop"]), str(r["csrf"]), float(r["expires_at"]))

    async def end_session(self, sid: str) -> None:
        await self.db.execute("DELETE FROM sessions WHERE id_hash = ?", token_hash(sid))


def csrf_ok(session: Session, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(session.csrf.encode(), presented.encode("utf-8", "replace"))
