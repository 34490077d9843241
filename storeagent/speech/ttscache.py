"""A worker's cache of finished TTS utterances, least recently used out first, bounded in bytes.

A shop's agent says the same sentences to every caller (the greeting, "Anything else?", the answer to the hours of a
day), so a finished utterance is kept and replayed instead of synthesized again: piper costs ~0.1 CPU-s per second
of speech, a replay nothing. Only an utterance synthesized to its end is kept (a cancelled or failed one is not), and
the key is the voice, the sample rate and the exact text, so a replay is the bytes the engine gave.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence

CACHE_ENV = "STOREAGENT_SPEECH_TTS_CACHE_MB"  # the service sets it for its workers from `tts_cache_mb`
DEFAULT_MB = 64
Key = tuple[str, int, str]  # voice, sample rate, text
ENTRY_SHARE = 16  # one utterance may take at most 1/16 of the budget: a long answer does not flush the greetings


class TtsCache:
    def __init__(self, budget_bytes: int) -> None:
        self.budget = max(0, budget_bytes)
        self.used = 0
        self._entries: OrderedDict[Key, tuple[bytes, ...]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key) -> tuple[bytes, ...] | None:
        chunks = self._entries.get(key)
        if chunks is not None:
            self._entries.move_to_end(key)
        return chunks

    def put(self, key: Key, chunks: Sequence[bytes]) -> bool:
        """Keep `chunks` under `key`; False when caching is off or the utterance is too big for a share."""
        size = sum(len(c) for c in chunks)
        if not size or size > self.budget // ENTRY_SHARE:
            return False
        old = self._entries.pop(key, None)
        if old is not None:
            self.used -= sum(len(c) for c in old)
        self._entries[key] = tuple(chunks)
        self.used += size
        while self.used > self.budget:
            _, evicted = self._entries.popitem(last=False)
            self.used -= sum(len(c) for c in evicted)
        return True


def cache_budget(env: Mapping[str, str] | None = None) -> int:
    """Bytes per worker, from CACHE_ENV (MB); a bad value is the default (the service validated what it set)."""
    try:
        mb = int((os.environ if env is None else env).get(CACHE_ENV, str(DEFAULT_MB)))
    except ValueError:
        mb = DEFAULT_MB
    return max(0, mb) * 1024 * 1024
