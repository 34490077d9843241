"""G.711 µ-law to L16, for TTS output requested as `ulaw_8000` on 8 kHz calls.

Providers must not import the transport package (import-linter), and decoding needs only this 256-entry
table, so it lives here rather than being shared with `transport.codec`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def _decode_table() -> npt.NDArray[np.int16]:
    u = ~np.arange(256, dtype=np.int32) & 0xFF  # µ-law bytes are stored inverted
    exponent = (u >> 4) & 0x07
    magnitude = (((u & 0x0F) << 3) + 0x84) << exponent
    value = magnitude - 0x84
    return np.where(u & 0x80, -value, value).astype(np.int16)


_TABLE = _decode_table()


def ulaw_to_l16(data: bytes) -> bytes:
    """Each µ-law byte to one signed 16-bit little-endian sample."""
    return _TABLE[np.frombuffer(data, dtype=np.uint8)].astype("<i2").tobytes()
