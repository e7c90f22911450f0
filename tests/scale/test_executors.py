"""Executors: in-process, a local process pool, a local Ray runtime and submitit's local executor run the same
tasks; finished runs are skipped, failures retried then recorded, a crashed worker does not take the sweep down."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.scale import executor_tasks
from tl_traits.scale.cluster import RayExecutor, SlurmExecutor
from tl_traits.scale.executors import make_executor
from tl_traits.scale.local import LocalExecutor
from tl_traits.scale.runs import ExecutorError, Task, read_rows

ROOT = Path(__file__).resolve().parents[2]


def _tasks(tmp_path: Path, n: int, fn=executor_tasks.record, **extra) -> list[Task]:
    return [
        Task(f"run_{i}", fn, {"folder": str(tmp_path / f"run_{i}"), "value": i, **extra}, tmp_path / f"run_{i}")
        for i in range(n)
    ]


def test_in_process_runs_skips_finished_and_keeps_order(tmp_path):
    tasks = _tasks(tmp_path, 3)
    executor_tasks.record(str(tmp_path / "run_1"), 1)  # finished before the sweep
    outcomes = LocalExecutor(progress=False).run(tasks)
    assert [o.status for o in outcomes] == ["done", "skipped", "done"]
    assert [o.result[0]["square"] for o in outcomes] == [0, 1, 4]
    assert (tmp_path / "run_1" / "calls").read_text() == "1"  # the finished run was not called again
    again = LocalExecutor(progress=False).run(tasks)
    assert [o.status for o in again] == ["skipped"] * 3 and read_rows(tmp_path / "run_2") == [again[2].result[0]]


def test_failures_are_retried_then_recorded_without_stopping_the_sweep(tmp_path):
    retried = Task(
        "flaky", executor_tasks.flaky, {"folder": str(tmp_path / "a"), "value": 1, "failures": 1}, tmp_path / "a"
    )
    hopeless = Task(
        "hopeless", executor_tasks.flaky, {"folder": str(tmp_path / "b"), "value": 2, "failures": 9}, tmp_path / "b"
    )
    fine = _tasks(tmp_path, 1)[0]
    messages: list[str] = []
    outcomes = LocalExecutor(retries=2, progress=False, log=messages.append).run([retried, hopeless, fine])
    assert [(o.status, o.attempts) for o in outcomes] == [("done", 2), ("failed", 3), ("done", 1)]
    assert "planned failure 3 of 9" in outcomes[1].error
    failure = json.loads((tmp_path / "b" / "failure.json").read_text())
    assert failure["attempts"] == 3 and "RuntimeError: planned failure 3 of 9" in failure["error"]
    assert not (tmp_path / "a" / "failure.json").exists() and any("retrying" in m for m in messages)
    # the recorded failure clears once the run succeeds on a later sweep
    hopeless.kwargs["failures"] = 0
    (tmp_path / "b" / "calls").unlink()
    assert LocalExecutor(retries=0, progress=False).run([hopeless])[0].status == "done"
    assert not (tmp_path / "b" / "failure.json").exists()


def test_a_pool_of_two_workers_runs_side_by_side_and_survives_a_crash(tmp_path):
    tasks = _tasks(tmp_path, 4, sleep=1.0)
    crashing = Task("crash", executor_tasks.crash, {"folder": str(tmp_path / "c")}, tmp_path / "c")
    outcomes = LocalExecutor(workers=2, retries=0, progress=False).run(tasks)
    assert all(o.status == "done" for o in outcomes)
    assert len({o.result[0]["pid"] for o in outcomes}) == 2  # two processes shared the runs
    more = _tasks(tmp_path / "more", 2)
    outcomes = LocalExecutor(workers=2, retries=1, progress=False).run([crashing, *more])
    status = {o.task.key: o for o in outcomes}
    assert status["crash"].status == "failed" and "exited with code 3" in status["crash"].error
    assert status["crash"].attempts == 2  # retried once, by a fresh worker
    assert all(status[t.key].status == "done" for t in more)


def test_ray_runs_each_run_as_a_task_with_its_resources(tmp_path):
    pytest.importorskip("ray")
    tasks = _tasks(tmp_path, 3)
    flaky = Task(
        "flaky", executor_tasks.flaky, {"folder": str(tmp_path / "f"), "value": 7, "failures": 1}, tmp_path / "f"
    )
    executor = RayExecutor(
        num_cpus=2, retries=1, progress=False, init={"runtime_env": {"env_vars": {"PYTHONPATH": str(ROOT)}}}
    )
    outcomes = executor.run([*tasks, flaky])
    assert [o.status for o in outcomes] == ["done"] * 4 and outcomes[3].attempts == 2
    assert [read_rows(t.folder)[0]["square"] for t in tasks] == [0, 1, 4]
    import ray

    assert not ray.is_initialized()  # the runtime it started is shut down again


def test_submitit_local_executor_runs_a_job_array(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    tasks = _tasks(tmp_path / "runs", 3)
    flaky = Task(
        "flaky", executor_tasks.flaky, {"folder": str(tmp_path / "f"), "value": 7, "failures": 1}, tmp_path / "f"
    )
    executor = SlurmExecutor(tmp_path / "logs", cluster="local", poll_seconds=0.5, retries=1, progress=False)
    outcomes = executor.run([*tasks, flaky])
    assert [o.status for o in outcomes] == ["done"] * 4 and outcomes[3].attempts == 2
    assert [o.result[0]["square"] for o in outcomes[:3]] == [0, 1, 4]
    assert any((tmp_path / "logs").rglob("*_log.out"))  # submitit's own job logs


def test_make_executor_names_and_errors():
    assert isinstance(make_executor(None), LocalExecutor) and make_executor("local", workers=3).remote
    assert not make_executor("local").remote
    with pytest.raises(ExecutorError, match="unknown executor 'dask'; use one of local, ray, slurm"):
        make_executor("dask")
    with pytest.raises(ExecutorError, match="does not take those options"):
        make_executor("local", partition="gpu")
    with pytest.raises(ExecutorError, match="workers must be >= 1"):
        make_executor("local", workers=0)
    with pytest.raises(ExecutorError, match="share a key"):
        LocalExecutor(progress=False).run([*_tasks(Path("/tmp/x"), 1), *_tasks(Path("/tmp/x"), 1)])
