"""One aggregate for every sweep kind: every run folder's summary.csv below a folder merged into one table
(aggregate.csv, a `sweep` column: poison, steering, quantization) with a figure per kind."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from tl_traits.core.figures import save_figure
from tl_traits.core.files import atomic_write_text
from tl_traits.scale.runs import SUMMARY, SweepError

SORT_KEYS = {
    "poison": ["model", "attack", "rate", "seed"],
    "steering": ["model", "trait", "method", "layer"],
    "quantization": ["model", "trait", "backend", "method"],
}


def aggregate(
    runs_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, *, plot: bool | None = None
) -> Any:
    """Merge every summary.csv below `runs_dir` into one table (pandas DataFrame), saved as CSV (+ PNG plot).

    Works the same on any executor's output (the run folders are the record). Rows carry a `sweep`
    column (poison, steering, quantization). out: the CSV path (default runs_dir/aggregate.csv);
    the plot goes beside it as .png (one per kind, -steering.png etc., when kinds are mixed);
    plot=None draws it when the [report] extra (matplotlib) is installed, True insists on it.
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise SweepError(f"{runs_dir} is not a folder of runs")
    paths = sorted(runs_dir.rglob(SUMMARY))
    if not paths:
        raise SweepError(f"no {SUMMARY} below {runs_dir}; run a sweep first (tl-traits sweep)")
    table = pd.concat(
        [pd.read_csv(p).assign(run=str(p.parent.relative_to(runs_dir))) for p in paths], ignore_index=True
    )
    if "sweep" not in table.columns:
        table["sweep"] = None
    if "attack" in table.columns:
        table.loc[table["sweep"].isna() & table["attack"].notna(), "sweep"] = "poison"
    kinds = [k for k in SORT_KEYS if (table["sweep"] == k).any()]
    keys = ["sweep"] + list(dict.fromkeys(c for k in kinds for c in SORT_KEYS[k] if c in table.columns))
    table = table.sort_values(keys, na_position="last").reset_index(drop=True)
    out = Path(out) if out else runs_dir / "aggregate.csv"
    atomic_write_text(out, table.to_csv(index=False))
    if plot is None:
        plot = importlib.util.find_spec("matplotlib") is not None
    if plot:
        from tl_traits.scale.figures import sweep_figure  # needs the [report] extra

        for kind in kinds:
            part = table[table["sweep"] == kind]
            path = out.with_suffix(".png") if len(kinds) == 1 else out.with_name(f"{out.stem}-{kind}.png")
            save_figure(sweep_figure(kind, part), path)
    return table


def by_rate(table: Any, metrics: Iterable[str] = ("asr", "clean_accuracy", "clean_exact", "clean_loss")) -> Any:
    """Mean (and std over seeds) of each metric per model, attack and rate (the poison rows of an aggregate table)."""
    present = [m for m in metrics if m in table.columns]
    return table.groupby(["model", "attack", "rate"])[present].agg(["mean", "std", "count"])
