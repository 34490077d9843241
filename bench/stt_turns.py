"""Timing variants x outcome for one Korean caller turn on Deepgram (docs/providers.md).

Runs each variant of tests/support/turn_timing.py `--repeat` times and prints a Markdown table: turns answered,
the caller's words the conversation got, and for provider drops the time from the drop until the caller heard
audio again (the answer, or a hand-off line). Usage: `make bench-stt-turns` (or python bench/stt_turns.py).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

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


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", nargs="*", default=[])
    args = ap.parse_args()
    asyncio.run(main(args.repeat, args.only))
