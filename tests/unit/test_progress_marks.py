"""Progress marks inside a clause (agent/pipeline/reply.py Speaker): every 300 ms of audio, each sent just before
the audio after it, never as the last thing queued (the module counts running dry at a mark as a segment's end,
not an underrun), and the clause's final mark after all of its audio."""

from __future__ import annotations

from collections.abc import AsyncIterator

from storeagent.agent.pipeline.history import PROGRESS_MS, History
from storeagent.agent.pipeline.reply import ReplyTiming, Speaker
from storeagent.agent.ports import AudioFormat

RATE = 8000
BYTES_PER_MS = RATE * 2 // 1000


class RecordingLink:
    fmt = AudioFormat(RATE)

    def __init__(self) -> None:
        self.sent: list[tuple[str, object]] = []

    async def send_audio(self, pcm: bytes) -> None:
        self.sent.append(("audio", len(pcm)))

    async def send_mark(self, name: str) -> None:
        self.sent.append(("mark", name))


class ChunkTTS:
    """Yields the given chunk sizes (ms) of audio for any text: sound throughout (silence at a clause's ends is
    trimmed, agent/pipeline/edges.py)."""

    def __init__(self, chunks_ms: list[int]) -> None:
        self.chunks_ms = chunks_ms

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        for ms in self.chunks_ms:
            yield (1000).to_bytes(2, "little", signed=True) * (ms * BYTES_PER_MS // 2)


async def speak(chunks_ms: list[int]) -> tuple[RecordingLink, History]:
    link, history = RecordingLink(), History("")
    u = history.start_utterance()
    speaker = Speaker(link, ChunkTTS(chunks_ms), history, u, "t1", lambda _: None,  # type: ignore[arg-type]
                      ReplyTiming(started=0.0))
    speaker.say("We open at seven and close at six, every day but Sunday.")
    speaker.close()
    await speaker.run()
    return link, history


async def test_progress_marks_every_300_ms_each_followed_by_audio() -> None:
    link, history = await speak([1000, 250])  # one big chunk (split by the speaker) and a short tail
    kinds = [k for k, _ in link.sent]
    marks = [v for k, v in link.sent if k == "mark"]
    assert marks == ["t1.0+300", "t1.0+600", "t1.0+900", "t1.0+1200", "t1.0"]
    assert kinds[-1] == "mark" and link.sent[-1] == ("mark", "t1.0")  # the final mark closes the clause
    for i, (kind, value) in enumerate(link.sent[:-1]):
        if kind == "mark":
            assert link.sent[i + 1][0] == "audio", f"progress mark {value} is not followed by audio"
    audio_ms = sum(int(v) for k, v in link.sent if k == "audio") // BYTES_PER_MS  # type: ignore[call-overload]
    assert audio_ms == 1250
    clause = history.utterances()[0].clauses[0]
    assert clause.sealed and clause.audio_ms == 1250


async def test_no_progress_mark_is_left_dangling_at_the_end_of_a_clause() -> None:
    link, _ = await speak([PROGRESS_MS])  # exactly one progress interval: nothing follows it inside the clause
    assert link.sent == [("audio", PROGRESS_MS * BYTES_PER_MS), ("mark", "t1.0")]
