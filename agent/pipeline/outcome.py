"""What one call's conversation produced: its outcome, transcript and per-turn latencies (the call record's source,
agent/wiring.py). Kept apart from conversation.py, which builds it."""

from __future__ import annotations

from dataclasses import dataclass, field

from storeagent.agent.pipeline.history import TranscriptLine


@dataclass(frozen=True, slots=True)
class TurnLatency:
    stt_final: float | None
    llm_first_token: float | None
    tts_first_audio: float | None
    voice_to_voice: float | None
    decision_to_audio: float | None  # first audio - end-of-turn decision (excludes the end-of-turn silence)


@dataclass(frozen=True, slots=True)
class TransferAttempt:
    to: str  # the staff number dialed
    answered: bool
    cause: str  # FreeSWITCH's originate_disposition ("call accepted", NO_ANSWER, USER_BUSY, ...)


@dataclass(slots=True)
class ConversationOutcome:
    outcome: str = "answered"  # answered | message | transferred | abandoned | failed
    reason: str = ""
    handoff: bool = False  # True: the agent gave up; the session lets FreeSWITCH run the shop's fallback
    transcript: list[TranscriptLine] = field(default_factory=list)
    latencies: list[TurnLatency] = field(default_factory=list)
    barge_ins: int = 0
    false_interruptions: int = 0  # sounds under the agent's speech that paused it and were resumed
    transfers: list[TransferAttempt] = field(default_factory=list)
    transferred_to: str | None = None  # the staff number that answered
