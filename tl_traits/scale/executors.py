"""Run a sweep's runs on an engine: here (in order, or a process pool), on Ray, or as Slurm job arrays via submitit.

Every sweep-shaped job (poison sweeps, steering grids, quantization grids) hands its runs to
one `Executor`. A run is a `Task`: a module-level function, its keyword arguments (picklable),
and a run folder whose `summary.csv` marks it finished. Finished runs are skipped, a failed
run is retried up to `retries` times and then recorded (`failure.json` in its folder) without
stopping the others, and a bar counts runs as they finish.
"""

from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from tqdm.auto import tqdm

from tl_traits.core.errors import TlTraitsError
from tl_traits.core.files import atomic_write_json, atomic_write_text

SUMMARY = "summary.csv"
FAILURE = "failure.json"
EXECUTORS = ("local", "ray", "slurm")


class ExecutorError(TlTraitsError):
    """An executor asked for something it cannot do (unknown name, bad option, missing engine)."""


@dataclass(frozen=True)
class Resources:
    """What one run needs: CPU cores, GPUs (fractions allowed on Ray) and memory."""

    cpus: int = 1
    gpus: float = 0
    memory_gb: float | None = None


@dataclass
class Task:
    """One run of a sweep: `fn(**kwargs)` returns its summary row(s); `folder/summary.csv` marks it done."""

    key: str
    fn: Callable[..., Any]
    kwargs: dict[str, Any]
    folder: Path
    resources: Resources = field(default_factory=Resources)

    def finished(self) -> bool:
        return (Path(self.folder) / SUMMARY).is_file()


@dataclass
class Outcome:
    """What became of one task: done (this time), skipped (finished earlier) or failed (after every attempt)."""

    task: Task
    status: str
    result: Any = None
    attempts: int = 0
    error: str | None = None


def run_task(task: Task) -> tuple[str, Any]:
    """Run one task where it lands (this process, a pool worker, a Ray worker, a Slurm job).

    Never raises for the task's own errors: they come back as ("error", traceback text), so one
    bad run cannot take an engine's worker (or the sweep) down. A run finished meanwhile (another
    attempt, an earlier submission) is not run again.
    """
    try:
        if task.finished():
            return "ok", read_rows(task.folder)
        return "ok", task.fn(**task.kwargs)
    except Exception:  # noqa: BLE001 - reported to the executor as data
        return "error", traceback.format_exc()


