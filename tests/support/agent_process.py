"""The real agent as a child process (`storeagent agent serve --providers offline`) on free 127.0.0.1 ports, and
loopback calls into it: what the operator's status timer reads in the control-plane tests.

Offline providers need no network; the offline STT is slow on a loaded machine, so turns get generous timeouts.
A turn is a real spoken question (espeak-ng): the offline recognizer (Whisper) hears nothing in a tone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from storeagent.agent.loopback.caller import LoopbackCall
from storeagent.agent.loopback.demo import synthesize
from storeagent.agent.providers.offline_tts import EspeakTTS
from support.audio import silence
from support.controlplane import _die_with_parent, free_port
from support.procs import log_tail, terminate

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "sunrise-bakery.yaml"
TURN_TIMEOUT_S = 120.0  # offline STT + LLM + TTS on a shared 2-core machine


class AgentProcess:
    """`with AgentProcess(workdir) as agent: agent.stats()`; ports are chosen free and retried if taken."""

    def __init__(self, workdir: Path, config: Path = EXAMPLE) -> None:
        self.workdir = workdir
        self.config = config
        self.log_path = workdir / "agent.log"
        self.esl_port = 0
        self.http_port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def stats_address(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    def start(self, timeout_s: float = 60) -> AgentProcess:
        for _ in range(3):  # a free port can be taken by another process before the agent binds it
            self.esl_port, self.http_port = free_port(), free_port()
            if self._start_once(timeout_s):
                return self
        raise RuntimeError(f"the agent did not become ready; log tail:\n{self.log_tail()}")

    def _start_once(self, timeout_s: float) -> bool:
        exe = Path(sys.executable).parent / "storeagent"
        cmd = [str(exe), "agent", "serve", "--config", str(self.config), "--host", "127.0.0.1",
               "--esl-port", str(self.esl_port), "--http-port", str(self.http_port),
               "--advertise-host", "127.0.0.1", "--providers", "offline", "--log-format", "json"]
        env = {**os.environ, "STOREAGENT_DATA_DIR": str(self.workdir / "data")}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env, start_new_session=True, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"http://{self.stats_address}/readyz", timeout=2):
                    return True
            except (OSError, urllib.error.URLError):
                time.sleep(0.2)
        self.stop()
        return False

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://{self.stats_address}/v1/stats", timeout=5) as r:
            out: dict[str, Any] = json.load(r)
            return out

    def stop(self) -> None:
        terminate(self.proc)  # SIGTERM drains (no live calls are left by then), SIGKILL after 20 s

    def log_tail(self, n: int = 4000) -> str:
        return log_tail(self.log_path, n)

    def __enter__(self) -> AgentProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def answered_call(agent: AgentProcess, store: str = "sunrise-bakery") -> LoopbackCall:
    """A call that has heard the greeting; the caller owns it (hang up and close it)."""
    call = LoopbackCall("127.0.0.1", agent.esl_port, store=store)
    await call.start(timeout=30)
    if not await call.wait_agent_done(quiet=0.5, timeout=TURN_TIMEOUT_S):
        await call.close()
        raise AssertionError(f"no greeting from the agent; log tail:\n{agent.log_tail()}")
    return call


async def take_turn(call: LoopbackCall, agent: AgentProcess, rate: int = 8000) -> None:
    """Ask one real question (espeak-ng, not the agent's voice) and wait for the agent's whole answer (one
    voice-to-voice sample). A tone is no question to a recognizer like Whisper: it hears nothing and the agent
    rightly stays silent."""
    question = await synthesize(EspeakTTS(words_per_minute=150), "What time do you open on Saturday?", rate)
    await call.say(silence(200) + question + silence(600))
    if not await call.wait_agent_done(quiet=0.5, timeout=TURN_TIMEOUT_S):
        raise AssertionError(f"the agent never answered the turn; log tail:\n{agent.log_tail()}")


async def end_call(call: LoopbackCall) -> None:
    try:
        await call.hangup()
        await call.wait_ended()
    finally:
        await call.close()
