"""The worker processes behind the speech service: spawn, route streams, admit or refuse, restart the dead.

Why processes and not threads: the engines' inference is CPU-bound Python/C that holds the GIL for long stretches;
in the I/O process it would delay every stream's frames (the agent saw 2.6 s of loop lag with 10 calls). Each
worker has its own interpreter, loads the models once and serves many streams; the I/O process relays bytes.

Admission: a new stream goes to the live worker with the fewest streams, unless every worker is at
`max_streams_per_worker` or is behind (a request waited more than `saturation_s` for it in the last 3 s; its loop
lag is exported but not used: a shop's first decoder build holds the GIL for ~1 s without the worker being full):
then `Saturated` is raised and the client is refused with a retryable error, so the agent falls back at once
instead of waiting in a queue that would only make every call late.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from storeagent.speech import protocol as p

log = logging.getLogger("storeagent.speech.pool")
LOAD_WINDOW_S = 3.0  # how long a worker's late reading keeps it out of admission


class Saturated(Exception):
    """No worker can take a stream now; `reason` is a metric label (streams|behind|no_worker)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class StreamSink(Protocol):
    """The websocket side of one stream; called on the pool's reader task, so it must not block."""

    def control(self, msg: dict[str, Any]) -> None: ...

    def audio(self, pcm: bytes) -> None: ...

    def lost(self) -> None: ...


class Observer(Protocol):
    def observe(self, name: str, kind: str, value: float) -> None: ...

    def worker_stats(self, index: int, stats: dict[str, Any]) -> None: ...

    def worker_exit(self, index: int, returncode: int | None) -> None: ...


@dataclass
class WorkerHandle:
    index: int
    proc: asyncio.subprocess.Process
    streams: dict[int, StreamSink] = field(default_factory=dict)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    late_until: float = 0.0  # monotonic: behind until then
    pid: int = 0

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None and self.ready.is_set()

    def send(self, frame: bytes) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.write(frame)


@dataclass(frozen=True)
class StreamHandle:
    sid: int
    worker: WorkerHandle


