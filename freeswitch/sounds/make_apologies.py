#!/usr/bin/env python3
"""Synthesize the dialplan fallback's apology for every language into OUTDIR/apology-<lang>.wav.

Run by freeswitch/Dockerfile at image build time (stdlib + espeak-ng only, no project code) with OUTDIR =
<sounds_dir>/storeagent, so every FreeSWITCH image ships the files the operator's dialplans play. Output is
8 kHz mono 16-bit PCM: the telephone rate, so FreeSWITCH does not resample on narrowband calls.
"""

from __future__ import annotations

import argparse
import array
import io
import json
import subprocess
import sys
import wave
from pathlib import Path

RATE = 8000
HERE = Path(__file__).resolve().parent


def synthesize(voice: str, speed: int, pitch: int, text: str) -> tuple[int, bytes]:
    """espeak-ng's WAV on stdout -> (rate, mono 16-bit PCM)."""
    out = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
                         check=True, capture_output=True).stdout
    with wave.open(io.BytesIO(out)) as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise SystemExit(f"espeak-ng gave {w.getnchannels()} ch / {w.getsampwidth()} bytes, want mono 16-bit")
        rate = w.getframerate()
        # espeak-ng streams to stdout with an unknown length in the header: read every frame there is.
        pcm = w.readframes(1 << 30)
    return rate, pcm


def to_rate(pcm: bytes, src: int, dst: int) -> bytes:
    """Linear-interpolation resampling after a short moving-average low-pass (enough for speech at 8 kHz)."""
    x = array.array("h", pcm)
    if src == dst or not x:
        return pcm
    taps = max(1, round(src / dst))  # averaging ~src/dst samples removes most energy above dst/2
    smooth = [sum(x[max(0, i - taps + 1): i + 1]) / min(taps, i + 1) for i in range(len(x))]
    n = int(len(x) * dst / src)
    out = array.array("h")
    for j in range(n):
        pos = j * src / dst
        i = int(pos)
        frac = pos - i
        a = smooth[i]
        b = smooth[i + 1] if i + 1 < len(smooth) else a
        out.append(max(-32768, min(32767, round(a + (b - a) * frac))))
    return out.tobytes()


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("outdir", type=Path)
    p.add_argument("--texts", type=Path, default=HERE / "apologies.json")
    a = p.parse_args(argv)
    texts = {k: v for k, v in json.loads(a.texts.read_text(encoding="utf-8")).items() if not k.startswith("_")}
    a.outdir.mkdir(parents=True, exist_ok=True)
    for lang, spec in sorted(texts.items()):
        rate, pcm = synthesize(spec["voice"], int(spec["speed"]), int(spec["pitch"]), spec["text"])
        pcm = to_rate(pcm, rate, RATE)
        path = a.outdir / f"apology-{lang}.wav"
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(pcm)
        print(f"{path}: {len(pcm) / 2 / RATE:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
