"""Conversation history that keeps only what the caller actually heard.

Agent speech is recorded clause by clause; each clause becomes "heard" when the far end reports its mark
played. The LLM sees only heard speech, so after an interruption it knows where the caller stopped listening.

A clause cut off by a barge-in was partly heard. Inside a clause the speaker also sends progress marks every
PROGRESS_MS of audio (`<mark>+<ms>`), so the far end's reports say how much of the clause's audio played, to
within PROGRESS_MS, on the playout's own clock. That played share of the clause's audio is mapped onto its
text by character position, keeping only the words that end within it: speech time is close to proportional
to characters within one clause of one voice, and rounding down never claims a word the caller did not hear.
Text without spaces (no word boundaries to keep) is cut by character.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

from storeagent.agent.ports import Message, ToolCall


class ClauseState(Enum):
    QUEUED = "queued"
    PLAYED = "played"
    CLEARED = "cleared"


PROGRESS_MS = 300  # audio between progress marks inside a clause: the resolution of a cut-off clause's record
# Speech rate assumed for a clause cut off before all of its audio existed (synthesis still running):
# ~14 characters a second, typical of the voices used.
MS_PER_CHAR_ESTIMATE = 70


@dataclass(slots=True)
class Clause:
    text: str
    mark: str
    state: ClauseState = ClauseState.QUEUED
    sealed: bool = False  # all of its audio was sent and its final mark after it
    audio_ms: int = 0  # audio sent so far (all of it once sealed)
    played_ms: int = 0  # audio the far end reported played, from progress marks

    def heard(self) -> str:
        if self.state is ClauseState.PLAYED:
            return self.text
        if self.played_ms <= 0:
            return ""
        total = self.audio_ms if self.sealed else max(self.audio_ms, len(self.text) * MS_PER_CHAR_ESTIMATE)
        return spoken_prefix(self.text, self.played_ms / total) if total > 0 else ""


def spoken_prefix(text: str, fraction: float) -> str:
    """The part of `text` spoken in the first `fraction` of its audio: whole words ending within it."""
    if fraction >= 1:
        return text
    budget = fraction * len(text)
    if " " not in text.strip():
        return text[: math.floor(budget)]
    kept, end = [], 0
    for word in text.split():
        end = text.index(word, end) + len(word)
        if end > budget:
            break
        kept.append(word)
    return " ".join(kept)


@dataclass(slots=True)
class AgentUtterance:
    clauses: list[Clause] = field(default_factory=list)
    interrupted: bool = False

    def heard_text(self) -> str:
        return " ".join(h for c in self.clauses if (h := c.heard()))

    def full_text(self) -> str:
        return " ".join(c.text for c in self.clauses)

    @property
    def pending(self) -> bool:
        """Audio of ours is queued at the far end and its final mark has not come back."""
        return any(c.state is ClauseState.QUEUED and c.sealed for c in self.clauses)

    @property
    def unfinished(self) -> bool:
        """Some clause has not played to its end (queued, or cut off while still being synthesized)."""
        return any(c.state is ClauseState.QUEUED for c in self.clauses)


@dataclass(slots=True)
class TranscriptLine:
    role: str  # "caller" | "agent"
    text: str
    heard: str | None = None  # for agent lines: what the caller heard
    at: float = 0.0


class History:
    def __init__(self, system_prompt: str) -> None:
        self._system = system_prompt
        self._items: list[Message | AgentUtterance] = []
        self._marks: dict[str, tuple[Clause, int | None]] = {}  # mark -> (clause, progress ms; None: final)

    def add_user(self, text: str, alternatives: tuple[str, ...] = ()) -> None:
        self._items.append(Message(role="user", content=text, alternatives=alternatives))

    def add_tool_exchange(self, calls: list[ToolCall], results: list[tuple[str, str]]) -> None:
        self._items.append(Message(role="assistant", content="", tool_calls=tuple(calls)))
        for call_id, content in results:
            self._items.append(Message(role="tool", content=content, tool_call_id=call_id))

    def start_utterance(self) -> AgentUtterance:
        u = AgentUtterance()
        self._items.append(u)
        return u

    def add_clause(self, u: AgentUtterance, text: str, mark: str) -> Clause:
        """A clause whose audio starts now; `seal` it once all of its audio and its final mark went out."""
        c = Clause(text, mark)
        u.clauses.append(c)
        self._marks[mark] = (c, None)
        return c

    def add_progress(self, c: Clause, mark: str, offset_ms: int) -> None:
        self._marks[mark] = (c, offset_ms)

    def on_mark(self, name: str, event: str) -> Clause | None:
        found = self._marks.pop(name, None)
        if found is None:
            return None
        c, offset = found
        if offset is not None:
            if event == "played":
                c.played_ms = max(c.played_ms, offset)
        else:
            c.state = ClauseState.PLAYED if event == "played" else ClauseState.CLEARED
        return c

    def messages(self) -> list[Message]:
        out = [Message(role="system", content=self._system)]
        for item in self._items:
            if isinstance(item, Message):
                out.append(item)
                continue
            heard = item.heard_text()
            if heard:
                suffix = " [the caller interrupted here]" if item.interrupted else ""
                out.append(Message(role="assistant", content=heard + suffix))
        return out

    def utterances(self) -> list[AgentUtterance]:
        return [i for i in self._items if isinstance(i, AgentUtterance)]
