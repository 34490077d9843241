"""Timing variants x outcome for one Korean caller turn on Deepgram (docs/providers.md).

Runs each variant of tests/support/turn_timing.py `--repeat` times and prints a Markdown table: turns answered,
the caller's words the conversation got, and for provider drops the time from the drop until the caller heard
audio again (the answer, or a hand-off line). Usage: `make bench-stt-turns` (or python bench/stt_turns.py).

`--endturn`: the end-of-turn benchmark instead (bench/endturn_set.py): the silence timer (500 ms today, and
300 ms) vs the smart-turn model on 8 kHz phone audio — the wait after complete questions (p50/p95), the cut-off
rate on phone numbers and hesitant turns, CPU ms per model inference; a Markdown table, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from storeagent.agent.pipeline.endturn import EndTurnConfig
from support.turn_timing import VARIANTS, VariantResult, run_variant


def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values) * 1000:.0f}" + (f" ({min(values) * 1000:.0f}-{max(values) * 1000:.0f})"
                                                         if len(values) > 1 else "")


async def main(repeat: int, only: list[str]) -> None:
    print("| variant | answered | caller words (last run) | outcome | speech end -> audio ms | drop -> audio ms |"
          " first heard |")
    print("|---|---|---|---|---|---|---|")
    for v in VARIANTS:
        if only and v.name not in only:
            continue
        runs: list[VariantResult] = [await run_variant(v) for _ in range(repeat)]
        last = runs[-1]
        answered = sum(r.answered for r in runs)
        outcome = f"{last.outcome.outcome}{' (hand-off)' if last.outcome.handoff else ''}"
        print(f"| {v.name} | {answered}/{repeat} | {last.caller_text or '-'} | {outcome} | "
              f"{_ms([r.speech_end_to_audio for r in runs if r.speech_end_to_audio is not None])} | "
              f"{_ms([r.drop_to_audio for r in runs if r.drop_to_audio is not None])} | "
              f"{last.first_heard[:40] or '-'} |", flush=True)


def _pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q * (len(xs) - 1) + 0.5))] * 1000, 1)


def endturn(limit: int, unfinished: list[int]) -> None:
    import endturn_set as es  # bench/endturn_set.py (synthesizes and caches audio: only for this mode)

    from storeagent.agent.pipeline.conversation import ConversationConfig
    from storeagent.agent.pipeline.endturn import EndTurnConfig
    from storeagent.agent.providers.smart_turn import load_turn_model

    model = load_turn_model()
    if model is None:
        raise SystemExit("smart-turn model not installed: run `make venv`")
    base = EndTurnConfig()
    digits_ms = ConversationConfig.__dataclass_fields__["digits_end_of_turn_ms"].default
    # (name, timer ms, model's unfinished_ms or None, the digits rule: a number read after the agent asked for one)
    variants: list[tuple[str, int, int | None, bool]] = [
        ("timer 500 ms (before)", 500, None, False), ("timer 300 ms", 300, None, False),
        (f"timer 500 + digits {digits_ms} ms (no model: the fallback)", 500, None, True),
        *[(f"smart-turn, unfinished {u} ms, audio only", 500, u, False) for u in unfinished[:1]],
        *[(f"smart-turn, unfinished {u} ms + digits {digits_ms} ms", 500, u, True) for u in unfinished]]
    totals = {v[0]: es.Totals() for v in variants}
    cases = es.cases(limit)
    for i, case in enumerate(cases):
        pcm, speech = es.render(case, i)
        for name, timer, unfinished_ms, digits in variants:
            t = totals[name]
            cfg = dataclasses.replace(base, unfinished_ms=unfinished_ms or base.unfinished_ms)
            if digits and case.kind == "number":  # the agent asked for a number: the long timer, no model
                o = es.simulate(pcm, speech, digits_ms, None, cfg, t)
            else:
                o = es.simulate(pcm, speech, timer, model if unfinished_ms else None, cfg, t)
            t.cut.setdefault(case.kind, []).append(o.cut_off)
            if o.wait_s is not None and not o.cut_off:
                t.waits.setdefault(case.kind, []).append(o.wait_s)
    print("| variant | question wait p50 / p95 ms | questions cut off | numbers cut off | hesitant cut off |"
          " number wait p50 ms | CPU ms / inference p50 (p95) |")
    print("|---|---|---|---|---|---|---|")
    summary: dict[str, object] = {"load": os.getloadavg()[0], "cases": {k: sum(c.kind == k for c in cases)
                                                                        for k in ("question", "number", "hesitant")}}
    for name, _, unfinished_ms, _ in variants:
        use_model = unfinished_ms is not None
        t = totals[name]
        q = t.waits.get("question", [])

        def cut(kind: str, t: es.Totals = t) -> str:
            xs = t.cut.get(kind, [])
            return f"{sum(xs)}/{len(xs)} ({100 * sum(xs) / max(1, len(xs)):.0f} %)"

        cpu = f"{_pct([c / 1000 for c in t.cpu_ms], 0.5)} ({_pct([c / 1000 for c in t.cpu_ms], 0.95)})" \
            if use_model else "-"
        print(f"| {name} | {_pct(q, 0.5)} / {_pct(q, 0.95)} | {cut('question')} | {cut('number')} | "
              f"{cut('hesitant')} | {_pct(t.waits.get('number', []), 0.5)} | {cpu} |", flush=True)
        summary[name] = {"question_wait_p50_ms": _pct(q, 0.5), "question_wait_p95_ms": _pct(q, 0.95),
                         **{f"{k}_cut_off": sum(v) for k, v in t.cut.items()},
                         "cpu_ms_p50": _pct([c / 1000 for c in t.cpu_ms], 0.5),
                         "wall_ms_p95": _pct([c / 1000 for c in t.wall_ms], 0.95)}
    summary["load_after"] = os.getloadavg()[0]
    print(json.dumps(summary))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", nargs="*", default=[])
    ap.add_argument("--endturn", action="store_true", help="the end-of-turn benchmark (timer vs smart-turn)")
    ap.add_argument("--limit", type=int, default=0, help="--endturn: at most this many questions")
    ap.add_argument("--unfinished", type=int, nargs="*", default=[], help="--endturn: unfinished_ms values to compare"
                    " (default: EndTurnConfig's)")
    args = ap.parse_args()
    if args.endturn:
        endturn(args.limit, args.unfinished or [EndTurnConfig().unfinished_ms])
    else:
        asyncio.run(main(args.repeat, args.only))
