"""The log-mel input of the smart-turn v3 model: Whisper's feature extractor over an 8 s window, in numpy.

Reproduces pipecat's `pipecat/audio/turn/smart_turn/_whisper_features.py` (pipecat-ai 1.14.0, BSD-2-Clause,
Copyright (c) 2024-2026 Daily; itself derived from Hugging Face Transformers' WhisperFeatureExtractor and
audio_utils, Apache-2.0, Copyright 2022-2023 The HuggingFace Inc. team), which the model was trained against:
`transformers.WhisperFeatureExtractor(chunk_length=8)(audio, sampling_rate=16000, padding="max_length",
max_length=128000, truncation=True, do_normalize=True)`. The steps and constants must stay exactly these; a
different mel scale or normalization changes the model's judgement silently (tests/unit/test_smart_turn.py
compares this with the wheel's own function when the wheel is in the cache).

Pipeline: last 8 s of 16 kHz audio (zeros *before* a shorter clip) -> zero-mean unit-variance waveform ->
centred (reflect-padded) 400-point periodic-Hann STFT, hop 160 -> power -> 80 Slaney mel filters (0-8 kHz,
Slaney area norm) -> log10 floored at 1e-10 -> drop the last frame -> clamp to max-8 -> (x+4)/4: (80, 800) float32.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

RATE = 16000
WINDOW_S = 8
N_SAMPLES = RATE * WINDOW_S  # 128000
N_FFT = 400
HOP = 160
N_MELS = 80
_MEL_FLOOR = 1e-10
_VAR_EPS = 1e-7

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]


def _hz_to_mel(freq: F64) -> F64:
    """Slaney mel scale: linear below 1 kHz, logarithmic above."""
    mels = 3.0 * freq / 200.0
    log_region = freq >= 1000.0
    mels[log_region] = 15.0 + np.log(freq[log_region] / 1000.0) * (27.0 / np.log(6.4))
    return mels


def _mel_to_hz(mels: F64) -> F64:
    freq = 200.0 * mels / 3.0
    log_region = mels >= 15.0
    freq[log_region] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mels[log_region] - 15.0))
    return freq


def mel_filterbank() -> F64:
    """(201, 80) triangular filters with Slaney area normalization, 0 Hz to Nyquist."""
    bins = N_FFT // 2 + 1
    edges = np.array([0.0, RATE / 2.0], dtype=np.float64)
    mel_min, mel_max = _hz_to_mel(edges.copy())
    filter_freqs = _mel_to_hz(np.linspace(mel_min, mel_max, N_MELS + 2))
    fft_freqs = np.linspace(0, RATE // 2, bins)
    diff = np.diff(filter_freqs)
    slopes = np.expand_dims(filter_freqs, 0) - np.expand_dims(fft_freqs, 1)
    down = -slopes[:, :-2] / diff[:-1]
    up = slopes[:, 2:] / diff[1:]
    filters = np.maximum(np.zeros(1), np.minimum(down, up))
    enorm = 2.0 / (filter_freqs[2 : N_MELS + 2] - filter_freqs[:N_MELS])
    out: F64 = filters * np.expand_dims(enorm, 0)
    return out


_HANN: F64 = np.hanning(N_FFT + 1)[:-1]  # periodic Hann (torch.hann_window)
_MELS: F64 = mel_filterbank()


def fit_window(audio: npt.NDArray[np.floating]) -> F32:
    """The last 8 s of `audio` (16 kHz), zero-padded at the start when shorter (as pipecat feeds the model)."""
    x = np.asarray(audio, dtype=np.float32)
    if x.size >= N_SAMPLES:
        return x[-N_SAMPLES:]
    return np.concatenate([np.zeros(N_SAMPLES - x.size, dtype=np.float32), x])


def log_mel(window: npt.NDArray[np.floating]) -> F32:
    """(80, 800) features of one 8 s window of 16 kHz float audio in [-1, 1] (see the module doc)."""
    x = np.asarray(window, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"expected 1-D audio, got shape {x.shape}")
    if x.size < N_SAMPLES:
        x = np.pad(x, (0, N_SAMPLES - x.size))
    x = x[:N_SAMPLES]
    x = (x - x.mean()) / np.sqrt(x.var() + _VAR_EPS)  # float32, before the spectrogram, as the reference
    pad = N_FFT // 2
    padded = np.pad(x.astype(np.float64), (pad, pad), mode="reflect")
    frames = sliding_window_view(padded, N_FFT)[::HOP]
    power = (np.abs(np.fft.rfft(frames * _HANN, axis=-1)) ** 2).T  # (201, frames)
    spec = np.log10(np.maximum(_MEL_FLOOR, _MELS.T @ power))[:, :-1]
    spec = np.maximum(spec, spec.max() - 8.0)
    out: F32 = ((spec + 4.0) / 4.0).astype(np.float32)
    return out
