"""A speech worker process: `python -m storeagent.speech.worker`, started and supervised by the service.

It loads the engines once, then serves many streams over its stdin/stdout pipe (framing in protocol.py) on its own
event loop; the engines' CPU work runs here, so the service's I/O process only relays bytes. Stream 0 carries the
worker's own messages: `ready` after warm-up, `stats` every second, `observe` for metrics.
Logs go to stderr (stdout is the pipe).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from storeagent.agent.errors import ProviderError
from storeagent.agent.ports import AudioFormat, SpeechStarted, STTStream, Transcript, TTSSession, UtteranceEnd
from storeagent.speech import protocol as p
from storeagent.speech.engines import Engines
from storeagent.speech.ttscache import TtsCache, cache_budget

log = logging.getLogger("storeagent.speech.worker")
STATS_EVERY = 1.0


class Out:
    """Frames to the I/O process; a broken pipe means the service is gone and the worker exits."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._w = writer

    def control(self, stream: int, msg: dict[str, Any]) -> None:
        self._w.write(p.pipe_control(stream, msg))

    def audio(self, stream: int, pcm: bytes) -> None:
        self._w.write(p.pipe_frame(p.KIND_AUDIO, stream, pcm))

    def observe(self, name: str, kind: str, value: float) -> None:
        self.control(0, {"type": "observe", "name": name, "kind": kind, "value": value})

    async def drain(self) -> None:
        await self._w.drain()


OpenStt = Callable[[], Awaitable[STTStream]]
OpenTts = Callable[[], Awaitable[TTSSession]]


def _open_failed(out: Out, sid: int, e: ProviderError) -> None:
    code = "unsupported" if e.kind == "bad_request" else "engine"
    out.control(sid, {"type": "error", "code": code, "retryable": e.retryable, "message": str(e)})


class SttSession:
    """Opened in its own task (building a shop's decoder takes ~1 s: the pipe must not wait for it); audio that
    arrives meanwhile waits in the queue."""

    def __init__(self, sid: int, out: Out, opener: OpenStt, fmt: AudioFormat) -> None:
        self.sid, self.out, self.fmt = sid, out, fmt
        self.stream: STTStream | None = None
        self.queue: asyncio.Queue[tuple[str, bytes, float]] = asyncio.Queue()
        self.busy = 0.0  # wall seconds in the engine since the last final: the utterance's compute time
        self.audio = 0
        self.tasks = [asyncio.create_task(self._run(opener))]

    async def _run(self, opener: OpenStt) -> None:
        try:
            self.stream = await opener()
        except ProviderError as e:
            _open_failed(self.out, self.sid, e)
            return
        self.out.control(self.sid, {"type": "ready"})
        self.tasks.append(asyncio.create_task(self._events(self.stream)))
        await self._feed(self.stream)

    def push(self, what: str, pcm: bytes = b"") -> None:
        self.queue.put_nowait((what, pcm, time.monotonic()))

    async def _feed(self, stream: STTStream) -> None:
        while True:
            what, pcm, queued = await self.queue.get()
            start = time.monotonic()
            self.out.observe("queue_wait", "stt", start - queued)
            try:
                if what == "audio":
                    await stream.send(pcm)
                    self.audio += len(pcm)
                else:
                    await stream.finalize()
            except ProviderError as e:
                self.out.control(self.sid, {"type": "error", "code": "engine", "retryable": e.retryable,
                                            "message": str(e)})
                return
            self.busy += time.monotonic() - start
            if what == "finalize":
                self.out.observe("stt_finalize", "stt", time.monotonic() - queued)

    async def _events(self, stream: STTStream) -> None:
        async for ev in stream.events():
            if isinstance(ev, Transcript):
                msg: dict[str, object] = {"type": "transcript", "text": ev.text, "final": ev.is_final,
                                          "confidence": ev.confidence}
                if ev.alternatives:
                    msg["alternatives"] = list(ev.alternatives)
                self.out.control(self.sid, msg)
                if ev.is_final and self.audio:
                    self.out.observe("rtf", "stt", self.busy / self.fmt.seconds(self.audio))
                    self.busy, self.audio = 0.0, 0
            elif isinstance(ev, SpeechStarted):
                self.out.control(self.sid, {"type": "speech_started"})
            elif isinstance(ev, UtteranceEnd):
                self.out.control(self.sid, {"type": "utterance_end"})

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.stream is not None:
            with contextlib.suppress(Exception):
                await self.stream.aclose()


