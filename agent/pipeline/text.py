"""Streaming clause splitting: speech starts on the first clause of a reply, not after the whole reply."""

from __future__ import annotations

import re

# A clause ends at sentence punctuation, or at a comma/semicolon/colon once it is long enough to be worth
# synthesizing on its own (very short first clauses sound choppy and save little).
_SENTENCE_END = re.compile(r"[.!?。！？]+[\"')\]]*(?=\s|$)")
_SOFT_END = re.compile(r"[,;:，、]+(?=\s|$)")
MIN_SOFT_CLAUSE = 24  # characters
MAX_CLAUSE = 160  # characters: a run-on reply is cut at a space so TTS can start


class ClauseSplitter:
    def __init__(self) -> None:
        self._buf = ""

    def push(self, text: str) -> list[str]:
        """Add streamed text; return the clauses that are complete."""
        self._buf += text
        out: list[str] = []
        while True:
            cut = self._find_cut()
            if cut is None:
                break
            clause, self._buf = self._buf[:cut].strip(), self._buf[cut:].lstrip()
            if clause:
                out.append(clause)
        return out

    def flush(self) -> list[str]:
        """The reply ended: whatever is left is the last clause."""
        rest, self._buf = self._buf.strip(), ""
        return [rest] if rest else []

    def _find_cut(self) -> int | None:
        m = _SENTENCE_END.search(self._buf)
        if m and self._buf[m.end() :].startswith((" ", "\n")):
            return m.end()
        for m in _SOFT_END.finditer(self._buf):
            if m.end() >= MIN_SOFT_CLAUSE and self._buf[m.end() :].startswith((" ", "\n")):
                return m.end()
        if len(self._buf) > MAX_CLAUSE:
            space = self._buf.rfind(" ", 0, MAX_CLAUSE)
            return space if space > 0 else MAX_CLAUSE
        return None
