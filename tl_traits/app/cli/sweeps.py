"""What the sweep commands share: where runs go (executor, model placement), the run table
they end with, and `aggregate`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List, Optional, cast

import typer

from tl_traits.app.cli.options import EXIT_FAILED, JsonOpt, emit, output_file, parse_options
from tl_traits.core.model_spec import ModelSpec
from tl_traits.core.models import ModelKind, load_model
from tl_traits.scale.aggregate import aggregate as merge_runs
from tl_traits.scale.executors import EXECUTORS, make_executor
from tl_traits.scale.runs import SUMMARY

RunsDirOpt = typer.Option(Path("runs"), "--runs-dir", "-o", help="Where run folders go; finished runs are skipped.")
ExecutorOpt = typer.Option("local", "--executor", help="Where runs go: local, ray or slurm (docs/scaling.md).")
WorkersOpt = typer.Option(
    1, "--workers", min=1, help="local: processes running runs side by side (each loads the model)."
)
RetriesOpt = typer.Option(
    1, "--retries", min=0, help="Retry a failed run this many times before recording it as failed."
)
ExecutorOptionOpt = typer.Option(
    None,
    "--executor-option",
    help="key=value for the executor (repeatable): "
    "ray address=auto, cpus=4, gpus=1; slurm partition=gpu, timeout_min=240, "
    "gpus=1, folder=logs.",
)
DtypeOpt = typer.Option("float32", "--dtype", help="float32, bfloat16 or float16 (a 70B model: bfloat16).")
NDevicesOpt = typer.Option(
    1, "--n-devices", min=1, help="Split the model's layers over this many GPUs (TL's placement)."
)
DeviceMapOpt = typer.Option(None, "--device-map", help="bridge: a Hugging Face device map, auto or balanced.")


def executor_for(name: str, workers: int, retries: int, options: Optional[List[str]], quiet: bool) -> Any:
    """The executor the sweep commands hand their runs to; progress and retries reported on stderr."""
    if name not in EXECUTORS:
        raise typer.BadParameter(f"unknown executor '{name}'; use one of {', '.join(EXECUTORS)}")
    extra = parse_options(options)
    if name == "local":
        extra["workers"] = workers
    elif workers != 1:
        raise typer.BadParameter(
            "--workers is for --executor local; Ray and Slurm size themselves (--executor-option cpus=N)"
        )
    log = (lambda msg: typer.echo(msg, err=True)) if not quiet else (lambda msg: None)
    return make_executor(name, retries=retries, progress=not quiet, log=log, **extra)


def model_for(
    engine: Any,
    model: Optional[str],
    kind: str,
    dtype: str = "float32",
    n_devices: int = 1,
    device_map: Optional[str] = None,
) -> Any:
    """In-process runs use a model loaded here; remote runs get a spec and load it where they run."""
    if engine.remote:
        return ModelSpec(model, kind, dtype, n_devices=n_devices, device_map=device_map)
    return load_model(
        model,
        kind=cast(ModelKind, kind),
        dtype=dtype,
        n_devices=n_devices,  # load_model checks the kind
        device_map=device_map,
    )


def report_failures(result: Any) -> None:
    for folder, error in result.failed:
        last = [line for line in error.strip().splitlines() if line.strip()][-1:] or [error]
        typer.echo(f"FAILED {folder}: {last[0]} (details: {folder / 'failure.json'})", err=True)


def finish_sweep(result: Any, runs_dir: Path, n_done: int, as_json: bool) -> None:
    """Aggregate the run folders, print (or emit) the table, name failures; exit 1 when a run failed."""
    report_failures(result)
    table = merge_runs(runs_dir) if n_done else None
    if as_json:
        emit(
            {
                "runs_dir": str(runs_dir),
                "seconds": round(result.seconds, 1),
                "executor": result.executor,
                "skipped": [str(p) for p in result.skipped],
                "failed": [{"folder": str(f), "error": e} for f, e in result.failed],
                "runs": json.loads(table.to_json(orient="records")) if table is not None else [],
            }
        )
    else:
        if table is not None:
            print_sweep(table)
        written = (
            f"; table: {runs_dir / 'aggregate.csv'}, plot: {runs_dir / 'aggregate.png'}"
            if table is not None
            else "; no finished runs, so no table was written"
        )
        typer.echo(
            f"{n_done} runs done ({len(result.skipped)} skipped, {len(result.failed)} failed) in "
            f"{result.seconds:.0f} s{written}"
        )
    if result.failed:
        raise typer.Exit(EXIT_FAILED)


SWEEP_COLUMNS = {
    "poison": (
        "model",
        "attack",
        "rate",
        "seed",
        "n_poisoned",
        "asr",
        "clean_accuracy",
        "clean_exact",
        "clean_loss",
        "detection_auroc_spectral",
        "detection_auroc_trait",
    ),
    "steering": (
        "model",
        "trait",
        "method",
        "layer",
        "auroc",
        "strength",
        "baseline_score",
        "steering_score",
        "gain",
        "gain_low",
        "gain_high",
        "steered_trait",
        "steered_coherence",
        "steered_relevance",
    ),
    "quantization": (
        "model",
        "trait",
        "backend",
        "method",
        "mean_cosine",
        "min_cosine",
        "ref_auroc_mean",
        "max_drift",
        "unsteered_score",
        "steering_score",
        "score_gain",
        "retained",
    ),
}


def print_sweep(table: Any) -> None:
    for kind, columns in SWEEP_COLUMNS.items():
        part = table[table["sweep"] == kind] if "sweep" in table.columns else table
        if part.empty:
            continue
        present = [c for c in columns if c in part.columns]
        typer.echo(part[present].to_string(index=False, float_format=lambda x: f"{x:.3f}"))


def aggregate(
    runs_dir: Path = typer.Argument(Path("runs"), help="A folder of sweep runs."),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="CSV path (default RUNS_DIR/aggregate.csv); the plot goes beside it."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Merge every summary.csv below RUNS_DIR (any sweep, any executor) into one CSV and plot it."""
    output_file(out, "--out", inputs={"RUNS_DIR": sorted(runs_dir.rglob(SUMMARY)) if runs_dir.is_dir() else []})
    table = merge_runs(runs_dir, out)
    if as_json:
        emit(json.loads(table.to_json(orient="records")))
        return
    print_sweep(table)
    path = out or runs_dir / "aggregate.csv"
    typer.echo(f"table: {path}, plot: {path.with_suffix('.png')}")
