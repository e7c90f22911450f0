"""One steering sweep run three ways: in this process, on 2 local workers, on a local Ray runtime; the
measured wall times next to the cost model of docs/scaling.md (runs x per-run time / workers + model loads)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from tl_traits.core.model_spec import ModelSpec
from tl_traits.scale.cluster import RayExecutor
from tl_traits.scale.grids import steering_sweep
from tl_traits.scale.local import LocalExecutor

TRAIT = "emotion/joy"
LAYERS = (6, 9, 12, 15)  # N = 4 runs
LIMIT, QUESTIONS, NEW_TOKENS = 16, 4, 16


def _sweep(model, runs: Path, executor) -> tuple[float, list[dict]]:
    start = time.perf_counter()
    result = steering_sweep(
        model,
        [TRAIT],
        ["mean_diff"],
        list(LAYERS),
        runs_dir=runs,
        questions=QUESTIONS,
        max_new_tokens=NEW_TOKENS,
        limit=LIMIT,
        executor=executor,
        progress=False,
        log=lambda m: None,
    )
    assert not result.failed, result.failed
    return time.perf_counter() - start, result.rows


@pytest.mark.full
def test_sweep_on_one_and_two_workers_and_ray(bench_model, results, tmp_path):
    spec = ModelSpec.of(bench_model)
    start = time.perf_counter()
    spec.load()
    load_seconds = time.perf_counter() - start  # what each fresh worker pays before its first run

    configs = [
        ("local, in process", 1, LocalExecutor(workers=1, progress=False), bench_model),
        ("local, 2 workers", 2, LocalExecutor(workers=2, progress=False), spec),
        ("ray (local runtime, 2 CPUs)", 2, RayExecutor(num_cpus=2, progress=False), spec),
    ]
    rows, baseline = [], None
    for label, workers, executor, model in configs:
        wall, run_rows = _sweep(model, tmp_path / label.split(",")[0].split(" ")[0] / str(workers), executor)
        per_run = sum(r["seconds"] for r in run_rows) / len(run_rows)
        loads = 0 if model is bench_model else 1  # workers load in parallel: one load on the critical path
        predicted = loads * load_seconds + math.ceil(len(run_rows) / workers) * per_run
        baseline = baseline or wall
        rows.append(
            {
                "executor": label,
                "workers": workers,
                "runs": len(run_rows),
                "wall_s": round(wall, 1),
                "mean_run_s": round(per_run, 1),
                "model_load_s": round(loads * load_seconds, 1),
                "predicted_s": round(predicted, 1),
                "predicted/measured": round(predicted / wall, 2),
                "speedup": round(baseline / wall, 2),
            }
        )
    results.add(
        "Scaling: one sweep, three executors",
        rows,
        note=f"steering sweep of {len(LAYERS)} runs ({TRAIT}, mean_diff, layers {list(LAYERS)}; {LIMIT} examples per "
        f"side, {QUESTIONS} dev + {QUESTIONS} test questions, the calibrated strength search, {NEW_TOKENS} new "
        "tokens). In process: the model already loaded, 2 threads. 2 workers: spawned processes with 1 thread each, "
        f"each loading the model once ({load_seconds:.0f} s, in parallel). mean run = the runs' own seconds in that "
        "configuration; predicted = loads + ceil(runs / workers) x mean run (docs/scaling.md); speedup = "
        "in-process wall / wall.",
    )
    assert all(r["wall_s"] > 0 for r in rows)
