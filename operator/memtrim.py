"""Hand freed heap memory back to the OS once a burst is over (glibc's malloc_trim; elsewhere a no-op).

A 1,000-shop burst leaves the heap with much more free space than live data (watch events, request and
response bodies of thousands of applies, all freed by then); glibc keeps it for reuse, so the operator's
resident size stayed at its burst peak for good. `malloc_trim(0)` returns the free pages (measured in the
bench: docs/benchmarks.md). It takes milliseconds; called once per stats cycle.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from typing import Any

log = logging.getLogger(__name__)
_libc: list[Any] = []


def _malloc_trim() -> Any:
    if not _libc:
        try:
            lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _libc.append(getattr(lib, "malloc_trim", None))
        except OSError:
            _libc.append(None)
    return _libc[0]


def trim() -> bool:
    """Return free heap pages to the OS; False where the C library has no malloc_trim (musl, macOS)."""
    fn = _malloc_trim()
    if fn is None:
        return False
    try:
        fn(0)
    except Exception:  # never worth failing the caller for
        log.debug("malloc_trim failed", exc_info=True)
        return False
    return True
