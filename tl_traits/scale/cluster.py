"""Executors beyond this machine: one Ray task per run (`RayExecutor`), or a Slurm job array through
submitit (`SlurmExecutor`). Ray and submitit are optional (`tl-traits[scale]`), imported when a sweep starts."""

from __future__ import annotations

import importlib
import os
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from tl_traits.scale.runs import (
    Executor,
    ExecutorError,
    Resources,
    Task,
    init_worker,
    last_line,
    run_task,
)


# -- ray ---------------------------------------------------------------------------------------------
class RayExecutor(Executor):
    """Each run a Ray task with its resources; `address=None` starts a local runtime (closed afterwards),
    `address="auto"` or "ray://host:10001" joins a cluster. Run folders must be on storage every node sees."""

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        cpus: int | None = None,
        gpus: float | None = None,
        num_cpus: int | None = None,
        init: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ):
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
            options = {
                "num_cpus": self.cpus or res.cpus,
                "num_gpus": self.gpus if self.gpus is not None else res.gpus,
                "max_retries": 0,
            }
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
            import ray  # optional dependency; present, since _execute started this runtime

            ray.shutdown()
            self._started = False

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "address": self.address or "local runtime"}


def _ray_call(task: Task) -> tuple[str, Any]:
    init_worker(max(1, int(task.resources.cpus)))
    return run_task(task)


# -- slurm -------------------------------------------------------------------------------------------
class SlurmExecutor(Executor):
    """Runs as one Slurm job array through submitit; `cluster="local"` runs the array as local
    processes (how the tests drive it), `"debug"` in this process. Logs go to `folder`."""

    name = "slurm"

    def __init__(
        self,
        folder: str | os.PathLike[str] = "slurm_logs",
        *,
        cluster: str | None = None,
        partition: str | None = None,
        timeout_min: int = 120,
        array_parallelism: int = 64,
        cpus: int | None = None,
        gpus: int | None = None,
        mem_gb: float | None = None,
        poll_seconds: float = 2.0,
        parameters: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ):
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
            "name": "tl-traits",
            "timeout_min": self.timeout_min,
            "cpus_per_task": self.cpus or need.cpus,
            "slurm_array_parallelism": self.array_parallelism,
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
                    status, value = "error", f"{type(exc).__name__}: {last_line(exc)} (logs: {self.folder})"
                yield task, status, value
            if pending:
                time.sleep(self.poll_seconds)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "cluster": self.cluster or "auto",
            "partition": self.partition,
            "logs": str(self.folder),
        }


def _slurm_call(task: Task) -> tuple[str, Any]:
    init_worker(max(1, int(task.resources.cpus)))
    return run_task(task)


def _widest(resources: Iterable[Resources]) -> Resources:
    items = list(resources) or [Resources()]
    mems = [r.memory_gb for r in items if r.memory_gb]
    return Resources(max(r.cpus for r in items), max(r.gpus for r in items), max(mems) if mems else None)


def _require(module: str, fix: str) -> Any:
    """An optional engine, imported only when a sweep uses it, so the local executor needs neither."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ExecutorError(f"this executor needs {module}, which is not installed: {fix}") from exc
