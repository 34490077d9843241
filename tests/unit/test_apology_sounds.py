"""The fallback apology the dialplan plays is a file the FreeSWITCH image ships: freeswitch/Dockerfile runs
freeswitch/sounds/make_apologies.py into the sounds directory; this runs the same script and checks that every
file a rendered dialplan can reference comes out as playable telephone-rate speech."""

from __future__ import annotations

import array
import json
import math
import subprocess
import sys
import wave
from pathlib import Path

from storeagent.operator import dialplan
from storeagent.operator.model import Fallback

REPO = Path(__file__).resolve().parents[2]
SOUNDS = REPO / "freeswitch" / "sounds"


def test_every_apology_language_has_a_text() -> None:
    texts = json.loads((SOUNDS / "apologies.json").read_text(encoding="utf-8"))
    assert sorted(k for k in texts if not k.startswith("_")) == sorted(dialplan.APOLOGY_LANGUAGES)


def test_the_image_build_synthesizes_every_apology_a_dialplan_plays(tmp_path: Path) -> None:
    sounds_dir = tmp_path / "sounds"
    subprocess.run([sys.executable, str(SOUNDS / "make_apologies.py"), str(sounds_dir / "storeagent")],
                   check=True, capture_output=True, timeout=60)
    referenced = set()
    for language in ("en-US", "en-GB", "ko-KR", "ko", "es-MX"):
        xml = dialplan.render(namespace="ns", name="shop", numbers=("+15550000001",), service_host="shop.ns.svc",
                              esl_port=8084, fallback=Fallback(forward_to="+15550000002"),
                              bridge_template="sofia/gateway/carrier/{number}",
                              apology=dialplan.apology_file(language), generation=1)
        referenced |= {line.split('data="', 1)[1].split('"', 1)[0]
                       for line in xml.splitlines() if 'application="playback"' in line}
    assert referenced == {"storeagent/apology-en.wav", "storeagent/apology-ko.wav"}
    for rel in referenced:
        # FreeSWITCH resolves a relative playback path against its sounds directory (sound_prefix).
        with wave.open(str(sounds_dir / rel)) as w:
            assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000), rel
            pcm = array.array("h", w.readframes(w.getnframes()))
        seconds = len(pcm) / 8000
        rms = math.sqrt(sum(x * x for x in pcm) / len(pcm))
        assert 2.0 < seconds < 15.0, (rel, seconds)
        assert rms > 500, f"{rel} is (nearly) silent: rms {rms:.0f}"
