"""A clause's leading and trailing silence, trimmed as its audio streams (issue 13 item 6: clause gaps <= 150 ms).

TTS voices pad every sentence: Piper's joe voice ends a clause with 150-290 ms of silence and starts the next with
10-70 ms (bench/clause_gaps.py), so the caller heard 200-310 ms between the clauses of one answer although the next
clause's audio was always there in time. Here a clause keeps at most `lead_ms` of silence before its first sound
and `tail_ms` after its last; silence inside a clause (commas, breaths) is untouched. Only quiet runs of at least
`min_run_ms` count (a tone's zero crossings never do). Streaming: sound goes out at once; quiet after the last
sound is held until more sound follows (then sent whole) or the clause ends (then cut to `tail_ms`).
"""

from __future__ import annotations

import numpy as np

QUIET = 300  # |sample| below this (about -40 dBFS) is silence


class ClauseEdges:
    def __init__(self, sample_rate: int, *, lead_ms: int = 20, tail_ms: int = 90, min_run_ms: int = 30) -> None:
        self._lead = sample_rate * lead_ms // 1000 * 2  # bytes
        self._tail = sample_rate * tail_ms // 1000 * 2
        self._min_run = sample_rate * min_run_ms // 1000 * 2
        self._started = False
        self._held = b""  # quiet bytes not sent yet (before the first sound, or after the last)

    def push(self, pcm: bytes) -> bytes:
        """The part of `pcm` (with what was held) to send now."""
        pcm = self._held + pcm[: len(pcm) & ~1]
        loud = np.flatnonzero(np.abs(np.frombuffer(pcm, dtype="<i2").astype(np.int32)) >= QUIET)
        if not len(loud):
            self._held = pcm
            return b""
        first, last = int(loud[0]) * 2, int(loud[-1]) * 2 + 2
        head = 0
        if not self._started:
            self._started = True
            if first >= self._min_run:
                head = first - self._lead  # keep lead_ms of the silence before the first sound
        self._held = pcm[last:]
        return pcm[head:last]

    def end(self) -> bytes:
        """What is left of the clause: its trailing silence, cut to tail_ms when it is a real run."""
        held, self._held = self._held, b""
        if not self._started:
            return b""  # a clause of silence only says nothing
        return held if len(held) < self._min_run else held[: self._tail]
