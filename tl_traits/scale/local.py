"""The local executor: runs one after another in this process, or on a pool of spawned worker processes."""

from __future__ import annotations

import multiprocessing
import os
import time
from typing import Any, Iterator, Sequence

from tl_traits.scale.runs import Executor, ExecutorError, Task, init_worker, run_task


class LocalExecutor(Executor):
    """workers=1: one after another in this process (the caller's model is used as it is);
    workers=N: a pool of N processes, each loading the model once and using cores/N threads."""

    name = "local"

    def __init__(self, workers: int = 1, *, threads: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if workers < 1:
            raise ExecutorError(f"workers must be >= 1, not {workers}")
        self.workers = workers
        self.threads = threads or max(1, (os.cpu_count() or 1) // workers)
        self.remote = workers > 1
        self._pool: Any = None

    def _execute(self, tasks: Sequence[Task]) -> Iterator[tuple[Task, str, Any]]:
        if self.workers == 1:
            for task in tasks:
                yield (task, *run_task(task))
            return
        if self._pool is None:
            self._pool = _WorkerPool(self.workers, self.threads)
        yield from self._pool.map(tasks)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "workers": self.workers, "threads_per_worker": self.threads}


class _WorkerPool:
    """N long-lived worker processes pulling runs from a queue; each keeps its loaded model between runs.

    Unlike concurrent.futures' pool, a worker that dies (killed, out of memory) fails only the run it
    was running, and a fresh worker takes its place.
    """

    def __init__(self, workers: int, threads: int):
        # spawn, not fork: torch's thread pools and a parent holding a model do not survive fork
        self.context = multiprocessing.get_context("spawn")
        self.threads = threads
        self.inbox = self.context.Queue()
        self.outbox = self.context.SimpleQueue()  # written synchronously: a "start" is never lost with its worker
        self.processes = [self._start() for _ in range(workers)]

    def _start(self) -> Any:
        process = self.context.Process(target=_worker_loop, args=(self.inbox, self.outbox, self.threads), daemon=True)
        process.start()
        return process

    def map(self, tasks: Sequence[Task]) -> Iterator[tuple[Task, str, Any]]:
        for index, task in enumerate(tasks):
            self.inbox.put((index, task))
        running: dict[int, int] = {}  # worker pid -> index of the run it is on
        left = set(range(len(tasks)))
        while left:
            if self.outbox.empty():
                time.sleep(0.05)
                dead = [n for n, process in enumerate(self.processes) if process.exitcode is not None]
                if not dead or not self.outbox.empty():  # read what a worker said before it died first
                    continue
                for n in dead:
                    process = self.processes[n]
                    lost = running.pop(process.pid, None)
                    self.processes[n] = self._start()
                    if lost is not None and lost in left:
                        left.discard(lost)
                        yield (
                            tasks[lost],
                            "error",
                            (
                                f"WorkerDied: the worker process running this run exited with "
                                f"code {process.exitcode} (killed, or out of memory?)"
                            ),
                        )
                continue
            message = self.outbox.get()
            if message[0] == "start":
                _, index, pid = message
                running[pid] = index
            else:
                _, index, pid, status, value = message
                running.pop(pid, None)
                left.discard(index)
                yield tasks[index], status, value

    def close(self) -> None:
        for _ in self.processes:
            self.inbox.put(None)
        for process in self.processes:
            process.join(timeout=10)
            if process.exitcode is None:
                process.terminate()


def _worker_loop(inbox: Any, outbox: Any, threads: int) -> None:
    init_worker(threads)
    while True:
        item = inbox.get()
        if item is None:
            return
        index, task = item
        outbox.put(("start", index, os.getpid()))
        outbox.put(("end", index, os.getpid(), *run_task(task)))
