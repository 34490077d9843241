"""The speech service's wire contract (docs/speech-protocol.md), pure: no sockets, no engines.

Two websocket endpoints, one stream per connection:
- `/v1/stt`: the client sends one `start` text frame, then binary L16 audio and `finalize` text frames; the server
  answers `ready` (or `error` and closes), then `transcript` / `speech_started` / `utterance_end` / `error`.
- `/v1/tts`: `start`, then `speak {id, text}` and `cancel {id}`; the server streams binary L16 for the utterance
  being spoken and ends each with `done {id}` (or `cancelled {id}`).
Both sides of the agent and the service import this module; it imports nothing of either.

Also here: the framing between the service's I/O process and its worker processes (stdin/stdout pipes), so one
module holds every byte layout the service relies on.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any, Literal

PROTOCOL_VERSION = 1
SAMPLE_RATES = (8000, 16000)
LANGUAGE_RE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
MAX_PHRASES = 2000  # a shop's caller phrases (menu, FAQ): a few hundred in practice
MAX_PHRASE_CHARS = 200
MAX_VOCABULARY = 500  # the shop's own names (its name, items, street): Whisper's prompt
MAX_WORD_CHARS = 100
MAX_TEXT_CHARS = 2000  # one TTS clause; the agent sends clauses of a sentence or two
MAX_ALTERNATIVES = 8  # a final's other readings the agent keeps (Whisper sends its beam's next 4)
MAX_CONTROL_BYTES = 256 * 1024  # a start frame with every phrase fits comfortably
MAX_AUDIO_BYTES = 16000 * 2  # one binary frame: 1 s at 16 kHz; the agent sends 100 ms
# Close codes (RFC 6455 section 7.4): 1013 "Try Again Later" when saturated, 1008 policy violation for bad input.
CLOSE_TRY_AGAIN = 1013
CLOSE_BAD_INPUT = 1008
CLOSE_INTERNAL = 1011

ErrorCode = Literal["saturated", "bad_request", "unsupported", "worker_lost", "engine", "shutting_down"]
RETRYABLE: dict[str, bool] = {"saturated": True, "bad_request": False, "unsupported": False, "worker_lost": True,
                              "engine": True, "shutting_down": True}


class BadMessage(ValueError):
    """A frame that breaks the contract: the message names the field and the reason."""


@dataclass(frozen=True, slots=True)
class StartSTT:
    sample_rate: int
    language: str
    phrases: tuple[str, ...] = ()
    interim: bool = False
    vocabulary: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StartTTS:
    sample_rate: int
    language: str


def error(code: ErrorCode, message: str) -> str:
    return json.dumps({"type": "error", "code": code, "retryable": RETRYABLE[code], "message": message})


def encode(msg: dict[str, Any]) -> str:
    return json.dumps(msg, separators=(",", ":"))


def decode(text: str | bytes) -> dict[str, Any]:
    """A JSON object with a string `type`, or BadMessage."""
    if len(text) > MAX_CONTROL_BYTES:
        raise BadMessage(f"control frame of {len(text)} bytes exceeds {MAX_CONTROL_BYTES}")
    try:
        msg = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadMessage(f"not JSON: {e}") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise BadMessage("a control frame is a JSON object with a string 'type'")
    return msg


def _common(msg: dict[str, Any]) -> tuple[int, str]:
    rate = msg.get("sample_rate")
    if type(rate) is not int or rate not in SAMPLE_RATES:
        raise BadMessage(f"sample_rate: must be one of {SAMPLE_RATES}, got {rate!r}")
    lang = msg.get("language", "en-US")
    if not isinstance(lang, str) or not 1 <= len(lang) <= 35 or not set(lang) <= LANGUAGE_RE_CHARS:
        raise BadMessage(f"language: a BCP-47 tag such as en-US, got {str(lang)[:40]!r}")
    if msg.get("encoding", "L16") != "L16":
        raise BadMessage(f"encoding: only L16 (signed 16-bit little-endian mono), got {msg.get('encoding')!r}")
    return rate, lang


def _strings(msg: dict[str, Any], field: str, most: int, chars: int) -> list[str]:
    """An optional list field of at most `most` strings of at most `chars` characters each."""
    items = msg.get(field, [])
    if not isinstance(items, list) or len(items) > most:
        raise BadMessage(f"{field}: a list of at most {most} strings")
    for i, x in enumerate(items):
        if not isinstance(x, str) or len(x) > chars:
            raise BadMessage(f"{field}[{i}]: a string of at most {chars} characters")
    return items


def parse_start_stt(msg: dict[str, Any]) -> StartSTT:
    if msg.get("type") != "start":
        raise BadMessage(f"type: the first frame must be 'start', got {msg.get('type')!r}")
    rate, lang = _common(msg)
    phrases = _strings(msg, "phrases", MAX_PHRASES, MAX_PHRASE_CHARS)
    vocabulary = _strings(msg, "vocabulary", MAX_VOCABULARY, MAX_WORD_CHARS)
    interim = msg.get("interim", False)
    if not isinstance(interim, bool):
        raise BadMessage("interim: true or false")
    return StartSTT(rate, lang, tuple(phrases), interim, tuple(vocabulary))


def parse_start_tts(msg: dict[str, Any]) -> StartTTS:
    if msg.get("type") != "start":
        raise BadMessage(f"type: the first frame must be 'start', got {msg.get('type')!r}")
    rate, lang = _common(msg)
    return StartTTS(rate, lang)


def utterance_id(msg: dict[str, Any]) -> int:
    uid = msg.get("id")
    if type(uid) is not int or not 0 <= uid < 2**31:
        raise BadMessage(f"id: a non-negative integer below 2^31, got {uid!r}")
    return uid


def speak_text(msg: dict[str, Any]) -> str:
    text = msg.get("text")
    if not isinstance(text, str) or len(text) > MAX_TEXT_CHARS:
        raise BadMessage(f"text: a string of at most {MAX_TEXT_CHARS} characters")
    return text


def check_audio(data: bytes) -> None:
    if len(data) % 2 or len(data) > MAX_AUDIO_BYTES:
        raise BadMessage(f"audio frame of {len(data)} bytes: L16 needs an even size up to {MAX_AUDIO_BYTES}")


# ------------------------------------------------------------------------------- I/O process <-> worker pipe
# Frame: u32 length of what follows, u8 kind, u32 stream id, payload. Control payloads are JSON objects.
PIPE_HEADER = struct.Struct("<IBI")
KIND_CONTROL = 1
KIND_AUDIO = 2
PIPE_MAX = 1 << 20  # a worker frame larger than this is a bug: the reader stops rather than allocating it


def pipe_frame(kind: int, stream: int, payload: bytes) -> bytes:
    return PIPE_HEADER.pack(len(payload) + 5, kind, stream) + payload


def pipe_control(stream: int, msg: dict[str, Any]) -> bytes:
    return pipe_frame(KIND_CONTROL, stream, encode(msg).encode())