class TtsSession:
    def __init__(self, sid: int, out: Out, opener: OpenTts, fmt: AudioFormat, cache: TtsCache | None = None,
                 language: str = "") -> None:
        self.sid, self.out, self.fmt, self.language = sid, out, fmt, language
        self.cache = TtsCache(0) if cache is None else cache
        self.voice = ""
        self.session: TTSSession | None = None
        self.queue: asyncio.Queue[tuple[int, str, float]] = asyncio.Queue()
        self.current: int | None = None
        self.cancelled: set[int] = set()
        self._synth: asyncio.Task[None] | None = None
        self.task = asyncio.create_task(self._run(opener))

    def speak(self, uid: int, text: str) -> None:
        self.queue.put_nowait((uid, text, time.monotonic()))

    def cancel(self, uid: int) -> None:
        if uid == self.current and self._synth is not None:
            self._synth.cancel()  # at once: the engine's generator is closed mid-clause
        else:
            self.cancelled.add(uid)

    async def _run(self, opener: OpenTts) -> None:
        try:
            self.session = await opener()
        except ProviderError as e:
            _open_failed(self.out, self.sid, e)
            return
        # A fallback voice must not replay the first voice's audio, nor one language's voice another's.
        self.voice = f"{type(self.session).__name__}/{self.language}"
        self.out.control(self.sid, {"type": "ready"})
        while True:
            uid, text, queued = await self.queue.get()
            if uid in self.cancelled:
                self.cancelled.discard(uid)
                self.out.control(self.sid, {"type": "cancelled", "id": uid})
                continue
            self.current = uid
            self.out.observe("queue_wait", "tts", time.monotonic() - queued)
            self._synth = asyncio.create_task(self._speak(self.session, uid, text, queued))
            try:
                await asyncio.shield(self._synth)
            except asyncio.CancelledError:
                if not self._synth.cancelled():
                    raise  # the session itself is closing
                self.out.control(self.sid, {"type": "cancelled", "id": uid})
            finally:
                self.current, self._synth = None, None

    async def _speak(self, session: TTSSession, uid: int, text: str, queued: float) -> None:
        # Real-time factor = synthesis time only: the time spent waiting for the agent to take the audio (drain,
        # paced by its playout) is not the engine's; a cancelled utterance still reports what it synthesized.
        key = (self.voice, self.fmt.sample_rate, text)
        cached = self.cache.get(key)
        if self.cache.budget:
            self.out.observe("tts_cache", "tts", 0.0 if cached is None else 1.0)
        if cached is not None:
            await self._replay(uid, cached, queued)
            return
        busy, produced, first = 0.0, 0, True
        chunks: list[bytes] = []
        t = time.monotonic()
        try:
            async for pcm in session.synthesize(text):
                busy += time.monotonic() - t
                if first:
                    self.out.observe("tts_first_audio", "tts", time.monotonic() - queued)
                    first = False
                produced += len(pcm)
                chunks.append(pcm)
                self.out.audio(self.sid, pcm)
                await self.out.drain()
                t = time.monotonic()
            self.cache.put(key, chunks)  # only reached when the engine finished: a cancel raises out of the loop
        except ProviderError as e:
            self.out.control(self.sid, {"type": "error", "code": "engine", "retryable": e.retryable, "id": uid,
                                        "message": str(e)})
            return
        finally:
            if produced:
                self.out.observe("rtf", "tts", busy / self.fmt.seconds(produced))
        self.out.control(self.sid, {"type": "done", "id": uid})

    async def _replay(self, uid: int, chunks: tuple[bytes, ...], queued: float) -> None:
        self.out.observe("tts_first_audio", "tts", time.monotonic() - queued)
        for pcm in chunks:
            self.out.audio(self.sid, pcm)
            await self.out.drain()  # paced by the agent's playout, as a synthesis is: a cancel lands here
        self.out.control(self.sid, {"type": "done", "id": uid})

    async def close(self) -> None:
        if self._synth is not None:
            self._synth.cancel()
        self.task.cancel()
        await asyncio.gather(self.task, *([self._synth] if self._synth else []), return_exceptions=True)
        if self.session is not None:
            with contextlib.suppress(Exception):
                await self.session.aclose()


Session = SttSession | TtsSession


