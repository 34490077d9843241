"""The pure halves of the cloud adapters: vendor JSON -> port events, error classification, audio decoding."""

from __future__ import annotations

import base64

import pytest

from storeagent.agent.errors import ProviderError
from storeagent.agent.ports import AudioFormat, SpeechStarted, TextDelta, ToolCall, Transcript, UtteranceEnd
from storeagent.agent.providers.deepgram_stt import classify_close, deepgram_language, translate_deepgram
from storeagent.agent.providers.elevenlabs_tts import (
    AudioDecoder,
    stream_input_query,
    translate_elevenlabs,
)
from storeagent.agent.providers.elevenlabs_tts import (
    classify_close as el_close,
)
from storeagent.agent.providers.mulaw import ulaw_to_l16
from storeagent.agent.providers.openai_llm import ToolCallAssembler, translate_chunk


def results(text: str, *, final: bool, speech_final: bool = False) -> dict[str, object]:
    return {"type": "Results", "is_final": final, "speech_final": speech_final,
            "channel": {"alternatives": [{"transcript": text, "confidence": 0.9}]}}


def test_deepgram_messages_map_to_port_events() -> None:
    assert translate_deepgram({"type": "SpeechStarted", "channel": [0], "timestamp": 0.2}) == [SpeechStarted()]
    assert translate_deepgram({"type": "UtteranceEnd", "last_word_end": 1.0}) == [UtteranceEnd()]
    assert translate_deepgram({"type": "Metadata", "request_id": "x"}) == []
    assert translate_deepgram(results("", final=False)) == []  # empty interim: nothing
    assert translate_deepgram(results("", final=True)) == [Transcript("", True, 0.9)]
    assert translate_deepgram(results(" 치킨 한 마리 ", final=True, speech_final=True)) == [
        Transcript("치킨 한 마리", True, 0.9), UtteranceEnd()]
    assert translate_deepgram({"type": "Results", "channel": {"alternatives": []}}) == []


def test_deepgram_language_and_close_codes() -> None:
    assert deepgram_language("ko-KR") == "ko" and deepgram_language("en-US") == "en"
    with pytest.raises(ProviderError):
        deepgram_language("12")
    assert classify_close(1011, "NET-0001").retryable
    assert not classify_close(1008, "DATA-0000").retryable
    assert classify_close(None, "").kind == "connect"


def test_openai_tool_fragments_join_by_index_even_interleaved() -> None:
    asm = ToolCallAssembler()

    def chunk(delta: dict[str, object], finish: str | None = None) -> dict[str, object]:
        return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    out = []
    for c in [
        chunk({"content": "잠시만요. "}),
        chunk({"tool_calls": [{"index": 0, "id": "call_a", "function": {"name": "menu_lookup", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 1, "id": "call_b", "function": {"name": "opening_hours"}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"item": "양'}}]}),
        chunk({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '념"}'}}]}),
        chunk({}, "tool_calls"),
    ]:
        out += translate_chunk(c, asm)
    assert out == [TextDelta("잠시만요. "), ToolCall("call_a", "menu_lookup", '{"item": "양념"}'),
                   ToolCall("call_b", "opening_hours", "{}")]


def test_elevenlabs_messages_errors_and_formats() -> None:
    audio = base64.b64encode(b"\x01\x02\x03").decode()
    assert translate_elevenlabs({"audio": audio, "isFinal": None}) == (b"\x01\x02\x03", False)
    assert translate_elevenlabs({"isFinal": True}) == (b"", True)
    with pytest.raises(ProviderError) as e:
        translate_elevenlabs({"message": "Invalid API key", "error": "invalid_api_key", "code": 1008})
    assert e.value.kind == "auth" and not e.value.retryable
    assert el_close(1008, "Have not received a new text input within the timeout").kind == "bad_request"
    assert el_close(1011, "internal").retryable
    assert stream_input_query("eleven_multilingual_v2", AudioFormat(8000), "ko-KR") == {
        "model_id": "eleven_multilingual_v2", "output_format": "ulaw_8000"}
    assert stream_input_query("eleven_flash_v2_5", AudioFormat(16000), "ko-KR")["language_code"] == "ko"
    with pytest.raises(ProviderError):
        stream_input_query("eleven_flash_v2_5", AudioFormat(48000), "en")


def test_audio_decoder_realigns_pcm_and_decodes_ulaw() -> None:
    pcm = AudioDecoder(AudioFormat(16000))
    assert pcm.feed(b"\x01\x02\x03") == b"\x01\x02"
    assert pcm.feed(b"\x04") == b"\x03\x04"
    ulaw = AudioDecoder(AudioFormat(8000))
    assert ulaw.feed(b"\xff\x7f\x00\x80") == ulaw_to_l16(b"\xff\x7f\x00\x80")
    decoded = ulaw_to_l16(b"\xff\x00\x80")
    assert decoded[:2] == b"\x00\x00"  # 0xFF is +0
    assert int.from_bytes(decoded[2:4], "little", signed=True) == -32124  # 0x00: the most negative level
    assert int.from_bytes(decoded[4:6], "little", signed=True) == 32124
