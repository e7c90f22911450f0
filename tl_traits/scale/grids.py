"""Sweep grids beyond poisoning, as executor runs: steering evaluation over traits x methods x layers, and
the quantization study over traits x backends. One run folder each, finished runs skipped, `aggregate` merges them.

Layout: runs/{model}/steering/{trait}/{method}/layer_{L}/ (vector.safetensors, evaluation.jsonl, summary.csv)
and runs/{model}/quantization/{trait}/{backend}/ (study.json, study.md, study.png, summary.csv).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from tl_traits.core.capture import capture
from tl_traits.core.errors import TlTraitsError, check_count
from tl_traits.core.files import safe_name
from tl_traits.core.locks import holds_folder_lock
from tl_traits.core.model_spec import ModelSpec
from tl_traits.core.models import model_identity
from tl_traits.core.registry import extractors, quantizers
from tl_traits.core.registry import judges as judge_registry
from tl_traits.core.trait_sets import load_trait
from tl_traits.extraction.extract import extract
from tl_traits.judging.defaults import default_judges
from tl_traits.quantization.study import quantization_study
from tl_traits.scale.executors import (
    hold_model,
    make_executor,
    model_display_name,
    release_model,
    worker_model,
)
from tl_traits.scale.runs import Outcome, Task, write_summary
from tl_traits.steering.evaluation import evaluate_steering
from tl_traits.steering.layers import steering_layers


class GridError(TlTraitsError):
    """A grid that cannot run as asked (no traits, no layers for a model the caller did not load)."""


@dataclass
class GridResult:
    """Summary rows of every finished run, and the runs that failed after every retry."""

    runs_dir: Path
    rows: list[dict[str, Any]]
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0
    executor: dict[str, Any] = field(default_factory=dict)


def run_grid(
    model: Any,
    tasks_for: Callable[[Any, str], list[Task]],
    *,
    executor: Any,
    progress: bool,
    log: Any,
    desc: str,
    runs_dir: str | os.PathLike[str],
) -> GridResult:
    """Hand a grid's runs to an executor: the caller's model is used as it is in-process,
    loaded from its spec elsewhere."""
    engine = make_executor(executor, progress=progress, log=log)
    is_spec = isinstance(model, (ModelSpec, str, os.PathLike)) or model is None
    if engine.remote or is_spec:
        spec = ModelSpec.of(model)
        name = model_display_name(spec) if is_spec else model_identity(model).name
    else:
        spec = ModelSpec(f"in-memory:{id(model)}")
        name = str(model.cfg.model_name)
    tasks = tasks_for(spec, name)
    if not engine.remote and not is_spec:
        hold_model(spec, model)
    started = time.perf_counter()
    try:
        outcomes = engine.run(tasks, desc=desc)
    finally:
        release_model(spec)
    return _collect(Path(runs_dir), outcomes, time.perf_counter() - started, engine.describe())


def _collect(runs_dir: Path, outcomes: Sequence[Outcome], seconds: float, executor: dict[str, Any]) -> GridResult:
    result = GridResult(runs_dir, [], seconds=seconds, executor=executor)
    for outcome in outcomes:
        if outcome.status == "failed":
            result.failed.append((outcome.task.folder, outcome.error or ""))
            continue
        rows = outcome.result
        result.rows.extend(rows if isinstance(rows, list) else [rows])
        if outcome.status == "skipped":
            result.skipped.append(outcome.task.folder)
    return result


def _trait_name(trait: Any) -> str:
    """The name a trait's run folders and run keys use: a string as given (nothing loaded), else the set's name."""
    return trait if isinstance(trait, str) else load_trait(trait).name


# -- steering: traits x methods x layers -------------------------------------------------------------
@holds_folder_lock("runs_dir", "tl-traits steering sweep")
def steering_sweep(
    model: Any,
    traits: Sequence[Any],
    methods: Sequence[str] = ("mean_diff",),
    layers: Sequence[int] | None = None,
    *,
    runs_dir: str | os.PathLike[str] = "runs",
    judges: Sequence[Any] | None = None,
    position: str = "response[:]",
    questions: int = 8,
    max_new_tokens: int = 32,
    limit: int | None = None,
    seed: int = 0,
    executor: Any = None,
    progress: bool = True,
    log: Any = print,
) -> GridResult:
    """Extract each trait's vector with each method at each layer and run the coefficient search there.

    One run per (trait, method, layer): capture at that layer only, extract, save the vector, choose the
    strength on `questions` dev steering questions and score it on as many test questions (the
    calibrated search of `SteeringProtocol`; resumable from its evaluation.jsonl).
    layers: default three layers at 25-55% depth.
    judges: default the main job's judges for the trait.
    """
    if not traits or not methods:
        raise GridError("a steering sweep needs at least one trait and one method")
    if layers is None:
        n = int(model.cfg.n_layers) if hasattr(model, "cfg") else ModelSpec.of(model).n_layers()
        layers = steering_layers(n, list(range(n)), None)
    names = [_trait_name(t) for t in traits]
    _check_plugins(methods, judges)

    def tasks_for(spec: Any, model_name: str) -> list[Task]:
        tasks = []
        for trait, trait_name in zip(traits, names):
            for method in methods:
                for layer in layers:
                    folder = (
                        Path(runs_dir)
                        / safe_name(model_name)
                        / "steering"
                        / safe_name(trait_name)
                        / method
                        / f"layer_{layer}"
                    )
                    tasks.append(
                        Task(
                            f"{trait_name}/{method}/layer_{layer}",
                            steering_run,
                            {
                                "model": spec,
                                "model_name": model_name,
                                "trait": trait,
                                "method": method,
                                "layer": int(layer),
                                "folder": folder,
                                "judges": list(judges) if judges else None,
                                "position": position,
                                "questions": questions,
                                "max_new_tokens": max_new_tokens,
                                "limit": limit,
                                "seed": seed,
                                "progress": progress,
                            },
                            folder,
                        )
                    )
        return tasks

    return run_grid(
        model, tasks_for, executor=executor, progress=progress, log=log, desc="steering runs", runs_dir=runs_dir
    )


def _check_plugins(methods: Sequence[str], judges: Sequence[Any] | None) -> None:
    """Unknown names fail in the caller, before any run starts."""
    for method in methods:
        extractors.get(method)
    for judge in judges or ():
        if isinstance(judge, str):
            judge_registry.get(judge.split(":")[0])


def steering_run(
    *,
    model: Any,
    model_name: str,
    trait: Any,
    method: str,
    layer: int,
    folder: Path,
    judges: Sequence[Any] | None,
    position: str,
    questions: int,
    max_new_tokens: int,
    limit: int | None,
    seed: int,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """One steering run as an executor task."""
    started = time.perf_counter()
    loaded = worker_model(model)
    dataset = load_trait(trait).validate()
    if kept := check_count(limit, "limit", GridError):
        dataset = dataset.limit(kept)
    Path(folder).mkdir(parents=True, exist_ok=True)
    acts = capture(loaded, dataset, layers=[layer], position=position, progress=False)
    vecs = extract(loaded, dataset, [method], activations=acts, seed=seed, progress=False)
    vecs.save(Path(folder) / "vector.safetensors")
    vec = vecs[method]
    result = evaluate_steering(
        loaded,
        vec,
        dataset,
        layers=[layer],
        judges=judges or default_judges(dataset),
        progress=False,
        dev_questions=questions,
        test_questions=questions,
        max_new_tokens=max_new_tokens,
        log=Path(folder) / "evaluation.jsonl",
    )
    h = result.headline()
    row = {
        "sweep": "steering",
        "model": model_name,
        "trait": dataset.name,
        "method": method,
        "layer": layer,
        "auroc": float(vec.metrics["auroc"][0]),
        "cohens_d": float(vec.metrics["cohens_d"][0]),
        "strength": h["strength"],
        "dev_score": h["dev_score"],
        "steering_score": h["test_score"],
        "baseline_score": h["unsteered_test_score"],
        "gain": h["gain"],
        "gain_low": (h["gain_interval"] or [None, None])[0],
        "gain_high": (h["gain_interval"] or [None, None])[1],
        "steered_trait": h["trait"],
        "steered_coherence": h["coherence"],
        "steered_relevance": h["relevance"],
        "baseline_trait": h["unsteered_trait"],
        "baseline_coherence": h["unsteered_coherence"],
        "search_runs": len(result.runs),
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_summary(folder, [row])
    return [row]


# -- quantization: traits x backends -----------------------------------------------------------------
@holds_folder_lock("runs_dir", "tl-traits quantization sweep")
def quantization_sweep(
    model: Any,
    traits: Sequence[Any],
    backends: Sequence[str],
    *,
    runs_dir: str | os.PathLike[str] = "runs",
    executor: Any = None,
    progress: bool = True,
    log: Any = print,
    **study: Any,
) -> GridResult:
    """The quantization study, one run per (trait, backend); each run measures its own float32 reference.

    study: `quantization_study` options (methods, layers, steering_layers, questions, steps, ...).
    """
    if not traits or not backends:
        raise GridError("a quantization sweep needs at least one trait and one backend")
    for name in backends:
        quantizers.get(name)
    names = [_trait_name(t) for t in traits]

    def tasks_for(spec: Any, model_name: str) -> list[Task]:
        tasks = []
        for trait, trait_name in zip(traits, names):
            for backend in backends:
                folder = Path(runs_dir) / safe_name(model_name) / "quantization" / safe_name(trait_name) / backend
                tasks.append(
                    Task(
                        f"{trait_name}/{backend}",
                        quantization_run,
                        {
                            "model": spec,
                            "model_name": model_name,
                            "trait": trait,
                            "backend": backend,
                            "folder": folder,
                            "study": dict(study),
                        },
                        folder,
                    )
                )
        return tasks

    return run_grid(
        model, tasks_for, executor=executor, progress=progress, log=log, desc="quantization runs", runs_dir=runs_dir
    )


def quantization_run(
    *, model: Any, model_name: str, trait: Any, backend: str, folder: Path, study: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """One (trait, backend) study as an executor task; its rows are the backend's (the float32
    figures are in study.json)."""
    started = time.perf_counter()
    made = quantization_study(lambda: worker_model(model), trait, backends=[backend], progress=False, **study)
    made.save(folder)
    seconds = round(time.perf_counter() - started, 1)
    rows = [
        {"sweep": "quantization", "model": model_name, "trait": made.trait, **row, "seconds": seconds}
        for row in made.table()
        if row["backend"] == backend
    ]
    write_summary(folder, rows)
    return rows
