"""Sign-in throttling: after `limit` failed attempts for one shop user (or from one client address) within
`window_s`, further attempts are refused for the rest of the window without checking the password, so a
password cannot be guessed at scrypt speed. In memory, per process (a restart forgets; several replicas each
count their own) — enough against a script, not a substitute for an identity provider's lockout."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class Throttle:
    def __init__(self, limit: int = 10, window_s: float = 900.0, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 10000) -> None:
        self.limit, self.window_s, self._clock, self.max_keys = limit, window_s, clock, max_keys
        self._fails: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        q = self._fails.get(key)
        if q is None:
            return deque()
        cut = self._clock() - self.window_s
        while q and q[0] <= cut:
            q.popleft()
        if not q:
            del self._fails[key]
        return q

    def blocked(self, *keys: str) -> bool:
        return any(len(self._recent(k)) >= self.limit for k in keys)

    def failed(self, *keys: str) -> None:
        if len(self._fails) >= self.max_keys:  # bounded memory under a spray of names
            for k in list(self._fails)[: self.max_keys // 10]:
                del self._fails[k]
        now = self._clock()
        for k in keys:
            self._fails.setdefault(k, deque()).append(now)

    def succeeded(self, *keys: str) -> None:
        for k in keys:
            self._fails.pop(k, None)
