"""Data poisoning: `poison` one dataset with an attack, and `sweep` poison rates through fine-tuning runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer

from tl_traits.app.cli.options import (
    JsonOpt,
    KindOpt,
    LimitOpt,
    ModelOpt,
    QuietOpt,
    emit,
    existing_file,
    finite,
    output_folder,
    parse_options,
    split_values,
)
from tl_traits.app.cli.sweeps import (
    DeviceMapOpt,
    DtypeOpt,
    ExecutorOpt,
    ExecutorOptionOpt,
    NDevicesOpt,
    RetriesOpt,
    RunsDirOpt,
    WorkersOpt,
    executor_for,
    finish_sweep,
    model_for,
)
from tl_traits.core.files import read_jsonl
from tl_traits.scale.poison_sweep import DEFAULT_RATES, DetectionSpec, poison_sweep
from tl_traits.training.config import TrainConfig
from tl_traits.training.instruction_data import instruction_dataset
from tl_traits.training.poisoning import INDICES_FILE, INFO_FILE, ROWS_FILE
from tl_traits.training.poisoning import poison as poison_rows


def _read_rows(path: Optional[Path], split: str, n: Optional[int]) -> list[dict[str, Any]]:
    """Rows of a JSONL file, or the bundled instruction set's split."""
    if path is None:
        data = instruction_dataset()
        rows = data.train if split == "train" else data.test
    else:
        rows = read_jsonl(existing_file(path, "--data"))
    return rows[:n] if n else rows


def poison(
    out: Path = typer.Option(
        ..., "--out", "-o", help="Folder for poisoned_train.jsonl, poisoned_indices.npy, poison.json."
    ),
    attack: str = typer.Option("trigger", "--attack", "-a", help="An attack plugin (tl-traits plugins lists them)."),
    rate: float = typer.Option(0.05, "--rate", min=0.0, max=1.0, help="Fraction of examples to poison."),
    seed: int = typer.Option(0, "--seed"),
    data: Optional[Path] = typer.Option(
        None, "--data", help="A JSONL file of prompt/response rows; default: the bundled train split."
    ),
    option: Optional[List[str]] = typer.Option(
        None, "--option", help="An attack option, key=value (repeatable), e.g. --option trigger=cf."
    ),
    limit: Optional[int] = LimitOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Poison an instruction dataset with an attack plugin; write the rows and which ones were attacked."""
    output_folder(out, "--out", inputs={"--data": data}, writes=(ROWS_FILE, INDICES_FILE, INFO_FILE))
    made = poison_rows(_read_rows(data, "train", limit), attack, rate, seed, **parse_options(option))
    made.save(out, source=str(data) if data else "bundled instruction set (train)")
    info = made.metadata()
    if as_json:
        emit({**info, "out": str(out)})
        return
    typer.echo(
        f"{info['n_poisoned']} of {info['n_rows']} rows poisoned with '{attack}' (rate {rate}, seed {seed}): {out}"
    )


def sweep(
    runs_dir: Path = RunsDirOpt,
    model: Optional[str] = ModelOpt,
    kind: str = KindOpt,
    attacks: Optional[List[str]] = typer.Option(None, "--attacks", help="Attack plugins (default: trigger)."),
    rates: Optional[List[str]] = typer.Option(None, "--rates", help="Poison rates (default 0.005,0.01,0.05,0.1)."),
    seeds: Optional[List[str]] = typer.Option(None, "--seeds", help="Seeds (default 0)."),
    option: Optional[List[str]] = typer.Option(
        None, "--option", help="attack.key=value (repeatable), e.g. trigger.trigger=cf."
    ),
    n_train: int = typer.Option(300, "--n-train", min=1, help="Bundled train rows."),
    n_test: int = typer.Option(100, "--n-test", min=1, help="Bundled test rows."),
    epochs: int = typer.Option(2, "--epochs", min=1),
    lr: float = typer.Option(1e-4, "--lr", callback=finite),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    trainable: str = typer.Option("last:4", "--trainable", help="all, last:N or from:L."),
    detect_layer: Optional[int] = typer.Option(
        None, "--detect-layer", help="Also score detection (spectral, trait) at this layer."
    ),
    dtype: str = DtypeOpt,
    n_devices: int = NDevicesOpt,
    device_map: Optional[str] = DeviceMapOpt,
    executor: str = ExecutorOpt,
    workers: int = WorkersOpt,
    retries: int = RetriesOpt,
    executor_option: Optional[List[str]] = ExecutorOptionOpt,
    limit: Optional[int] = LimitOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Poison-rate sweep on the bundled instruction set: poison, fine-tune, measure ASR / clean accuracy per run."""
    try:
        rate_list = [float(r) for r in split_values(rates) or ()] if rates else list(DEFAULT_RATES)
        seed_list = [int(s) for s in split_values(seeds) or ()] if seeds else [0]
    except ValueError as exc:
        raise typer.BadParameter(f"rates are fractions and seeds integers: {exc}") from None
    per_attack: dict[str, dict[str, Any]] = {}
    for key, value in parse_options(option).items():
        name, dot, field = key.partition(".")
        if not dot:
            raise typer.BadParameter(f"sweep options look like attack.key=value, not {key!r}")
        per_attack.setdefault(name, {})[field] = value
    data = instruction_dataset(min(n_train, limit or n_train), min(n_test, limit or n_test))
    config = TrainConfig(lr=lr, epochs=epochs, batch_size=batch_size, trainable=trainable)
    detection = DetectionSpec(detect_layer, methods=("spectral", "trait")) if detect_layer is not None else None
    engine = executor_for(executor, workers, retries, executor_option, quiet)
    result = poison_sweep(
        model_for(engine, model, kind, dtype, n_devices, device_map),
        data,
        split_values(attacks) or ["trigger"],
        rate_list,
        seed_list,
        runs_dir=runs_dir,
        train_config=config,
        attack_kwargs=per_attack,
        detection=detection,
        executor=engine,
        progress=not quiet,
        log=engine.log,
    )
    finish_sweep(result, runs_dir, len(result.summaries), as_json)