class Worker:
    def __init__(self, out: Out, engines: Engines) -> None:
        self.out, self.engines = out, engines
        self.tts_cache = TtsCache(cache_budget())  # shared by every shop this worker speaks for
        self.sessions: dict[int, Session] = {}
        self.lag_max = 0.0

    def open(self, sid: int, msg: dict[str, Any]) -> None:
        fmt = AudioFormat(int(msg["sample_rate"]))
        language = str(msg["language"])
        if msg["kind"] == "stt":
            phrases = [str(x) for x in msg.get("phrases", ())]
            vocabulary = [str(x) for x in msg.get("vocabulary", ())]

            async def open_stt() -> STTStream:
                return await self.engines.stt(language, phrases, vocabulary).open(fmt, language)

            self.sessions[sid] = SttSession(sid, self.out, open_stt, fmt)
        else:
            self.sessions[sid] = TtsSession(sid, self.out, lambda: self._open_voice(fmt, language), fmt,
                                            self.tts_cache, language)

    async def _open_voice(self, fmt: AudioFormat, language: str) -> TTSSession:
        last: ProviderError | None = None
        for voice in self.engines.tts(language):
            try:
                return await voice.open(fmt, language)
            except ProviderError as e:
                last = e
        raise last or ProviderError("speech", "bad_request", f"no voice for {language!r}", retryable=False)

    async def handle(self, kind: int, sid: int, payload: bytes) -> None:
        session = self.sessions.get(sid)
        if kind == p.KIND_AUDIO:
            if isinstance(session, SttSession):
                session.push("audio", payload)
            return
        msg = p.decode(payload)
        t = msg["type"]
        if t == "open":
            self.open(sid, msg)
        elif t == "close":
            closing = self.sessions.pop(sid, None)
            if closing is not None:
                await closing.close()
        elif t == "finalize" and isinstance(session, SttSession):
            session.push("finalize")
        elif t == "speak" and isinstance(session, TtsSession):
            session.speak(int(msg["id"]), str(msg["text"]))
        elif t == "cancel" and isinstance(session, TtsSession):
            session.cancel(int(msg["id"]))

    async def stats(self) -> None:
        loop = asyncio.get_running_loop()
        last = time.monotonic()
        parent = os.getppid()
        while True:
            t = loop.time()
            await asyncio.sleep(0.05)
            if os.getppid() != parent:
                # The I/O process is gone (SIGKILL, OOM): EOF on the pipe is not enough, a session stuck in its
                # close would keep the worker (and its 500 MB of models) alive as an orphan. Seen in a test run.
                log.error("the speech service (pid %d) is gone: exiting", parent)
                os._exit(1)
            self.lag_max = max(self.lag_max, loop.time() - t - 0.05)
            if time.monotonic() - last >= STATS_EVERY:
                last = time.monotonic()
                ru = resource.getrusage(resource.RUSAGE_SELF)
                self.out.control(0, {"type": "stats", "lag_s": round(self.lag_max, 4), "streams": len(self.sessions),
                                     "rss_bytes": _rss_bytes(), "cpu_s": ru.ru_utime + ru.ru_stime})
                self.lag_max = 0.0


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


async def serve(stdin_fd: int, stdout_fd: int) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=p.PIPE_MAX)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(stdin_fd, "rb", 0))
    transport, proto = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, os.fdopen(stdout_fd, "wb", 0))
    out = Out(asyncio.StreamWriter(transport, proto, None, loop))
    engines = Engines()
    await asyncio.to_thread(engines.warm_up)
    worker = Worker(out, engines)
    out.control(0, {"type": "ready", "pid": os.getpid()})
    stats = asyncio.create_task(worker.stats())
    try:
        while True:
            try:
                header = await reader.readexactly(p.PIPE_HEADER.size)
            except asyncio.IncompleteReadError:
                return  # the service closed the pipe: exit with it
            length, kind, sid = p.PIPE_HEADER.unpack(header)
            if not 5 <= length <= p.PIPE_MAX:
                log.error("bad pipe frame length %d: exiting", length)
                return
            payload = await reader.readexactly(length - 5)
            try:
                await worker.handle(kind, sid, payload)
            except (p.BadMessage, KeyError, ValueError, TypeError) as e:  # the I/O process validated: a bug
                log.error("stream %d: dropped a malformed pipe message: %s", sid, e)
    finally:
        stats.cancel()
        for s in list(worker.sessions.values()):
            await s.close()


def main() -> int:
    logging.basicConfig(stream=sys.stderr, level=os.environ.get("STOREAGENT_SPEECH_LOG_LEVEL", "INFO"),
                        format="%(asctime)s speech-worker[%(process)d] %(levelname)s %(message)s")
    # The pipe is fd 0/1; keep stray prints (a library's) off it by pointing sys.stdout at stderr.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    asyncio.run(serve(0, out_fd))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
