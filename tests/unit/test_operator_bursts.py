"""Bursts of new shops: memtrim hands freed heap back to the OS (glibc malloc_trim, a no-op elsewhere), and the
number of shops writing children at once is bounded and configurable."""

from __future__ import annotations

import ctypes.util
import platform

from storeagent.operator import memtrim


def test_trim_runs_where_glibc_is_and_never_raises() -> None:
    done = memtrim.trim()
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc" and ctypes.util.find_library("c"):
        assert done is True
    assert memtrim.trim() is done  # the same answer every time (the library is looked up once)


def test_concurrent_shop_writes_defaults_to_the_clients_connections_and_is_a_flag() -> None:
    from storeagent.operator.settings import parse

    assert parse([], env={})[0].concurrent_shop_writes == 32
    assert parse(["--concurrent-shop-writes", "64"], env={})[0].concurrent_shop_writes == 64
    assert parse(["--concurrent-shop-writes", "0"], env={})[0].concurrent_shop_writes == 1  # never none at all
