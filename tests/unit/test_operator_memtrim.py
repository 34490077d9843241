"""memtrim hands freed heap back to the OS where glibc offers malloc_trim, and is a no-op elsewhere."""

from __future__ import annotations

import ctypes.util
import platform

from storeagent.operator import memtrim


def test_trim_runs_where_glibc_is_and_never_raises() -> None:
    done = memtrim.trim()
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc" and ctypes.util.find_library("c"):
        assert done is True
    assert memtrim.trim() is done  # the same answer every time (the library is looked up once)
