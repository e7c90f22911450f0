"""One thread owns the model: requests queue as jobs and run one at a time, in arrival order; a job whose client went
away stops at its next event (the next token), so the model goes to the next job."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, Iterator

from tl_traits.core.errors import TlTraitsError

log = logging.getLogger("tl_traits.serve")

END = {"type": "end"}  # the last event of every job


def readable(exc: BaseException) -> tuple[str, int]:
    """An error as one line for the browser (never a traceback) and its HTTP status."""
    first = (str(exc).strip().splitlines() or [""])[0][:400]
    if isinstance(exc, TlTraitsError):
        return first or type(exc).__name__, int(getattr(exc, "status", 400))
    return (
        f"the server failed on this request ({type(exc).__name__}{': ' + first if first else ''}); "
        "its log has the details",
        500,
    )


@dataclass
class Job:
    """A unit of model work: `work()` makes an iterator of events, run on the model thread; its events reach the event
    loop in batches (one wake-up each), and leave it in chunks."""

    work: Callable[[], Iterator[dict[str, Any]]]
    loop: asyncio.AbstractEventLoop
    events: "asyncio.Queue[list[dict[str, Any]]]" = field(default_factory=asyncio.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    ahead: int = 0  # jobs queued or running when this one arrived

    def emit(self, batch: list[dict[str, Any]]) -> None:
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, batch)
        except RuntimeError:  # the event loop is closed: nobody is listening any more
            self.cancelled.set()

    def cancel(self) -> None:
        self.cancelled.set()

    async def stream(self) -> AsyncIterator[list[dict[str, Any]]]:
        """The job's events in chunks: all that arrived since the last one. Leaving early (a client that went away)
        cancels the job."""
        try:
            while True:
                chunk = list(await self.events.get())
                while not self.events.empty():
                    chunk += self.events.get_nowait()
                ended = END in chunk
                chunk = [event for event in chunk if event is not END]
                if chunk:
                    yield chunk
                if ended:
                    return
        finally:
            self.cancel()

    async def result(self) -> dict[str, Any]:
        """The one `result` event of a job that computes a value (an `error` event raises)."""
        found: dict[str, Any] = {}
        async for chunk in self.stream():
            for event in chunk:
                if event.get("type") == "error":
                    raise JobFailed(event["message"], event.get("status", 500))
                found = event
        return found


class JobFailed(Exception):
    """A job's error, as the readable line and status it reported."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class WorkerStats:
    completed: int = 0
    cancelled: int = 0  # stopped early because the client went away
    skipped: int = 0  # the client went away while the job was still queued
    failed: int = 0
    events: int = 0
    busy: bool = False


class ModelWorker:
    """The model's one thread and its FIFO queue of jobs."""

    def __init__(self) -> None:
        self._jobs: "queue.Queue[Job | None]" = queue.Queue()
        self._thread: threading.Thread | None = None
        self.stats = WorkerStats()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tl-traits-serve-model", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join(timeout)
            self._thread = None

    @property
    def queued(self) -> int:
        return self._jobs.qsize()

    def submit(self, work: Callable[[], Iterator[dict[str, Any]]]) -> Job:
        """Queue `work`; call from the event loop that will read the job's events."""
        self.start()
        job = Job(work, asyncio.get_running_loop())
        job.ahead = self._jobs.qsize() + int(self.stats.busy)
        self._jobs.put(job)
        return job

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if job.cancelled.is_set():
                self.stats.skipped += 1
                job.emit([END])
                continue
            self.stats.busy = True
            try:
                self._run_job(job)
            finally:
                self.stats.busy = False
                job.emit([END])

    def _run_job(self, job: Job) -> None:
        events: Iterator[dict[str, Any]] | None = None
        held: list[dict[str, Any]] = []
        try:
            events = job.work()
            for event in events:
                if job.cancelled.is_set():
                    self.stats.cancelled += 1
                    return
                self.stats.events += 1
                held.append(event)
                if event.get("type") != "values":  # a token's values leave with the next token, sampled with them
                    job.emit(held)
                    held = []
            self.stats.completed += 1
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the browser as one readable line
            if not isinstance(exc, TlTraitsError):
                log.exception("a dashboard request failed")
            self.stats.failed += 1
            message, status = readable(exc)
            held.append({"type": "error", "message": message, "status": status})
        finally:
            if held and not job.cancelled.is_set():
                job.emit(held)
            close = getattr(events, "close", None)
            if close is not None:
                close()  # a generator's `with` blocks exit here: its hooks come off before the next job
