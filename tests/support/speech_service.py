"""Start the real speech service (`storeagent speech serve`) as its own process on an ephemeral port, and make
real caller speech for tests and the benchmark (piper in this process, a different voice speed from the agent's)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from support.procs import log_tail, terminate


@dataclass
class SpeechProcess:
    proc: subprocess.Popen[str]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def kill(self) -> list[int]:
        """SIGKILL the service's I/O process; its workers must exit on their own. Returns their pids."""
        workers = self.worker_pids()
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        return workers

    @staticmethod
    def alive(pids: list[int], within: float = 5.0) -> list[int]:
        """Which of these processes are still alive after `within` seconds (zombies count as gone)."""
        deadline = time.monotonic() + within
        while True:
            left = [pid for pid in pids if _running(pid)]
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.1)

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True, check=False)
        return [int(x) for x in out.stdout.split()]


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@contextlib.contextmanager
def speech_service(tmp: Path, *args: str, ready_timeout: float = 180.0) -> Iterator[SpeechProcess]:
    log = tmp / "speech-service.log"
    err = log.open("w")
    proc = subprocess.Popen([sys.executable, "-m", "storeagent.speech", "serve", "--host", "127.0.0.1",
                             "--port", "0", *args], stdout=subprocess.PIPE, stderr=err, text=True, cwd=tmp)
    assert proc.stdout is not None
    deadline = time.monotonic() + ready_timeout
    line = ""
    while time.monotonic() < deadline and proc.poll() is None:
        line = proc.stdout.readline()
        if line.startswith("READY"):
            break
    if not line.startswith("READY"):
        terminate(proc, 5)
        raise AssertionError(f"speech service did not start: {log_tail(log)}")
    try:
        yield SpeechProcess(proc, int(line.split()[1]), log)
    finally:
        terminate(proc, 10)
        err.close()


def caller_speech(text: str, rate: int = 8000) -> bytes:
    """A caller's utterance: piper's voice, a little slower than the agent's, at the call's rate."""
    from storeagent.agent.providers._resample import resample
    from storeagent.agent.providers.offline_tts import PiperTTS

    tts = PiperTTS(length_scale=1.1, noise_scale=0.0, noise_w_scale=0.0, volume=0.6)
    voice = tts.load()
    from piper import SynthesisConfig

    cfg = SynthesisConfig(length_scale=1.1, noise_scale=0.0, noise_w_scale=0.0, volume=0.6)
    pcm = b"".join(bytes(c.audio_int16_bytes) for c in voice.synthesize(text, cfg))
    return resample(pcm, int(voice.config.sample_rate), rate)
