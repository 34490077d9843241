"""Silence a caller hears between the clauses of one answer (issue 13 item 6: target <= 150 ms).

One answer of several clauses is streamed word by word (`--token-ms` apart, an LLM's pace) through the agent's
own reply path (agent/pipeline/reply.py: clause splitter, one speaker task synthesizing clause after clause) into
the offline Piper voice at 8 kHz. A link records when each clause's audio arrived; playout is replayed on that
clock at real time (a clause starts when it arrived or when the one before it finished, whichever is later). The
silence between two clauses = the trailing silence inside clause k's audio + playout running dry waiting for
clause k+1 (an underrun) + the leading silence inside clause k+1's audio. Prints one JSON line.
Usage: python bench/clause_gaps.py [--repeat 5] [--token-ms 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import AsyncIterator

import numpy as np

from storeagent.agent.pipeline.history import History
from storeagent.agent.pipeline.reply import run_reply
from storeagent.agent.ports import AudioFormat, UplinkItem
from storeagent.agent.providers.offline_tts import PiperTTS
from storeagent.agent.providers.scripted import ScriptedLLM
from storeagent.agent.store.tools import ShopTools

ANSWERS = [
    "We open at eight on Saturday, and we close at two in the afternoon. The sourdough is usually gone by noon, "
    "so come early if you want a loaf.",
    "Sure, a dozen croissants are twenty four dollars. We can have them ready at nine, and you can pay when you "
    "pick them up.",
    "We're at 12 Main Street, next to the post office. There's parking behind the shop, and the entrance is on "
    "the left.",
]
QUIET = 300  # |sample| below this is silence (the voice is normalized near full scale)


class RecordingLink:
    def __init__(self) -> None:
        self._fmt = AudioFormat(8000)
        self.chunks: list[tuple[float, int, bytes]] = []  # (arrival, clause index, pcm)
        self.clause = 0

    @property
    def fmt(self) -> AudioFormat:
        return self._fmt

    async def uplink(self) -> AsyncIterator[UplinkItem]:
        if False:
            yield  # type: ignore[unreachable]

    async def send_audio(self, pcm: bytes) -> None:
        self.chunks.append((time.monotonic(), self.clause, pcm))

    async def send_mark(self, name: str) -> None:
        if "+" not in name:  # a clause's end mark (progress marks carry "+ms")
            self.clause += 1

    async def send_clear(self) -> None: ...
    async def send_pause(self) -> None: ...
    async def send_resume(self) -> None: ...
    async def close(self) -> None: ...


def _edges(pcm: bytes) -> tuple[float, float]:
    x = np.abs(np.frombuffer(pcm, dtype="<i2").astype(np.int32))
    loud = np.flatnonzero(x >= QUIET)
    if not len(loud):
        return len(x) / 8000, 0.0
    return float(loud[0]) / 8000, float(len(x) - 1 - loud[-1]) / 8000


def gaps(link: RecordingLink) -> list[float]:
    clauses: dict[int, list[tuple[float, bytes]]] = {}
    for at, k, pcm in link.chunks:
        clauses.setdefault(k, []).append((at, pcm))
    out: list[float] = []
    play_end = 0.0
    prev_trail = 0.0
    for k in sorted(clauses):
        pcm = b"".join(p for _, p in clauses[k])
        start = max(clauses[k][0][0], play_end) if k else clauses[k][0][0]
        lead, trail = _edges(pcm)
        if k:
            out.append(prev_trail + max(0.0, start - play_end) + lead)
            if os.environ.get("GAPS_DEBUG"):
                dry = max(0.0, start - play_end)
                print(f"  trail {prev_trail * 1000:.0f} dry {dry * 1000:.0f} lead {lead * 1000:.0f}")
        # later chunks of the clause may arrive after playout reached them: each waits for its own arrival
        t = start
        for at, p in clauses[k]:
            t = max(t, at) + len(p) / 16000
        play_end, prev_trail = t, trail
    return out


async def one(answer: str, token_s: float, tts: PiperTTS) -> list[float]:
    link = RecordingLink()
    history = History("")
    history.add_user("question")
    u = history.start_utterance()
    session = await tts.open(link.fmt, "en-US")
    await run_reply(history=history, utterance=u, llm=ScriptedLLM(answer, token_delay=token_s), tts=session,
                    tools=ShopTools(_shop()), link=link, mark_prefix="t1", on_first_audio=lambda t: None)
    return gaps(link)


def _shop():  # type: ignore[no-untyped-def]
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from support.agent_harness import bakery

    return bakery()


async def main(repeat: int, token_ms: int) -> None:
    tts = PiperTTS()
    await asyncio.to_thread(tts.load)
    all_gaps: list[float] = []
    for _ in range(repeat):
        for a in ANSWERS:
            got = await one(a, token_ms / 1000, tts)
            print(" ".join(f"{g * 1000:.0f}" for g in got), flush=True)
            all_gaps += got
    xs = sorted(all_gaps)
    pct = lambda q: round(xs[min(len(xs) - 1, int(q * (len(xs) - 1) + 0.5))] * 1000, 1)  # noqa: E731
    print(json.dumps({"gaps": len(xs), "p50_ms": pct(0.5), "p95_ms": pct(0.95), "max_ms": round(xs[-1] * 1000, 1),
                      "over_150_ms": int(sum(g > 0.15 for g in xs)), "token_ms": token_ms, "load": os.getloadavg()[0]}))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--token-ms", type=int, default=30)
    args = ap.parse_args()
    asyncio.run(main(args.repeat, args.token_ms))
