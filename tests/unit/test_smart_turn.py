"""The smart-turn provider: features identical to pipecat's own, the installed model's judgement on speech, and
the fallback (None: the silence timer) when the model is missing or not the pinned file."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from storeagent.agent.ports import AudioFormat
from storeagent.agent.providers import smart_turn
from storeagent.agent.providers.offline_tts import PiperTTS
from storeagent.agent.providers.smart_turn_features import N_SAMPLES, fit_window, log_mel

WHEEL = (Path(os.environ.get("STOREAGENT_CACHE", Path.home() / ".cache/storeagent"))
         / "wheels/pipecat_ai-1.14.0-py3-none-any.whl")
MEMBER = "pipecat/audio/turn/smart_turn/_whisper_features.py"


def _reference(tmp: Path) -> ModuleType:
    """pipecat's own feature extractor, from the wheel `make venv` keeps in the cache (numpy only)."""
    if not WHEEL.exists():
        pytest.skip(f"{WHEEL} not in the cache (make venv puts it there)")
    path = tmp / "pipecat_whisper_features.py"
    with zipfile.ZipFile(WHEEL) as z:
        path.write_bytes(z.read(MEMBER))
    spec = importlib.util.spec_from_file_location("pipecat_whisper_features", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_features_are_pipecats_bit_for_bit(tmp_path: Path) -> None:
    ref = _reference(tmp_path)
    rng = np.random.default_rng(3)
    for n in (8000, 60000, N_SAMPLES, 2 * N_SAMPLES):  # shorter than the window (zeros before), exact, longer
        x = (rng.standard_normal(n) * 0.1).astype(np.float32)
        w = fit_window(x)
        assert w.shape == (N_SAMPLES,) and np.array_equal(w[-min(n, N_SAMPLES):], x[-N_SAMPLES:])
        assert np.array_equal(log_mel(w), ref.compute_whisper_log_mel_features(w, do_normalize=True))


def _model() -> smart_turn.SmartTurnModel:
    model = smart_turn.load_turn_model()
    if model is None:
        pytest.skip("smart-turn model not installed (make venv installs it)")
    return model


async def _speech(text: str) -> bytes:
    tts = await PiperTTS().open(AudioFormat(8000), "en-US")
    pcm = bytearray()
    async for chunk in tts.synthesize(text):
        pcm += chunk
    await tts.aclose()
    return bytes(pcm) + bytes(2 * 8000 * 200 // 1000)  # + the 200 ms of pause after which the model is asked


async def test_the_model_hears_a_finished_question_and_an_unfinished_start_at_8_khz() -> None:
    model = _model()
    done = await model.complete_probability(await _speech("What time do you close on Saturday?"), 8000)
    hanging = await model.complete_probability(await _speech("Um, I was wondering if"), 8000)
    assert done > 0.5 > hanging, (done, hanging)
    assert model.last_cpu_ms > 0


async def test_judgements_run_off_the_event_loop() -> None:
    model = _model()
    pcm = await _speech("Do you have gluten free bread?")
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0)
            ticks += 1

    t = asyncio.create_task(tick())
    await asyncio.gather(*(model.complete_probability(pcm, 8000) for _ in range(3)))
    t.cancel()
    assert ticks > 3  # the loop ran while the model worked


def test_no_model_installed_means_the_silence_timer(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(smart_turn.ENV_PATH, str(tmp_path / "missing.onnx"))
    smart_turn.load_turn_model.cache_clear()
    try:
        assert smart_turn.model_path() is None and smart_turn.load_turn_model() is None
    finally:
        smart_turn.load_turn_model.cache_clear()


def test_a_file_that_is_not_the_pinned_model_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bad = tmp_path / smart_turn.MODEL_FILE
    bad.write_bytes(b"not a model")
    monkeypatch.setenv(smart_turn.ENV_PATH, str(bad))
    smart_turn.load_turn_model.cache_clear()
    try:
        assert smart_turn.load_turn_model() is None  # logged; turns end on the timer, the agent keeps running
        with pytest.raises(ValueError, match="sha256"):
            smart_turn.SmartTurnModel(bad)
    finally:
        smart_turn.load_turn_model.cache_clear()


def test_make_venv_installs_the_model_and_its_licence() -> None:
    path = smart_turn.default_path()
    if not path.exists():
        pytest.skip(f"{path} absent: not a `make venv` environment")
    assert (path.parent / "LICENSE").read_text().startswith("BSD 2-Clause License")
    assert sys.prefix in str(path)
