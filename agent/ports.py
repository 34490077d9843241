"""Ports: the narrow interfaces between the call pipeline and everything that does I/O (DESIGN principle 3).

The pipeline (`storeagent.agent.pipeline`) depends only on this module; transports (ESL, audio websocket,
loopback) and providers (offline, scripted, cloud) implement it. All audio here is signed 16-bit little-endian
mono PCM ("L16") at the call's sample rate.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

SAMPLE_WIDTH = 2  # bytes per L16 sample
FRAME_MS = 20  # uplink frame duration (the module and the loopback send exactly this)


@dataclass(frozen=True, slots=True)
class AudioFormat:
    sample_rate: int  # 8000 or 16000 on a phone call

    @property
    def frame_bytes(self) -> int:
        """Bytes in one 20 ms frame."""
        return self.sample_rate * SAMPLE_WIDTH * FRAME_MS // 1000

    def seconds(self, nbytes: int) -> float:
        return nbytes / (self.sample_rate * SAMPLE_WIDTH)


# ---------------------------------------------------------------------------------------------- audio link
@dataclass(frozen=True, slots=True)
class AudioFrame:
    """20 ms of caller audio; `received` is time.monotonic() when the transport got it."""

    pcm: bytes
    received: float


@dataclass(frozen=True, slots=True)
class MarkReport:
    """The far end passed ("played") or dropped ("cleared") a mark the agent queued."""

    name: str
    event: Literal["played", "cleared"]


@dataclass(frozen=True, slots=True)
class LinkStats:
    """Optional playout statistics from the far end (buffered ms, underruns since start)."""

    buffered_ms: float
    underruns: int


UplinkItem = AudioFrame | MarkReport | LinkStats


class AudioLink(Protocol):
    """One call's two-way audio (the audio websocket, or an in-process loopback)."""

    @property
    def fmt(self) -> AudioFormat: ...

    def uplink(self) -> AsyncIterator[UplinkItem]:
        """Caller audio and playout reports in arrival order; ends when the far end goes away."""
        ...

    async def send_audio(self, pcm: bytes) -> None:
        """Queue agent speech (any length; the far end buffers and paces it)."""

    async def send_mark(self, name: str) -> None:
        """Queue a mark after the audio sent so far; reported back once played or cleared."""

    async def send_clear(self) -> None:
        """Drop all queued speech now (barge-in); also ends a pause. Must not wait behind queued audio."""

    async def send_pause(self) -> None:
        """Hold playout now (a possible barge-in): queued speech and marks are kept. Must not wait behind audio."""

    async def send_resume(self) -> None:
        """Continue a paused playout from the exact sample where it stopped (a false interruption)."""

    async def close(self) -> None: ...


# -------------------------------------------------------------------------------------------- call control
@dataclass(frozen=True, slots=True)
class ChannelEvent:
    """A FreeSWITCH event about this call: name is Event-Name (or the CUSTOM Event-Subclass)."""

    name: str
    headers: Mapping[str, str]
    body: str | None = None


@dataclass(frozen=True, slots=True)
class TransferResult:
    """How a bridge to staff ended, as FreeSWITCH reported it."""

    answered: bool  # the staff leg answered (CHANNEL_BRIDGE, or originate_disposition "call accepted")
    cause: str  # originate_disposition ("call accepted", NO_ANSWER, USER_BUSY, INVALID_GATEWAY, ...) or why unknown
    caller_gone: bool = False  # the caller hung up before the staff answered


