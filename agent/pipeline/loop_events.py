"""The events one call's main loop serves (agent/pipeline/conversation.py): a caller turn, a keypad digit,
hangup, the time limit, a hand-off, and the wake-up after a reply."""

from __future__ import annotations

from dataclasses import dataclass

from storeagent.agent.pipeline.turn import TurnEnd


@dataclass(frozen=True, slots=True)
class UserTurn:
    text: str
    end: TurnEnd
    final_at: float
    alternatives: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str


@dataclass(frozen=True, slots=True)
class Hangup:
    reason: str


@dataclass(frozen=True, slots=True)
class TimeUp:
    pass


@dataclass(frozen=True, slots=True)
class Handoff:
    """A stage failed beyond its fallbacks: give the call to the shop's dialplan fallback."""

    reason: str
    spoken: bool = False  # the voice still works: say the hand-off line first


@dataclass(frozen=True, slots=True)
class Wake:
    """A reply finished: run the actions it asked for."""


Event = UserTurn | Dtmf | Hangup | TimeUp | Wake | Handoff