def read_rows(folder: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """A finished run's summary rows, numbers as numbers and empty cells as None."""
    import csv

    with open(Path(folder) / SUMMARY, newline="") as fh:
        return [{k: _parse_cell(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def write_summary(folder: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write a run's summary rows as summary.csv, atomically and last: its presence marks the run finished."""
    import csv
    import io
    import math

    def cell(value: Any) -> Any:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return ""
        return value

    fields = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows({k: cell(v) for k, v in row.items()} for row in rows)
    return atomic_write_text(Path(folder) / SUMMARY, buffer.getvalue())


def _parse_cell(text: str) -> Any:
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


# -- the interface -------------------------------------------------------------------------------------
class Executor:
    """Skips finished runs, runs the rest through `_execute`, retries failures, records what failed."""

    name = "executor"
    remote = True  # runs in other processes: models are loaded there from a ModelSpec

    def __init__(self, *, retries: int = 1, progress: bool = True, log: Callable[[str], None] | None = None):
        if retries < 0:
            raise ExecutorError(f"retries must be >= 0, not {retries}")
        self.retries = retries
        self.progress = progress
        self.log = log or (lambda message: None)

    def run(self, tasks: Sequence[Task], *, desc: str = "runs") -> list[Outcome]:
        keys = [t.key for t in tasks]
        if len(set(keys)) != len(keys):
            raise ExecutorError(f"two runs share a key: {sorted({k for k in keys if keys.count(k) > 1})}")
        outcomes: dict[str, Outcome] = {}
        pending = []
        for task in tasks:
            if task.finished():
                outcomes[task.key] = Outcome(task, "skipped", read_rows(task.folder))
                self.log(f"{task.key}: finished earlier, skipped")
            else:
                pending.append(task)
        attempts = {t.key: 0 for t in pending}
        bar = tqdm(total=len(tasks), initial=len(outcomes), desc=f"{desc} ({self.name})", unit="run",
                   disable=not self.progress)
        try:
            while pending:
                again = []
                for task, status, value in self._execute(pending):
                    attempts[task.key] += 1
                    if status == "ok":
                        outcomes[task.key] = Outcome(task, "done", value, attempts[task.key])
                        (Path(task.folder) / FAILURE).unlink(missing_ok=True)
                        bar.update(1)
                    elif attempts[task.key] <= self.retries:
                        self.log(f"{task.key}: failed (attempt {attempts[task.key]}), retrying: {_last_line(value)}")
                        again.append(task)
                    else:
                        outcomes[task.key] = Outcome(task, "failed", None, attempts[task.key], value)
                        _record_failure(task, attempts[task.key], value)
                        self.log(f"{task.key}: failed after {attempts[task.key]} attempts: {_last_line(value)}")
                        bar.update(1)
                pending = again
        finally:
            bar.close()
            self.close()
        return [outcomes[t.key] for t in tasks]

    def _execute(self, tasks: Sequence[Task]) -> Iterator[tuple[Task, str, Any]]:
        """Yield (task, "ok" | "error", summary | error text) for every task, in the order they finish."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what `_execute` started (a pool, a Ray runtime this executor began)."""

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name, "retries": self.retries}


def _last_line(text: Any) -> str:
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return lines[-1] if lines else str(text)


def _record_failure(task: Task, attempts: int, error: str) -> None:
    folder = Path(task.folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / FAILURE, {"key": task.key, "attempts": attempts, "error": error,
                                         "time": time.strftime("%Y-%m-%dT%H:%M:%S")})


# -- local -------------------------------------------------------------------------------------------
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
        import multiprocessing

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
                    index = running.pop(process.pid, None)
                    self.processes[n] = self._start()
                    if index is not None and index in left:
                        left.discard(index)
                        yield tasks[index], "error", (f"WorkerDied: the worker process running this run exited with "
                                                      f"code {process.exitcode} (killed, or out of memory?)")
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
    _init_worker(threads)
    while True:
        item = inbox.get()
        if item is None:
            return
        index, task = item
        outbox.put(("start", index, os.getpid()))
        outbox.put(("end", index, os.getpid(), *run_task(task)))


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# -- ray ---------------------------------------------------------------------------------------------
class RayExecutor(Executor):
    """Each run a Ray task with its resources; `address=None` starts a local runtime (closed afterwards),
    `address="auto"` or "ray://host:10001" joins a cluster. Run folders must be on storage every node sees."""

    name = "ray"

    def __init__(self, address: str | None = None, *, cpus: int | None = None, gpus: float | None = None,
                 num_cpus: int | None = None, init: Mapping[str, Any] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.address = address
        self.cpus, self.gpus = cpus, gpus  # per run, overriding what the tasks ask for
        self.num_cpus = num_cpus  # size of a local runtime
        self.init = dict(init or {})
        self._started = False

    def _execute(self, tasks: Sequence[Task]) -> Iterator[tuple[Task, str, Any]]:
        ray = _require("ray", "pip install 'tl-traits[scale]' (or pip install ray)")
        if not ray.is_initialized():
            options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, **self.init}
            if self.address:
                options["address"] = self.address
            elif self.num_cpus:
                options["num_cpus"] = self.num_cpus
            ray.init(**options)
            self._started = True
        remote = ray.remote(_ray_call)
        refs = {}
        for task in tasks:
            res = task.resources
            options = {"num_cpus": self.cpus or res.cpus, "num_gpus": self.gpus if self.gpus is not None else res.gpus,
                       "max_retries": 0}
            if res.memory_gb:
                options["memory"] = int(res.memory_gb * 2**30)
            refs[remote.options(**options).remote(task)] = task
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            for ref in ready:
                task = refs.pop(ref)
                try:
                    status, value = ray.get(ref)
                except Exception as exc:  # the worker crashed or was killed
                    status, value = "error", f"{type(exc).__name__}: {exc}"
                yield task, status, value

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "address": self.address or "local runtime"}


def _ray_call(task: Task) -> tuple[str, Any]:
    _init_worker(max(1, int(task.resources.cpus)))
    return run_task(task)


# -- slurm -------------------------------------------------------------------------------------------
class SlurmExecutor(Executor):
    """Runs as one Slurm job array through submitit; `cluster="local"` runs the array as local
    processes (how the tests drive it), `"debug"` in this process. Logs go to `folder`."""

    name = "slurm"

    def __init__(self, folder: str | os.PathLike[str] = "slurm_logs", *, cluster: str | None = None,
                 partition: str | None = None, timeout_min: int = 120, array_parallelism: int = 64,
                 cpus: int | None = None, gpus: int | None = None, mem_gb: float | None = None,
                 poll_seconds: float = 2.0, parameters: Mapping[str, Any] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.folder = Path(folder)
        self.cluster = cluster
        self.partition = partition
        self.timeout_min = timeout_min
        self.array_parallelism = array_parallelism
        self.cpus, self.gpus, self.mem_gb = cpus, gpus, mem_gb
        self.poll_seconds = poll_seconds
        self.parameters = dict(parameters or {})  # more submitit parameters, e.g. slurm_account

    def _execute(self, tasks: Sequence[Task]) -> Iterator[tuple[Task, str, Any]]:
        submitit = _require("submitit", "pip install 'tl-traits[scale]' (or pip install submitit)")
        executor = submitit.AutoExecutor(folder=self.folder / "%j", cluster=self.cluster)
        need = _widest(t.resources for t in tasks)
        params: dict[str, Any] = {
            "name": "tl-traits", "timeout_min": self.timeout_min,
            "cpus_per_task": self.cpus or need.cpus, "slurm_array_parallelism": self.array_parallelism,
        }
        gpus = self.gpus if self.gpus is not None else int(need.gpus + 0.999)
        if gpus:
            params["gpus_per_node"] = gpus
        if self.mem_gb or need.memory_gb:
            params["mem_gb"] = self.mem_gb or need.memory_gb
        if self.partition:
            params["slurm_partition"] = self.partition
        executor.update_parameters(**{**params, **self.parameters})
        jobs = executor.map_array(_slurm_call, list(tasks))
        pending = dict(zip(jobs, tasks))
        while pending:
            for job in [j for j in pending if j.done()]:
                task = pending.pop(job)
                try:
                    status, value = job.result()
                except Exception as exc:  # the job itself failed: timeout, preemption, node failure
                    status, value = "error", f"{type(exc).__name__}: {_last_line(exc)} (logs: {self.folder})"
                yield task, status, value
            if pending:
                time.sleep(self.poll_seconds)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "cluster": self.cluster or "auto", "partition": self.partition,
                "logs": str(self.folder)}


def _slurm_call(task: Task) -> tuple[str, Any]:
    _init_worker(max(1, int(task.resources.cpus)))
    return run_task(task)


def _widest(resources: Any) -> Resources:
    items = list(resources) or [Resources()]
    mems = [r.memory_gb for r in items if r.memory_gb]
    return Resources(max(r.cpus for r in items), max(r.gpus for r in items), max(mems) if mems else None)


def _require(module: str, fix: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ExecutorError(f"this executor needs {module}, which is not installed: {fix}") from exc


# -- choosing one ------------------------------------------------------------------------------------
def make_executor(name: str | Executor | None = "local", **options: Any) -> Executor:
    """An executor by name, with its options (workers=, address=, partition=, retries=, ...).

    An Executor passes through; None is the in-process local executor.
    """
    if isinstance(name, Executor):
        return name
    name = name or "local"
    classes = {"local": LocalExecutor, "ray": RayExecutor, "slurm": SlurmExecutor}
    if name not in classes:
        raise ExecutorError(f"unknown executor '{name}'; use one of {', '.join(EXECUTORS)}")
    try:
        return classes[name](**options)
    except TypeError as exc:
        raise ExecutorError(f"executor '{name}' does not take those options ({exc}); "
                            f"see docs/scaling.md for each executor's options") from exc


# -- models in workers -------------------------------------------------------------------------------
_MODELS: dict[Any, Any] = {}


def hold_model(spec: Any, model: Any) -> None:
    """Make `worker_model(spec)` in this process return `model` (the in-process executor uses the caller's)."""
    _MODELS[spec] = model


def release_model(spec: Any) -> None:
    _MODELS.pop(spec, None)


def worker_model(spec: Any) -> Any:
    """The model of `spec` in this process, loaded on first use and kept for the worker's next runs."""
    if spec not in _MODELS:
        _MODELS[spec] = spec.load()
    return _MODELS[spec]