class CallControl(Protocol):
    """Controls one call's channel (FreeSWITCH over outbound ESL, or the loopback)."""

    @property
    def uuid(self) -> str: ...

    @property
    def channel(self) -> Mapping[str, str]:
        """Channel data from `connect` (URL-decoded), e.g. Caller-Caller-ID-Number, variable_storeagent_store."""
        ...

    async def answer(self) -> None: ...

    async def execute(self, app: str, arg: str = "", *, wait: bool = True) -> ChannelEvent | None:
        """sendmsg execute; with wait, returns its CHANNEL_EXECUTE_COMPLETE (which carries the channel's variables,
        e.g. `variable_originate_disposition` after a bridge); without wait, None."""

    async def api(self, command: str) -> str:
        """Run an API command (e.g. `uuid_storeagent <uuid> start ...`) and return its reply body."""
        ...

    async def hangup(self, cause: str = "NORMAL_CLEARING") -> None: ...

    def events(self) -> AsyncIterator[ChannelEvent]:
        """DTMF, CHANNEL_HANGUP, storeagent::* and other events of this call; ends on disconnect."""
        ...


# --------------------------------------------------------------------------------------------------- STT
@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    is_final: bool
    confidence: float | None = None
    audio_end_at: float | None = None  # time.monotonic() we sent the audio this result ends at (None: unknown)
    # A final's other readings, most likely first (Whisper's beam n-best): what else the caller may have said
    alternatives: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The provider heard speech begin (usable as an early barge-in signal)."""


@dataclass(frozen=True, slots=True)
class UtteranceEnd:
    """The provider decided the caller's utterance ended."""


STTEvent = Transcript | SpeechStarted | UtteranceEnd


class STTStream(Protocol):
    async def send(self, pcm: bytes) -> None: ...

    async def finalize(self) -> None:
        """The turn detector says the caller finished: emit a final Transcript for what was heard."""

    def events(self) -> AsyncIterator[STTEvent]: ...

    async def aclose(self) -> None: ...


class STT(Protocol):
    name: str

    async def open(self, fmt: AudioFormat, language: str) -> STTStream: ...


# --------------------------------------------------------------------------------------------------- LLM
@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text exactly as the model produced it


@dataclass(frozen=True, slots=True)
class Message:
    role: Literal["system", "user", "assistant", "tool"]
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    # user turns: the recognizer's other readings of `content` (a model may try them when `content` makes no sense)
    alternatives: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str
    parameters: Mapping[str, Any] = field(default_factory=dict)  # JSON Schema of the arguments


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


LLMChunk = TextDelta | ToolCall  # tool calls are delivered whole, after their argument fragments are joined


class LLM(Protocol):
    name: str

    def stream(self, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> AsyncIterator[LLMChunk]: ...


# --------------------------------------------------------------------------------------------------- TTS
class TTSSession(Protocol):
    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        """Speech for one clause as L16 at the session's rate, streamed as it is produced."""
        ...

    async def aclose(self) -> None: ...


class TTS(Protocol):
    name: str

    async def open(self, fmt: AudioFormat, language: str) -> TTSSession: ...


@dataclass(frozen=True, slots=True)
class ProviderSet:
    """The three providers one shop's calls use (each may be a fallback chain)."""

    stt: STT
    llm: LLM
    tts: TTS


# ------------------------------------------------------------------------------------------------- tools
@dataclass(frozen=True, slots=True)
class Transfer:
    destination: str  # E.164 number already checked against the shop's staff numbers


@dataclass(frozen=True, slots=True)
class EndCall:
    reason: str = "caller_done"


CallAction = Transfer | EndCall


@dataclass(frozen=True, slots=True)
class ToolResult:
    content: str  # what the model reads back
    action: CallAction | None = None  # what the call must do after speaking the reply


class Tools(Protocol):
    def specs(self) -> Sequence[ToolSpec]: ...

    async def call(self, name: str, arguments: str) -> ToolResult:
        """Validate arguments and run the tool; a bad argument is a ToolResult saying so, never a raise."""
        ...


# ----------------------------------------------------------------------------------------------- metrics
class CallMetrics(Protocol):
    """Named recorders the pipeline calls; implemented over prometheus-client in storeagent.agent.metrics."""

    def turn_latency(self, stage: str, seconds: float) -> None: ...

    def barge_in_stop(self, seconds: float) -> None: ...

    def provider_error(self, provider: str, kind: str) -> None: ...

    def provider_fallback(self, stage: str) -> None: ...

    def underruns(self, count: int) -> None: ...
