"""One agent reply: LLM text streamed into clauses, each clause synthesized and sent as soon as it is ready.

The LLM keeps streaming while earlier clauses are synthesized and played (a speaker task per reply), so the
first audio leaves after the first clause, not after the whole reply. Tool calls run between LLM rounds.
Cancelling the reply's task stops LLM and TTS at once; what was sent but not heard is dropped by the caller's
`clear` and by the history's mark tracking.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from storeagent.agent.pipeline.edges import ClauseEdges
from storeagent.agent.pipeline.history import PROGRESS_MS, AgentUtterance, Clause, History
from storeagent.agent.pipeline.text import ClauseSplitter
from storeagent.agent.ports import LLM, AudioLink, CallAction, TextDelta, ToolCall, Tools, TTSSession

log = logging.getLogger(__name__)
MAX_TOOL_ROUNDS = 4


@dataclass(slots=True)
class ReplyTiming:
    """time.monotonic() stamps of one reply; None where the stage never happened."""

    started: float
    llm_first_token: float | None = None
    tts_started: float | None = None
    first_audio: float | None = None
    llm_rounds: int = 0


@dataclass(slots=True)
class ReplyResult:
    utterance: AgentUtterance
    timing: ReplyTiming
    actions: list[CallAction] = field(default_factory=list)


@dataclass(slots=True)
class _ClauseState:
    text: str
    mark: str
    clause: Clause | None = None  # in the history once its first audio is sent
    next_progress: int = PROGRESS_MS
    progress: str | None = None  # a progress mark waiting for the audio after it


class Speaker:
    """Synthesizes queued clauses in order and streams their audio to the link, each followed by a mark.

    Inside a clause, a progress mark goes out every PROGRESS_MS of audio (history.py says why). Each is sent just
    before the audio that follows it, never at the end of what was sent so far: the module counts running dry
    exactly at a mark as a segment's end, not as an underrun, so a progress mark must never be the last thing
    queued while the next TTS chunk is still on its way.
    """

    def __init__(self, link: AudioLink, tts: TTSSession, history: History, utterance: AgentUtterance,
                 mark_prefix: str, on_first_audio: Callable[[float], None], timing: ReplyTiming) -> None:
        self._link, self._tts, self._history, self._u = link, tts, history, utterance
        self._prefix = mark_prefix
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._on_first_audio = on_first_audio
        self._sent_audio = False
        self._timing = timing
        self._n = 0

    def say(self, clause: str) -> None:
        self._queue.put_nowait(clause)

    def close(self) -> None:
        self._queue.put_nowait(None)

    async def run(self) -> None:
        while (clause := await self._queue.get()) is not None:
            st = _ClauseState(clause, f"{self._prefix}.{self._n}")
            self._n += 1
            if self._timing.tts_started is None:
                self._timing.tts_started = time.monotonic()
            edges = ClauseEdges(self._link.fmt.sample_rate)  # the voice's own silence at the clause's ends
            async for pcm in self._tts.synthesize(clause):
                await self._send(st, edges.push(pcm))
            await self._send(st, edges.end())
            if st.clause is not None:
                await self._link.send_mark(st.mark)
                st.clause.sealed = True
        end = getattr(self._tts, "end_answer", None)  # a per-answer TTS stream ends with the answer
        if end is not None:
            await end()

    async def _send(self, st: _ClauseState, pcm: bytes) -> None:
        c = st.clause
        for piece in self._pieces(pcm, c.audio_ms if c else 0, st.next_progress):
            if c is None:
                c = st.clause = self._history.add_clause(self._u, st.text, st.mark)
            if st.progress is not None:
                await self._link.send_mark(st.progress)
                st.progress = None
            if not self._sent_audio:
                self._sent_audio = True
                self._on_first_audio(time.monotonic())
            await self._link.send_audio(piece)
            c.audio_ms += self._ms(len(piece))
            if c.audio_ms >= st.next_progress:
                st.progress = f"{st.mark}+{c.audio_ms}"
                self._history.add_progress(c, st.progress, c.audio_ms)
                st.next_progress = c.audio_ms + PROGRESS_MS

    def _bytes_per_ms(self) -> float:
        return self._link.fmt.sample_rate * 2 / 1000

    def _ms(self, nbytes: int) -> int:
        return round(nbytes / self._bytes_per_ms())

    def _pieces(self, pcm: bytes, at_ms: int, next_progress: int) -> list[bytes]:
        """`pcm` split where progress marks fall (whole samples); one piece when none falls inside it."""
        out: list[bytes] = []
        bpm = self._bytes_per_ms()
        while pcm:
            cut = int((next_progress - at_ms) * bpm) & ~1
            if cut <= 0 or cut >= len(pcm):
                out.append(pcm)
                break
            out.append(pcm[:cut])
            pcm = pcm[cut:]
            at_ms = next_progress
            next_progress += PROGRESS_MS
        return [p for p in out if p]


async def run_reply(
    *,
    history: History,
    utterance: AgentUtterance,
    timing: ReplyTiming | None = None,
    llm: LLM,
    tts: TTSSession,
    tools: Tools,
    link: AudioLink,
    mark_prefix: str,
    on_first_audio: Callable[[float], None],
    on_tool: Callable[[str, str], None] | None = None,
    prefix_text: str | None = None,
) -> ReplyResult:
    """Produce and speak one reply to the conversation so far into `utterance` (already in the history).

    Cancel the task to stop it at once; the utterance keeps the clauses that were sent.
    """
    timing = timing or ReplyTiming(started=time.monotonic())
    u = utterance

    def first_audio(t: float) -> None:
        if timing.first_audio is None:
            timing.first_audio = t
        on_first_audio(t)

    speaker = Speaker(link, tts, history, u, mark_prefix, first_audio, timing)
    result = ReplyResult(u, timing)
    async with asyncio.TaskGroup() as tg:
        speaking = tg.create_task(speaker.run())
        try:
            if prefix_text:
                speaker.say(prefix_text)
            for _ in range(MAX_TOOL_ROUNDS):
                timing.llm_rounds += 1
                calls = await _stream_round(history, llm, tools, speaker, timing)
                if not calls:
                    break
                results: list[tuple[str, str]] = []
                for call in calls:
                    r = await tools.call(call.name, call.arguments)
                    if on_tool:
                        on_tool(call.name, "action" if r.action else "ok")
                    results.append((call.id, r.content))
                    if r.action is not None:
                        result.actions.append(r.action)
                history.add_tool_exchange(calls, results)
        finally:
            speaker.close()
        await speaking
    return result


async def _stream_round(history: History, llm: LLM, tools: Tools, speaker: Speaker,
                        timing: ReplyTiming) -> list[ToolCall]:
    splitter = ClauseSplitter()
    calls: list[ToolCall] = []
    async for chunk in llm.stream(history.messages(), tools.specs()):
        if timing.llm_first_token is None:
            timing.llm_first_token = time.monotonic()
        if isinstance(chunk, TextDelta):
            for clause in splitter.push(chunk.text):
                speaker.say(clause)
        else:
            calls.append(chunk)
    for clause in splitter.flush():
        speaker.say(clause)
    return calls
