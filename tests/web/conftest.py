"""Fixtures for the owner web: the app on a real port (aiohttp test server), shops on disk or on a real API
server, and a real PostgreSQL from Debian started on 127.0.0.1 with its own data directory."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from storeagent.web.__main__ import build_web
from storeagent.web.app import build_app
from storeagent.web.context import Web
from support.webtest import PG_BIN, file_settings


@pytest.fixture
async def web_env(tmp_path: Path) -> AsyncIterator[tuple[Web, TestClient[object, object]]]:
    w = await build_web(file_settings(tmp_path))
    client: TestClient[object, object] = TestClient(TestServer(build_app(w)))
    await client.start_server()
    try:
        yield w, client
    finally:
        await client.close()
        await w.db.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """A real PostgreSQL server (Debian's postgresql package) on 127.0.0.1; yields its DSN."""
    if not (PG_BIN / "initdb").exists():
        pytest.fail("PostgreSQL is not installed: add `postgresql` to .ci/apt-packages.txt and run `make deps`")
    # Outside pytest's tmp tree: that is private to root (0700) and the server runs as the package's user.
    base = Path(tempfile.mkdtemp(prefix="storeagent-web-pg-"))
    data = base / "data"
    user = "postgres"
    run_as: dict[str, object] = {}
    if os.geteuid() == 0:  # initdb refuses to run as root: the package's own user runs the server
        pw = pwd.getpwnam(user)
        os.chown(base, pw.pw_uid, pw.pw_gid)
        base.chmod(0o755)
        run_as = {"user": pw.pw_uid, "group": pw.pw_gid}
    subprocess.run([str(PG_BIN / "initdb"), "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True, **run_as)  # type: ignore[call-overload]
    port = _free_port()
    log = data.parent / "pg.log"
    proc = subprocess.Popen([str(PG_BIN / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port),
                             "-k", str(data.parent), "-c", "fsync=off"], stdout=open(log, "ab"),
                            stderr=subprocess.STDOUT, **run_as)  # type: ignore[call-overload]
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            r = subprocess.run([str(PG_BIN.parent / "bin" / "pg_ctl"), "status", "-D", str(data)],
                               capture_output=True, **run_as)  # type: ignore[call-overload]
            if r.returncode == 0:
                break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"postgres did not start: {log.read_text()[-2000:]}")
        time.sleep(0.2)
    try:
        yield f"postgresql://{user}@127.0.0.1:{port}/postgres"
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(base, ignore_errors=True)
