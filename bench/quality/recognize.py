"""Speech recognition and answering of one utterance, the way a call does it, measured from outside.

Audio goes to the STT port in 20 ms frames of 8 kHz L16 (as fast as the recognizer takes them), `finalize()`
marks the end of the turn; we time finalize -> final transcript (what the caller waits for after the end of
turn) and count process CPU per second of audio. The transcript then goes to the offline answerer (the shop's
`LLM`), and the answer (text and tool calls) is checked against the utterance's facts.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from storeagent.agent.ports import STT, AudioFormat, Message, Transcript
from storeagent.agent.providers.factory import offline_answerer
from storeagent.agent.store import knowledge as k
from storeagent.shop import WEEKDAYS, ShopConfig

# A fixed Tuesday with no holiday near it: "on Saturday" means the next Saturday, whose hours are the weekly ones.
NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
TOOLS = {"transfer_to_staff", "end_call", "take_message"}
FRAME = 320  # 20 ms at 8 kHz, L16


@dataclass(frozen=True, slots=True)
class Heard:
    text: str
    final_latency: float  # finalize() -> final transcript, seconds
    cpu: float  # process CPU seconds spent while this utterance was recognized
    audio_s: float
    first_partial_at: float | None  # audio seconds fed when the first interim result arrived
    alternatives: tuple[str, ...] = ()  # the final's other readings (Whisper's n-best), given to the answerer


def make_recognizer(name: str, shop: ShopConfig) -> STT:
    if name == "pocketsphinx":
        from storeagent.agent.providers.offline_stt import PocketsphinxSTT

        return PocketsphinxSTT(interim=True)
    if name == "pocketsphinx+shop":
        from storeagent.agent.providers.offline_stt import PocketsphinxSTT

        return PocketsphinxSTT(k.caller_phrases(shop.profile), interim=True)
    if name == "vosk":
        from storeagent.agent.providers.vosk_stt import VoskSTT

        return VoskSTT(language=shop.language)
    if name == "vosk+shop":
        from storeagent.agent.providers.vosk_stt import VoskSTT

        return VoskSTT(k.caller_phrases(shop.profile), language=shop.language)
    if name.startswith("whisper"):
        return _whisper(name, shop)
    raise SystemExit(f"--recognizers: unknown recognizer {name!r}")


def _whisper(name: str, shop: ShopConfig) -> STT:
    """whisper[+shop|+days|+words][-greedy|-top1][-ctx30][-interim][-f32]: the agent's Whisper provider as
    configured by default (beam 5, its n-best as alternatives); +shop: the shop's names as its prompt; +days: and
    the weekday names; +words: and the weekdays and four intent words (prompt experiments, docs/benchmarks.md);
    -greedy: beam 1, no alternatives (the default before); -top1: beam 5 without alternatives; -ctx30: the encoder
    over Whisper's whole 30 s window (faster-whisper's default); -f32: float32 weights instead of int8."""
    from storeagent.agent.providers.whisper_stt import WhisperSTT

    parts = name.split("-")
    flags = set(parts[1:])
    if parts[0] not in ("whisper", "whisper+shop", "whisper+days", "whisper+words") \
            or not flags <= {"greedy", "top1", "ctx30", "interim", "f32"} or {"greedy", "top1"} <= flags:
        raise SystemExit(f"--recognizers: unknown recognizer {name!r}")
    vocab = list(k.shop_vocabulary(shop.profile)) if parts[0] != "whisper" else []
    if parts[0] in ("whisper+days", "whisper+words"):  # experiment: weekday names (+ intent words) in the prompt
        vocab += [d.capitalize() for d in WEEKDAYS]
    if parts[0] == "whisper+words":
        vocab += ["opening hours", "price", "address", "directions"]
    return WhisperSTT(vocab, beam_size=1 if "greedy" in flags else 5,
                      alternatives=0 if flags & {"greedy", "top1"} else 4,
                      ctx_step_s=30 if "ctx30" in flags else 1.0, interim_s=1.0 if "interim" in flags else 0.0,
                      compute_type="float32" if "f32" in flags else "int8", workers=1)


async def recognize(stt: STT, pcm: bytes, language: str) -> Heard:
    stream = await stt.open(AudioFormat(8000), language)
    first_partial: list[float] = []
    final: list[Transcript] = []
    got_final = asyncio.Event()
    fed = 0

    async def pump() -> None:
        async for ev in stream.events():
            if isinstance(ev, Transcript):
                if ev.is_final:
                    final.append(ev)
                    got_final.set()
                elif ev.text and not first_partial:
                    first_partial.append(fed / 16000)

    task = asyncio.create_task(pump())
    cpu0 = time.process_time()
    for i in range(0, len(pcm), FRAME):
        fed = i + FRAME
        await stream.send(pcm[i : i + FRAME])
    t0 = time.perf_counter()
    await stream.finalize()
    await asyncio.wait_for(got_final.wait(), 30)
    latency = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    await stream.aclose()
    await asyncio.wait_for(task, 10)
    return Heard(final[0].text if final else "", latency, cpu, len(pcm) / 16000,
                 first_partial[0] if first_partial else None, final[0].alternatives if final else ())


def answer(shop: ShopConfig, text: str, alternatives: tuple[str, ...] = ()) -> tuple[str, list[str]]:
    """The offline answerer's reply to one caller turn: (spoken text, names of tools it called)."""
    a = offline_answerer(shop, now=lambda: NOW).answer(
        [Message("assistant", shop.profile.greeting or "hello"), Message("user", text, alternatives=alternatives)],
        TOOLS)
    return a.text, [c.name for c in a.calls]


def correct(expect: tuple[str, ...], text: str, tools: list[str]) -> bool:
    for pattern in expect:
        if pattern.startswith("tool:"):
            if pattern[5:] not in tools:
                return False
        elif pattern.startswith("!"):
            if re.search(pattern[1:], text, re.IGNORECASE):
                return False
        elif not re.search(pattern, text, re.IGNORECASE):
            return False
    return True


def wer(ref: str, hyp: str, language: str = "en") -> tuple[int, int]:
    """(word edits, reference words) after normalizing case and punctuation. Korean is scored by syllable
    (a character error rate): its word spacing varies freely and the model writes numbers as "[25]"."""
    r, h = _norm(ref), _norm(hyp)
    if language.startswith("ko"):
        r, h = list("".join(r)), list("".join(h))
    d = list(range(len(h) + 1))
    for i, rw in enumerate(r, 1):
        prev, d[0] = d[0], i
        for j, hw in enumerate(h, 1):
            cur = min(d[j] + 1, d[j - 1] + 1, prev + (rw != hw))
            prev, d[j] = d[j], cur
    return d[len(h)], len(r)


_NUM = {"one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8",
        "nine": "9", "zero": "0"}


def _norm(text: str) -> list[str]:
    t = text.lower().replace("'", "").replace("-", " ")
    return [_NUM.get(w, w) for w in re.findall(r"[\w]+", t)]
