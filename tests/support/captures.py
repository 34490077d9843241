"""Reader for the real FreeSWITCH recordings in tests/data/freeswitch-1.10.12 (format: that folder's README).

Each record is `=== <DIRECTION> t=<seconds> len=<bytes>\\n` followed by exactly `len` raw bytes; DIRECTION is
`AGENT->FS`, `FS->AGENT`, or an `END`/`END2` note about how the capture stopped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

CAPTURES = Path(__file__).resolve().parents[1] / "data" / "freeswitch-1.10.12"
ESL_CAPTURES = (
    "esl-outbound-json-agent-hangs-up.txt",
    "esl-outbound-json-dtmf-caller-hangs-up.txt",
    "esl-outbound-plain-bgapi-utf8-exit.txt",
)
AGENT_TO_FS = "AGENT->FS"
FS_TO_AGENT = "FS->AGENT"

_HEAD = re.compile(rb"=== (\S+) t=([0-9.]+) len=([0-9]+)\n")


@dataclass(frozen=True, slots=True)
class Record:
    direction: str
    t: float
    data: bytes


TRANSFER_CAPTURES = Path(__file__).resolve().parents[1] / "data" / "freeswitch-1.10.12-transfer"


def read_capture(name: str, folder: Path = CAPTURES) -> list[Record]:
    raw = (folder / name).read_bytes()
    records: list[Record] = []
    pos = 0
    while True:
        m = _HEAD.search(raw, pos)
        if m is None:
            break
        if raw[pos : m.start()].strip(b"\n"):
            raise ValueError(f"{name}: unexpected bytes before record at offset {m.start()}")
        length = int(m.group(3))
        data = raw[m.end() : m.end() + length]
        if len(data) != length:
            raise ValueError(f"{name}: record at offset {m.start()} is truncated")
        records.append(Record(m.group(1).decode(), float(m.group(2)), data))
        pos = m.end() + length
    if not records:
        raise ValueError(f"{name}: no records")
    return records


def fs_bytes(records: list[Record]) -> list[bytes]:
    return [r.data for r in records if r.direction == FS_TO_AGENT]


def agent_bytes(records: list[Record]) -> list[bytes]:
    return [r.data for r in records if r.direction == AGENT_TO_FS]
