"""The speech service's pure parts: frame validation (naming the field), the worker pipe framing, admission,
CPU sizing from cgroups, and the agent's provider choice `speech`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from storeagent.agent.metrics import AgentMetrics
from storeagent.agent.providers.factory import OfflineProviders, build_providers
from storeagent.agent.providers.scripted import ScriptedLLM, ScriptedSTT, ScriptedTTS
from storeagent.agent.providers.speech import SpeechSTT, SpeechTTS, refused
from storeagent.agent.secrets import Secrets
from storeagent.shop import Providers, shop_config_from_manifest
from storeagent.speech import protocol as p
from storeagent.speech.pool import Saturated, WorkerPool, cpu_budget

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("msg,field", [
    ({"type": "start", "sample_rate": 44100}, "sample_rate"),
    ({"type": "start", "sample_rate": "8000"}, "sample_rate"),
    ({"type": "start", "sample_rate": 8000, "language": "en US; rm"}, "language"),
    ({"type": "start", "sample_rate": 8000, "encoding": "opus"}, "encoding"),
    ({"type": "start", "sample_rate": 8000, "phrases": ["x" * 201]}, "phrases[0]"),
    ({"type": "start", "sample_rate": 8000, "phrases": "bread"}, "phrases"),
    ({"type": "start", "sample_rate": 8000, "vocabulary": "Sunrise"}, "vocabulary"),
    ({"type": "start", "sample_rate": 8000, "vocabulary": ["x" * 101]}, "vocabulary[0]"),
    ({"type": "start", "sample_rate": 8000, "vocabulary": ["x"] * 501}, "vocabulary"),
    ({"type": "hello", "sample_rate": 8000}, "type"),
])
def test_bad_start_names_the_field(msg: dict[str, Any], field: str) -> None:
    with pytest.raises(p.BadMessage, match=field.replace("[", r"\[")):
        p.parse_start_stt(msg)


def test_good_start_and_controls() -> None:
    s = p.parse_start_stt(p.decode(json.dumps({"type": "start", "sample_rate": 16000, "language": "en-GB",
                                               "phrases": ["rye bread"], "vocabulary": ["Sunrise"]})))
    assert (s.sample_rate, s.language, s.phrases, s.vocabulary) == (16000, "en-GB", ("rye bread",), ("Sunrise",))
    assert p.parse_start_stt({"type": "start", "sample_rate": 8000}).vocabulary == ()  # optional: older agents
    assert p.parse_start_tts({"type": "start", "sample_rate": 8000}).language == "en-US"
    assert p.utterance_id({"id": 3}) == 3
    for bad in ({"id": -1}, {"id": True}, {"id": 2**31}, {}):
        with pytest.raises(p.BadMessage, match="id"):
            p.utterance_id(bad)
    with pytest.raises(p.BadMessage, match="text"):
        p.speak_text({"text": "x" * (p.MAX_TEXT_CHARS + 1)})
    for bad_json in ("{", "[]", '{"type": 1}', "x" * (p.MAX_CONTROL_BYTES + 1)):
        with pytest.raises(p.BadMessage):
            p.decode(bad_json)
    with pytest.raises(p.BadMessage):
        p.check_audio(b"\x00" * 3)
    p.check_audio(b"\x00" * 1600)


def test_pipe_frames_round_trip() -> None:
    frame = p.pipe_control(7, {"type": "finalize"})
    length, kind, sid = p.PIPE_HEADER.unpack(frame[: p.PIPE_HEADER.size])
    assert (kind, sid, length) == (p.KIND_CONTROL, 7, len(frame) - 4)
    assert p.decode(frame[p.PIPE_HEADER.size:]) == {"type": "finalize"}


def test_refusals_are_retryable_errors_with_a_kind() -> None:
    err = refused("speech", json.loads(p.error("saturated", "all workers busy")))
    assert err.kind == "saturated" and err.retryable
    assert not refused("speech", json.loads(p.error("unsupported", "ko"))).retryable


class _Obs:
    def observe(self, name: str, kind: str, value: float) -> None: ...
    def worker_stats(self, index: int, stats: dict[str, Any]) -> None: ...
    def worker_exit(self, index: int, returncode: int | None) -> None: ...


class _Proc:
    returncode = None


async def test_admission_picks_the_least_loaded_and_refuses_when_full_or_behind() -> None:
    now = [100.0]
    pool = WorkerPool(2, max_streams_per_worker=2, saturation_s=1.0, observer=_Obs(), clock=lambda: now[0])
    from storeagent.speech.pool import WorkerHandle

    a, b = (WorkerHandle(i, _Proc()) for i in range(2))  # type: ignore[arg-type]
    for w in (a, b):
        w.ready.set()
    pool.workers = [a, b]
    with pytest.raises(Saturated) as e:
        WorkerPool(1, max_streams_per_worker=1, saturation_s=1, observer=_Obs()).admit()
    assert e.value.reason == "no_worker"
    a.streams = {1: object()}  # type: ignore[dict-item]
    assert pool.admit() is b
    pool._worker_message(b, {"type": "observe", "name": "queue_wait", "kind": "stt", "value": 1.5})
    assert pool.admit() is a  # b is behind for a while
    a.streams = {1: object(), 2: object()}  # type: ignore[dict-item]
    with pytest.raises(Saturated) as e:
        pool.admit()
    assert e.value.reason == "behind"
    now[0] += 4
    assert pool.admit() is b
    b.streams = {3: object(), 4: object()}  # type: ignore[dict-item]
    with pytest.raises(Saturated) as e:
        pool.admit()
    assert e.value.reason == "streams"
    await asyncio.sleep(0)


def test_cpu_budget_reads_cgroup_quota(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cpu_budget(str(tmp_path)) == min(1.5, cpu_budget("/nonexistent"))
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cpu_budget(str(tmp_path)) == 0.5
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cpu_budget(str(tmp_path)) == cpu_budget("/nonexistent")


def _shop(providers: dict[str, Any]) -> Any:
    doc = yaml.safe_load((EXAMPLES / "sunrise-bakery.yaml").read_text())
    doc["spec"]["providers"] = providers
    return shop_config_from_manifest(doc)


def test_factory_puts_the_speech_service_before_the_in_process_engines() -> None:
    shop = _shop({"stt": {"name": "speech"}, "tts": {"name": "speech"}})
    off = OfflineProviders(stt=[ScriptedSTT(name="offline")], llm=[ScriptedLLM(name="offline")],
                           tts=[ScriptedTTS(name="offline")])
    p_ = build_providers(shop, AgentMetrics("s"), secrets=Secrets.from_env({}), offline=off,
                         speech_url="ws://speech.storeagent-system.svc:8090")
    stt, tts = p_.stt.providers, p_.tts.providers  # type: ignore[attr-defined]
    assert [type(x) for x in stt] == [SpeechSTT, ScriptedSTT]
    assert [type(x) for x in tts] == [SpeechTTS, ScriptedTTS]
    assert "sourdough" in " ".join(stt[0].phrases)  # the shop's phrases and its names go to the service
    assert {"Sunrise Bakery", "croissant"} <= set(stt[0].vocabulary)
    # no platform speech service: the shop still answers, in-process
    p_ = build_providers(shop, AgentMetrics("s"), secrets=Secrets.from_env({}), offline=off)
    assert [x.name for x in p_.stt.providers] == ["offline"]  # type: ignore[attr-defined]


def test_speech_is_not_an_llm() -> None:
    with pytest.raises(ValidationError, match="speech service serves stt and tts only"):
        Providers.model_validate({"llm": {"name": "openai", "fallbacks": [{"name": "speech"}]}})
    assert Providers.model_validate({"stt": {"name": "speech"}}).uses("speech")
