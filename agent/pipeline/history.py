"""Conversation history that keeps only what the caller actually heard.

Agent speech is recorded clause by clause; each clause becomes "heard" when the far end reports its mark
played, and is dropped when the mark is cleared (barge-in) or never reported. The LLM sees only heard clauses,
so after an interruption it knows exactly where the caller stopped listening.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from storeagent.agent.ports import Message, ToolCall


class ClauseState(Enum):
    QUEUED = "queued"
    PLAYED = "played"
    CLEARED = "cleared"


@dataclass(slots=True)
class Clause:
    text: str
    mark: str
    state: ClauseState = ClauseState.QUEUED


@dataclass(slots=True)
class AgentUtterance:
    clauses: list[Clause] = field(default_factory=list)
    interrupted: bool = False

    def heard_text(self) -> str:
        return " ".join(c.text for c in self.clauses if c.state is ClauseState.PLAYED)

    def full_text(self) -> str:
        return " ".join(c.text for c in self.clauses)

    @property
    def pending(self) -> bool:
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
        self._marks: dict[str, Clause] = {}

    def add_user(self, text: str) -> None:
        self._items.append(Message(role="user", content=text))

    def add_tool_exchange(self, calls: list[ToolCall], results: list[tuple[str, str]]) -> None:
        self._items.append(Message(role="assistant", content="", tool_calls=tuple(calls)))
        for call_id, content in results:
            self._items.append(Message(role="tool", content=content, tool_call_id=call_id))

    def start_utterance(self) -> AgentUtterance:
        u = AgentUtterance()
        self._items.append(u)
        return u

    def add_clause(self, u: AgentUtterance, text: str, mark: str) -> Clause:
        c = Clause(text, mark)
        u.clauses.append(c)
        self._marks[mark] = c
        return c

    def on_mark(self, name: str, event: str) -> Clause | None:
        c = self._marks.pop(name, None)
        if c is not None:
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
