"""Smart-turn v3.2 (BSD-2-Clause, Daily): is the caller's turn complete, judged from the audio alone.

An ~8.7 MB ONNX model (a Whisper-tiny-sized encoder + classifier) trained on 23 languages, Korean among them,
that hears intonation and rhythm: "What time do you close?" falls and ends; "my number is 5 5 5 ..." is left
hanging. The pipeline asks it once a pause is long enough to matter (agent/pipeline/endturn.py says how the
answer is used). Input: the turn's last <= 8 s at 16 kHz (phone audio is resampled from 8 kHz with soxr, as
pipecat does), Whisper log-mel features (smart_turn_features.py); output: the probability that the turn is
complete. Run on the CPU with onnxruntime (already installed for faster-whisper), one intra-op thread, on this
provider's own thread (never the event loop; onnxruntime releases the GIL while it runs).

The weights ship inside the pipecat-ai wheel; `make venv` (.ci/smart-turn.sh) takes only the .onnx and its
licence from it into <venv>/share/storeagent/smart-turn/ (the framework is not installed). Nothing is downloaded
at run time: without the file `load_turn_model()` returns None and turns end on the plain silence timer.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from storeagent.agent.providers.smart_turn_features import RATE, fit_window, log_mel

log = logging.getLogger(__name__)

MODEL_FILE = "smart-turn-v3.2-cpu.onnx"
# pipecat-ai 1.14.0's RECORD entry for the file: a different file is refused, not guessed at.
MODEL_SHA256 = "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f"
ENV_PATH = "STOREAGENT_SMART_TURN_MODEL"  # another location of the same file (tests, images)


def default_path() -> Path:
    return Path(sys.prefix) / "share" / "storeagent" / "smart-turn" / MODEL_FILE


def model_path() -> Path | None:
    """Where the model is, or None when it is not installed."""
    p = Path(os.environ[ENV_PATH]) if os.environ.get(ENV_PATH) else default_path()
    return p if p.is_file() else None


class SmartTurnModel:
    """One ONNX session per process, shared by every call (a session's run() is thread-safe)."""

    name = "smart-turn-v3.2"

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort  # type: ignore[import-untyped]  # only when the model is there

        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != MODEL_SHA256:
            raise ValueError(f"{path}: sha256 {digest} is not smart-turn v3.2's")
        so = ort.SessionOptions()
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.inter_op_num_threads = 1
        so.intra_op_num_threads = 1  # 2 cores run a whole call's STT/TTS too: never take both
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session: Any = ort.InferenceSession(data, sess_options=so, providers=["CPUExecutionProvider"])
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smart-turn")
        self.last_cpu_ms = 0.0  # CPU time of the last judgement (features + model), for benchmarks

    def probability(self, pcm: bytes, sample_rate: int) -> float:
        """Blocking: P(turn complete) for the turn's audio (L16 mono at `sample_rate`, the last 8 s used)."""
        t0 = time.thread_time()
        x = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        x = x[-sample_rate * 8 :]
        if sample_rate != RATE:
            import soxr

            x = soxr.resample(x, sample_rate, RATE, quality="HQ").astype(np.float32)
        features = log_mel(fit_window(x))[np.newaxis]
        out = self._session.run(None, {"input_features": features})
        self.last_cpu_ms = (time.thread_time() - t0) * 1000
        return float(np.asarray(out[0]).reshape(-1)[0])

    async def complete_probability(self, pcm: bytes, sample_rate: int) -> float:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.probability, pcm, sample_rate)

    def warm_up(self) -> None:
        """The first run pays onnxruntime's allocations (~2x a later one): not on a caller's turn."""
        self.probability(b"\0\0" * 8000, 8000)


@functools.cache
def load_turn_model() -> SmartTurnModel | None:
    """The process's smart-turn model, loaded once; None (silence timer only) when not installed or unusable."""
    path = model_path()
    if path is None:
        log.info("smart-turn model not installed (%s): turns end on the silence timer", default_path())
        return None
    try:
        model = SmartTurnModel(path)
        model.warm_up()
    except Exception as e:  # a broken install must not take the agent down: the timer still works
        log.warning("smart-turn model not usable, turns end on the silence timer: %s", e)
        return None
    return model
