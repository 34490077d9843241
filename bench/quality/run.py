"""`make bench-quality`: how well the agent understands phone-band callers, and how it takes turns.

Part 1 (recognition + answer): every utterance of the evaluation set (bench/quality/dataset.py), in one of
several voices, through the 8 kHz µ-law round trip, clean and with background noise, is recognized by each
recognizer under test and answered by the offline answerer; prints WER, intent accuracy (the answer states the
manifest's fact), final latency and CPU per audio second, for the dev and the held-out part separately.
Part 2 (calls, `bench/quality/calls.py`): real loopback calls to the running agent at 8 kHz measure end-of-turn
and response latency, false barge-ins on coughs and backchannels, barge-in stop and talk-over.
The last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import audio
import dataset
import recognize as rc

from storeagent.agent.ports import STT
from storeagent.agent.providers import vosk_stt
from storeagent.shop import ShopConfig

CONDITIONS = ("clean", "noisy")  # noisy: street or babble noise at 12 dB SNR, alternating


@dataclass(frozen=True, slots=True)
class Row:
    id: str
    recognizer: str
    split: str
    language: str
    intent: str
    condition: str
    voice: str
    ref: str
    hyp: str
    answer: str
    ok: bool
    edits: int
    words: int
    final_latency: float
    cpu: float
    audio_s: float
    first_partial_at: float | None
    alternatives: tuple[str, ...] = ()  # the recognizer's other readings: rows can be re-answered offline


_SHOPS: dict[str, ShopConfig] = {}
_RECS: dict[tuple[str, str], STT] = {}


def _shop(name: str) -> ShopConfig:
    if not _SHOPS:
        for path in [*dataset.SHOPS, dataset.KOREAN_SHOP]:
            s = dataset.load_shop(path)
            _SHOPS[s.store] = s
    return _SHOPS[name]


def _work(job: tuple[str, dataset.Utterance, str, str, bytes]) -> Row:
    """One utterance through one recognizer (runs in a worker process; recognizers cached per process)."""
    name, u, cond, voice, pcm = job
    shop = _shop(u.shop)
    stt = _RECS.get((name, u.shop))
    if stt is None:
        stt = _RECS[(name, u.shop)] = rc.make_recognizer(name, shop)
    heard = asyncio.run(rc.recognize(stt, pcm, u.language))
    text, tools = rc.answer(shop, heard.text, heard.alternatives)
    edits, words = rc.wer(u.text, heard.text, u.language)
    return Row(u.id, name, u.split, u.language, u.intent, cond, voice, u.text, heard.text,
               text or ",".join(tools), rc.correct(u.expect, text, tools), edits, words, heard.final_latency,
               heard.cpu, heard.audio_s, heard.first_partial_at, heard.alternatives)


def build_jobs(utts: list[dataset.Utterance], recognizers: list[str], conditions: list[str]) -> list[Any]:
    clean = {}
    for n, u in enumerate(utts):
        v = audio.voice_for(n, u.language)
        clean[u.id] = (v, audio.clean(v, u.text))
    babble = [pcm for _, pcm in list(clean.values())[:24]]
    jobs = []
    for n, u in enumerate(utts):
        v, pcm = clean[u.id]
        for cond in conditions:
            kind = None if cond == "clean" else ("street", "babble")[n % 2] if cond == "noisy" else cond
            phone = audio.phone(pcm, noise_kind=kind, seed=n, babble=babble)
            for name in recognizers:
                korean = u.language.startswith("ko")
                if (name.startswith("pocketsphinx") and korean) or \
                        (name.startswith("vosk") and not vosk_stt.available(u.language)):
                    continue  # pocketsphinx is English-only; vosk needs a model for the language
                jobs.append((name, u, cond, v.name, phone))
    return jobs


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * (len(xs) - 1) + 0.5))]


def summarize(rows: list[Row]) -> dict[str, Any]:
    groups: dict[tuple[str, str, str], list[Row]] = defaultdict(list)
    for r in rows:
        lang = "ko" if r.language.startswith("ko") else "en"
        groups[(r.recognizer, f"{lang}-{r.split}", "all")].append(r)
        groups[(r.recognizer, f"{lang}-{r.split}", r.condition)].append(r)
    out: dict[str, Any] = {}
    for (name, part, cond), rs in sorted(groups.items()):
        audio_s = sum(r.audio_s for r in rs)
        out.setdefault(name, {}).setdefault(part, {})[cond] = {
            "n": len(rs),
            "intent_accuracy": round(sum(r.ok for r in rs) / len(rs), 3),
            "wer": round(sum(r.edits for r in rs) / max(1, sum(r.words for r in rs)), 3),
            "final_latency_p50_ms": round(pct([r.final_latency for r in rs], 0.5) * 1000, 1),
            "final_latency_p95_ms": round(pct([r.final_latency for r in rs], 0.95) * 1000, 1),
            "cpu_per_audio_s": round(sum(r.cpu for r in rs) / max(1e-9, audio_s), 3),
            "first_partial_p50_s": _maybe(pct([r.first_partial_at for r in rs if r.first_partial_at], 0.5)),
        }
    return out


def _maybe(x: float) -> float | None:
    return None if x != x else round(x, 2)


def print_table(summary: dict[str, Any]) -> None:
    print(f"\n{'recognizer':<20}{'part':<12}{'cond':<8}{'n':>5}{'intent':>8}{'WER':>7}{'final p50':>11}"
          f"{'p95':>8}{'CPU/s':>7}")
    for name, parts in summary.items():
        for part, conds in parts.items():
            for cond, s in conds.items():
                print(f"{name:<20}{part:<12}{cond:<8}{s['n']:>5}{s['intent_accuracy'] * 100:>7.1f}%"
                      f"{s['wer']:>7.3f}{s['final_latency_p50_ms']:>9.0f}ms{s['final_latency_p95_ms']:>6.0f}ms"
                      f"{s['cpu_per_audio_s']:>7.3f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--recognizers", default="pocketsphinx+shop,whisper,whisper+shop,vosk",
                   help="comma list: pocketsphinx, pocketsphinx+shop (shop vocabulary bias), vosk (Korean; "
                        "English too with STOREAGENT_VOSK_MODEL_EN set to a model directory), "
                        "whisper[+shop][-greedy|-top1][-ctx30][-interim] (the offline default; see recognize.py)")
    p.add_argument("--split", choices=["dev", "heldout", "all"], default="all")
    p.add_argument("--conditions", default=",".join(CONDITIONS))
    p.add_argument("--limit", type=int, default=0, help="every n-th utterance only (smoke runs)")
    p.add_argument("--korean", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--english", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--calls", action=argparse.BooleanOptionalAction, default=False, help="part 2: loopback calls")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--rows", type=Path, help="write every row as JSON lines here")
    args = p.parse_args(argv)

    utts = dataset.english(None if args.split == "all" else args.split) if args.english else []
    if args.korean:
        utts += dataset.korean(None if args.split == "all" else args.split)
    if args.limit:
        utts = utts[:: args.limit]
    t0 = time.perf_counter()
    jobs = build_jobs(utts, args.recognizers.split(","), args.conditions.split(","))
    print(f"{len(utts)} utterances, {len(jobs)} recognitions (audio ready in {time.perf_counter() - t0:.1f} s)",
          flush=True)
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(_work, jobs, chunksize=4))
    if args.rows:
        args.rows.write_text("".join(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in rows))
    summary = summarize(rows)
    print_table(summary)
    result: dict[str, Any] = {"recognition": summary, "utterances": len(utts)}
    if args.calls:
        import calls

        result["calls"] = calls.run_calls(limit=args.limit)
        calls.print_calls(result["calls"])
    print(json.dumps(result, ensure_ascii=False, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