class WorkerPool:
    def __init__(self, workers: int, *, max_streams_per_worker: int, saturation_s: float, observer: Observer,
                 argv: list[str] | None = None, env: dict[str, str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.size = workers
        self.max_streams = max_streams_per_worker
        self.saturation_s = saturation_s
        self.observer = observer
        self.argv = argv or [sys.executable, "-m", "storeagent.speech.worker"]
        self.env = env
        self.clock = clock
        self.workers: list[WorkerHandle | None] = [None] * workers
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    # ------------------------------------------------------------------ lifecycle
    async def start(self, ready_timeout: float = 120.0) -> None:
        for i in range(self.size):
            await self._spawn(i)
        async with asyncio.timeout(ready_timeout):
            for w in self.workers:
                assert w is not None
                await w.ready.wait()

    async def _spawn(self, index: int) -> WorkerHandle:
        proc = await asyncio.create_subprocess_exec(
            *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=self.env,
            limit=p.PIPE_MAX)
        w = WorkerHandle(index, proc, pid=proc.pid)
        self.workers[index] = w
        task = asyncio.create_task(self._read(w), name=f"speech-worker-{index}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return w

    async def close(self) -> None:
        self._closing = True
        for w in self.workers:
            if w is not None and w.proc.returncode is None:
                if w.proc.stdin is not None:
                    w.proc.stdin.close()
                with contextlib.suppress(ProcessLookupError):
                    w.proc.terminate()
        for w in self.workers:
            if w is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(w.proc.wait(), 5.0)
                if w.proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        w.proc.kill()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # ------------------------------------------------------------------ streams
    def live(self) -> list[WorkerHandle]:
        return [w for w in self.workers if w is not None and w.alive]

    def streams(self) -> int:
        return sum(len(w.streams) for w in self.workers if w is not None)

    def admit(self) -> WorkerHandle:
        live = self.live()
        if not live:
            raise Saturated("no_worker", "no speech worker is running (starting or restarting)")
        now = self.clock()
        fit = [w for w in live if len(w.streams) < self.max_streams and w.late_until <= now]
        if not fit:
            if all(len(w.streams) >= self.max_streams for w in live):
                raise Saturated("streams", f"all {len(live)} workers serve {self.max_streams} streams")
            raise Saturated("behind", f"workers are more than {self.saturation_s:g} s behind")
        return min(fit, key=lambda w: len(w.streams))

    def open(self, kind: str, start: dict[str, Any], sink: StreamSink) -> StreamHandle:
        """Admit and open a stream (the worker answers `ready` or `error` to the sink); raises Saturated."""
        w = self.admit()
        sid = next(self._ids)
        w.streams[sid] = sink
        w.send(p.pipe_control(sid, {**start, "type": "open", "kind": kind}))
        return StreamHandle(sid, w)

    def audio(self, h: StreamHandle, pcm: bytes) -> None:
        h.worker.send(p.pipe_frame(p.KIND_AUDIO, h.sid, pcm))

    def control(self, h: StreamHandle, msg: dict[str, Any]) -> None:
        h.worker.send(p.pipe_control(h.sid, msg))

    def close_stream(self, h: StreamHandle) -> None:
        if h.worker.streams.pop(h.sid, None) is not None:
            h.worker.send(p.pipe_control(h.sid, {"type": "close"}))

    # ------------------------------------------------------------------ worker output
    async def _read(self, w: WorkerHandle) -> None:
        out = w.proc.stdout
        assert out is not None
        try:
            while True:
                header = await out.readexactly(p.PIPE_HEADER.size)
                length, kind, sid = p.PIPE_HEADER.unpack(header)
                if not 5 <= length <= p.PIPE_MAX:
                    log.error("worker %d sent a frame of %d bytes: restarting it", w.index, length)
                    break
                payload = await out.readexactly(length - 5)
                if sid == 0:
                    self._worker_message(w, p.decode(payload))
                    continue
                sink = w.streams.get(sid)
                if sink is None:
                    continue  # a stream closed while its output was in the pipe
                if kind == p.KIND_AUDIO:
                    sink.audio(payload)
                else:
                    sink.control(p.decode(payload))
        except (asyncio.IncompleteReadError, ConnectionError, p.BadMessage) as e:
            log.debug("worker %d pipe ended: %r", w.index, e)
        finally:
            await self._lost(w)

    def _worker_message(self, w: WorkerHandle, msg: dict[str, Any]) -> None:
        t = msg.get("type")
        if t == "observe":
            value = float(msg["value"])
            self.observer.observe(str(msg["name"]), str(msg["kind"]), value)
            if msg["name"] == "queue_wait" and value > self.saturation_s:
                self._late(w, f"{msg['kind']} queue wait {value:.2f} s")
        elif t == "stats":
            self.observer.worker_stats(w.index, msg)
        elif t == "ready":
            log.info("speech worker %d ready (pid %s)", w.index, msg.get("pid"))
            w.ready.set()

    def _late(self, w: WorkerHandle, why: str) -> None:
        if w.late_until <= self.clock():
            log.info("speech worker %d is behind (%s): no new streams for %g s", w.index, why, LOAD_WINDOW_S)
        w.late_until = self.clock() + LOAD_WINDOW_S

    async def _lost(self, w: WorkerHandle) -> None:
        """The worker died (killed, OOM, crashed): its streams fail at once (retryable), a new worker starts."""
        with contextlib.suppress(ProcessLookupError):
            if w.proc.returncode is None:
                w.proc.kill()
        await w.proc.wait()
        sinks, w.streams = list(w.streams.values()), {}
        for sink in sinks:
            sink.lost()
        self.observer.worker_exit(w.index, w.proc.returncode)
        if self._closing:
            return
        log.warning("speech worker %d (pid %d) exited with %s: %d streams failed over, restarting",
                    w.index, w.pid, w.proc.returncode, len(sinks))
        await asyncio.sleep(0.5)  # a worker that dies at start must not spin the CPU
        if not self._closing:
            await self._spawn(w.index)


def cpu_budget(cgroup_root: str = "/sys/fs/cgroup") -> float:
    """CPUs this process may use: the cgroup quota (v2 cpu.max or v1 cfs quota/period) capped by affinity."""
    cpus = float(len(os.sched_getaffinity(0)))
    quota: float | None = None
    try:
        with open(f"{cgroup_root}/cpu.max") as f:
            q, period = f.read().split()
            if q != "max":
                quota = int(q) / int(period)
    except (OSError, ValueError):
        try:
            with open(f"{cgroup_root}/cpu/cpu.cfs_quota_us") as f:
                q_us = int(f.read())
            with open(f"{cgroup_root}/cpu/cpu.cfs_period_us") as f:
                period_us = int(f.read())
            if q_us > 0 and period_us > 0:
                quota = q_us / period_us
        except (OSError, ValueError):
            pass
    return min(cpus, quota) if quota is not None else cpus
