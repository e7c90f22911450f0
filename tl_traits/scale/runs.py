"""Runs and their folders: a `Task`, what became of it, the run-folder files (`summary.csv` marks a run
finished, `failure.json` records one that failed), and the `Executor` base that applies them."""

from __future__ import annotations

import csv
import io
import math
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
from tqdm.auto import tqdm

from tl_traits.core.errors import TlTraitsError
from tl_traits.core.files import atomic_write_json, atomic_write_text

SUMMARY = "summary.csv"
FAILURE = "failure.json"


class ExecutorError(TlTraitsError):
    """An executor asked for something it cannot do (unknown name, bad option, missing engine)."""


class SweepError(TlTraitsError):
    """A sweep that cannot run as asked (no runs, bad rates, a folder from a different sweep, nothing to aggregate)."""


@dataclass(frozen=True)
class Resources:
    """What one run needs: CPU cores, GPUs (fractions allowed on Ray) and memory."""

    cpus: int = 1
    gpus: float = 0
    memory_gb: float | None = None


@dataclass
class Task:
    """One run of a sweep: `fn(**kwargs)` returns its summary row(s); `folder/summary.csv` marks it done.

    `fn` is a module-level function and `kwargs` are picklable: workers receive the task pickled,
    and find `fn` by its module path.
    """

    key: str
    fn: Callable[..., Any]
    kwargs: dict[str, Any]
    folder: Path
    resources: Resources = field(default_factory=Resources)


@dataclass
class Outcome:
    """What became of one task: done (this time), skipped (finished earlier) or failed (after every attempt)."""

    task: Task
    status: str
    result: Any = None
    attempts: int = 0
    error: str | None = None


# -- the run folder ------------------------------------------------------------------------------------
def is_finished(folder: str | os.PathLike[str]) -> bool:
    """Whether the run in `folder` finished: its summary.csv, written last, is there."""
    return (Path(folder) / SUMMARY).is_file()


def read_rows(folder: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """A finished run's summary rows, numbers as numbers and empty cells as None."""
    with open(Path(folder) / SUMMARY, newline="") as fh:
        return [{k: _parse_cell(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def write_summary(folder: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write a run's summary rows as summary.csv, atomically and last: its presence marks the run finished."""

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


def _record_failure(task: Task, attempts: int, error: str) -> None:
    folder = Path(task.folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        folder / FAILURE,
        {"key": task.key, "attempts": attempts, "error": error, "time": time.strftime("%Y-%m-%dT%H:%M:%S")},
    )


def last_line(text: Any) -> str:
    """The last non-blank line of an error or traceback: what a log line shows of it."""
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return lines[-1] if lines else str(text)


# -- running one ---------------------------------------------------------------------------------------
def run_task(task: Task) -> tuple[str, Any]:
    """Run one task where it lands (this process, a pool worker, a Ray worker, a Slurm job).

    Never raises for the task's own errors: they come back as ("error", traceback text), so one
    bad run cannot take an engine's worker (or the sweep) down. A run finished meanwhile (another
    attempt, an earlier submission) is not run again.
    """
    try:
        if is_finished(task.folder):
            return "ok", read_rows(task.folder)
        return "ok", task.fn(**task.kwargs)
    except Exception:  # noqa: BLE001 - reported to the executor as data
        return "error", traceback.format_exc()


def init_worker(threads: int) -> None:
    """Set up a process that runs tasks (a pool worker, a Ray worker, a Slurm job): its torch threads."""
    torch.set_num_threads(threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# -- the interface -------------------------------------------------------------------------------------
class Executor:
    """Skips finished runs, runs the rest through `_execute`, retries failures, records what failed.

    Every sweep-shaped job (poison sweeps, steering grids, quantization grids) hands its runs to one.
    A failed run is retried up to `retries` times, then recorded in its folder's failure.json without
    stopping the others; a bar counts runs as they finish.
    """

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
            if is_finished(task.folder):
                outcomes[task.key] = Outcome(task, "skipped", read_rows(task.folder))
                self.log(f"{task.key}: finished earlier, skipped")
            else:
                pending.append(task)
        attempts = {t.key: 0 for t in pending}
        bar = tqdm(
            total=len(tasks), initial=len(outcomes), desc=f"{desc} ({self.name})", unit="run", disable=not self.progress
        )
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
                        self.log(f"{task.key}: failed (attempt {attempts[task.key]}), retrying: {last_line(value)}")
                        again.append(task)
                    else:
                        outcomes[task.key] = Outcome(task, "failed", None, attempts[task.key], value)
                        _record_failure(task, attempts[task.key], value)
                        self.log(f"{task.key}: failed after {attempts[task.key]} attempts: {last_line(value)}")
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
