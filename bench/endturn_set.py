"""End-of-turn benchmark: how long the agent waits after a complete question, and how often it cuts a caller off
who pauses inside a turn (reading out a phone number in digit groups, hesitating), for the plain silence timer and
for the smart-turn model (agent/pipeline/endturn.py). docs/turn-taking.md has the figures.

Audio: each utterance is synthesized whole (so a digit group keeps the rising, unfinished intonation a reader gives
it before a comma), its comma pauses are found in the audio and stretched to what a caller does (digit groups
400-1000 ms, hesitations 500-1200 ms, seeded), then it goes through the phone path of bench/quality/audio.py
(8 kHz, G.711 µ-law; every second utterance with street noise at 15 dB SNR). The pipeline parts are the agent's
own: WebRtcVad (aggressiveness 2, the agent's default), TurnDetector, EndTurn's audio window and the installed
smart-turn model, fed frame by frame on the audio's clock; a verdict takes effect at the pause frame's time plus
the model's measured wall time (what the caller waits for).

probe 200 ms and threshold 0.5 are pipecat's defaults; the uncertain band (0.2-0.5: the plain timer) and
unfinished_ms were chosen after a first run of this benchmark (docs/turn-taking.md says which figures).
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent / "quality"))

import audio  # type: ignore[import-not-found]  # bench/quality/audio.py
import dataset  # type: ignore[import-not-found]

from storeagent.agent.pipeline.endturn import CallerAudio, EndTurnConfig
from storeagent.agent.pipeline.turn import FRAME_MS, TurnDetector, TurnEnd, TurnPause
from storeagent.agent.pipeline.vad import WebRtcVad
from storeagent.agent.providers.smart_turn import SmartTurnModel

RATE = 8000
TAIL_MS = 3000  # silence after the last word: every variant's longest wait fits
EN_DIGITS = "zero one two three four five six seven eight nine".split()
KO_DIGITS = "공 일 이 삼 사 오 육 칠 팔 구".split()
HESITANT_EN = [  # "|" marks a pause inside the turn
    "I'd like to order, um, | a dozen, | uh, | croissants for Saturday.",
    "Can I book a haircut for, | um, | Friday afternoon?",
    "I was wondering, | uh, | if you have any, | hmm, | gluten free bread.",
    "Do you sell, | um, | what are they called, | wall anchors?",
    "My name is, | uh, | Jordan, | Jordan Miller.",
    "So I need, | let me think, | two hammers and | a box of nails.",
    "Is it possible to, | um, | pick up an order | after six?",
    "I want to ask about, | uh, | the price of a | chocolate cake.",
]
HESITANT_KO = [
    "음, | 양념 치킨 | 한 마리 | 주문하고 싶은데요.",
    "저기, | 토요일에, | 음, | 몇 시까지 하세요?",
    "그러니까, | 후라이드 반, | 양념 반으로 | 주세요.",
    "제 이름은, | 어, | 김민수입니다.",
]


@dataclass(frozen=True, slots=True)
class Case:
    kind: str  # "question" | "number" | "hesitant"
    language: str
    text: str  # "|" = a pause inside the turn
    pauses_ms: tuple[int, ...]


@dataclass(slots=True)
class Outcome:
    cut_off: bool  # a turn ended before the caller's speech did
    wait_s: float | None  # last speech frame -> end-of-turn decision, for the turn ending after the speech
    probes: int = 0


@dataclass(slots=True)
class Totals:
    waits: dict[str, list[float]] = field(default_factory=dict)  # by kind
    cut: dict[str, list[bool]] = field(default_factory=dict)
    cpu_ms: list[float] = field(default_factory=list)
    wall_ms: list[float] = field(default_factory=list)


def cases(limit_questions: int = 0, seed: int = 7) -> list[Case]:
    rng = random.Random(seed)
    out: list[Case] = []
    en = dataset.english("heldout")
    ko = dataset.korean()
    qs = [("en-US", u.text) for u in en] + [("ko-KR", u.text) for u in ko]
    if limit_questions:
        qs = qs[:limit_questions]
    out += [Case("question", lang, text, ()) for lang, text in qs]
    for i in range(24):
        lang = "ko-KR" if i % 3 == 2 else "en-US"
        digits = KO_DIGITS if lang == "ko-KR" else EN_DIGITS
        groups = [" ".join(rng.choice(digits) for _ in range(n)) for n in ((3, 3, 4) if lang == "en-US" else (3, 4, 4))]
        lead = rng.choice(["My number is", "It's", "You can reach me at"]) if lang == "en-US" else "제 번호는"
        text = f"{lead} {groups[0]}, | {groups[1]}, | {groups[2]}."
        out.append(Case("number", lang, text, tuple(rng.randint(400, 1000) for _ in range(2))))
    for text in HESITANT_EN + HESITANT_KO:
        lang = "ko-KR" if any("가" <= ch <= "힣" for ch in text) else "en-US"
        out.append(Case("hesitant", lang, text, tuple(rng.randint(500, 1200) for _ in range(text.count("|")))))
    return out


def _gaps(x: np.ndarray, rate: int) -> list[tuple[int, int]]:
    """Interior silent runs (10 ms RMS under 3 % of the peak frame's), as sample ranges."""
    hop = rate // 100
    frames = x[: len(x) // hop * hop].reshape(-1, hop)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    quiet = rms < 0.03 * (rms.max() + 1e-9)
    voiced = np.flatnonzero(~quiet)
    runs, start = [], None
    for i in range(int(voiced[0]), int(voiced[-1]) + 1):
        if quiet[i] and start is None:
            start = i
        elif not quiet[i] and start is not None:
            runs.append((start * hop, i * hop))
            start = None
    return runs


def render(case: Case, index: int) -> tuple[bytes, tuple[float, float]]:
    """8 kHz phone audio of the case (pauses stretched at the "|" marks) and when its speech starts and ends (s)."""
    voice = audio.voice_for(index, case.language)
    pcm = audio.clean(voice, case.text.replace(" |", ""))
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    need = len(case.pauses_ms)
    gaps = sorted(sorted(_gaps(x, 16000), key=lambda g: g[0] - g[1])[:need])  # the `need` longest, in order
    pieces, pos = [], 0
    for (a, b), ms in zip(gaps, case.pauses_ms, strict=False):
        pieces += [x[pos:a], np.zeros(16 * ms)]
        pos = b
    pieces.append(x[pos:])
    y = np.concatenate(pieces)
    hop = 160
    frames = y[: len(y) // hop * hop].reshape(-1, hop)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    voiced = np.flatnonzero(rms >= 0.03 * rms.max())
    lead = 0.3
    out = audio.phone(np.clip(y, -32768, 32767).astype("<i2").tobytes(), lead_ms=int(lead * 1000), tail_ms=TAIL_MS,
                      noise_kind="street" if index % 2 else None, snr_db=15.0, seed=index)
    return out, (lead + voiced[0] * hop / 16000, lead + (voiced[-1] + 1) * hop / 16000)


def simulate(pcm: bytes, speech: tuple[float, float], timer_ms: int, model: SmartTurnModel | None,
             cfg: EndTurnConfig, totals: Totals) -> Outcome:
    """Feed the audio frame by frame through VAD + TurnDetector (+ the model) on the audio's own clock."""
    vad = WebRtcVad(RATE, 2)
    det = (TurnDetector(60, timer_ms, probe_ms=cfg.probe_ms, unfinished_ms=cfg.unfinished_ms) if model
           else TurnDetector(60, timer_ms))
    window = CallerAudio(cfg)
    step = RATE * 2 * FRAME_MS // 1000
    pending: tuple[float, TurnPause, bool | None] | None = None
    ends: list[TurnEnd] = []
    probes = 0
    for i in range(len(pcm) // step):
        at = i * FRAME_MS / 1000
        frame = pcm[i * step : (i + 1) * step]
        if pending is not None and pending[0] <= at:
            end = det.decide(pending[1].pause, pending[2], pending[0])
            pending = None
            if end is not None:
                ends.append(end)
        window.add(at, frame)
        ev = det.feed(vad.is_speech(frame), at)
        if isinstance(ev, TurnPause) and model is not None:
            probes += 1
            t0 = time.perf_counter()
            p = model.probability(window.turn(ev), RATE)
            wall = time.perf_counter() - t0
            totals.cpu_ms.append(model.last_cpu_ms)
            totals.wall_ms.append(wall * 1000)
            verdict = True if p >= cfg.threshold else (False if p < cfg.unfinished_below else None)
            pending = (ev.at + wall, ev, verdict)
        elif isinstance(ev, TurnEnd):
            ends.append(ev)
    start, end = speech
    # decided after the caller began and before they finished (a noise burst before the words is no cut-off)
    cut = any(start < e.detected_at < end for e in ends)
    final = [e for e in ends if e.detected_at >= end]
    wait = (final[0].detected_at - final[0].last_speech_at) if final else None
    return Outcome(cut, wait, probes)
