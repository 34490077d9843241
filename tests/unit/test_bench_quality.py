"""The quality benchmark's evaluation set stays honest: big enough, and its held-out part (and the demo's
questions) are never among the phrases the offline recognizer is given as its shop vocabulary."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from storeagent.agent.loopback.demo import script_for
from storeagent.agent.store.knowledge import caller_phrases, shop_vocabulary

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench/quality"))

import dataset  # noqa: E402


def _norm(text: str) -> str:
    return " ".join(re.findall(r"[\w']+", text.lower().replace("'", "")))


def test_the_set_is_big_and_varied() -> None:
    utts = [*dataset.english(), *dataset.korean()]
    assert len(utts) >= 200
    assert len({u.shop for u in utts}) >= 4
    intents = {u.intent for u in utts}
    assert {"hours_day", "price", "availability", "address", "faq", "message", "transfer", "goodbye"} <= intents
    held = [u for u in utts if u.split == "heldout"]
    assert len(held) >= 100
    for intent in intents:  # many phrasings per intent in the held-out part
        assert len({u.text for u in held if u.intent == intent}) >= 2, intent


def test_heldout_and_demo_sentences_are_not_in_any_vocabulary() -> None:
    """Nothing the recognizer or the answerer is given may contain a held-out sentence (nor the reverse)."""
    for path in dataset.SHOPS:
        shop = dataset.load_shop(path)
        vocab = {_norm(p) for p in caller_phrases(shop.profile)}
        held = [_norm(u.text) for u in dataset.english("heldout") if u.shop == shop.store]
        demo = [_norm(q.text) for q in script_for(shop)] if shop.store == "sunrise-bakery" else []
        for sentence in [*held, *demo]:
            assert sentence not in vocab
            assert not any(len(v.split()) >= 4 and v in sentence for v in vocab), sentence
        # Whisper's prompt: the shop's names, none of them a caller's sentence
        for name in shop_vocabulary(shop.profile):
            assert len(name.split()) <= 4 and _norm(name) not in {*held, *demo}, name


def test_no_dev_sentence_is_a_heldout_one() -> None:
    """The dev part is what rules are tuned on: a held-out sentence there would be tuned on too."""
    held = {_norm(u.text) for u in dataset.english("heldout")}
    assert not [u.text for u in dataset.english("dev") if _norm(u.text) in held]


def test_every_utterance_expects_facts_from_the_manifest() -> None:
    for u in dataset.english():
        assert u.expect, u.id
        for pattern in u.expect:
            re.compile(pattern.removeprefix("!").removeprefix("tool:"))


@pytest.mark.slow
def test_smoke_run_prints_json_last() -> None:
    """A handful of utterances through synthesis, the 8 kHz µ-law path, pocketsphinx and the answerer."""
    out = subprocess.run([sys.executable, str(ROOT / "bench/quality/run.py"), "--limit", "45", "--no-korean",
                          "--recognizers", "pocketsphinx+shop", "--conditions", "clean", "--jobs", "1"],
                         capture_output=True, text=True, timeout=400, cwd=ROOT, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    parts = result["recognition"]["pocketsphinx+shop"]
    assert {"en-dev", "en-heldout"} <= set(parts)
    s = parts["en-heldout"]["all"]
    assert s["n"] >= 1 and 0.0 <= s["intent_accuracy"] <= 1.0 and s["wer"] >= 0.0
