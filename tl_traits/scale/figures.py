"""Sweep figures: one per aggregated sweep kind (poison rate, steering grid, quantization grid)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tl_traits.core.extras import require

require("matplotlib")  # the [report] extra: a missing one is named in the error
from matplotlib.figure import Figure

from tl_traits.core.figures import legend

if TYPE_CHECKING:
    import pandas as pd


SWEEP_METRICS = {
    "asr": "attack success rate",
    "clean_accuracy": "clean accuracy (sentiment)",
    "clean_exact": "clean exact answers (instructions)",
    "clean_loss": "clean loss per token",
}


def poison_sweep_figure(table: "pd.DataFrame", title: str | None = None) -> Figure:
    """Each sweep metric against poison rate: one line per model/attack, mean over seeds with min-max whiskers."""
    metrics = [m for m in SWEEP_METRICS if m in table.columns and table[m].notna().any()]
    fig = Figure(figsize=(1.5 + 3.6 * max(len(metrics), 1), 3.8), layout="constrained")
    axes = fig.subplots(1, max(len(metrics), 1), squeeze=False)[0]
    groups = list(table.groupby(["model", "attack"]))
    for ax, metric in zip(axes, metrics):
        for i, ((model, attack), part) in enumerate(groups):
            stats = part.groupby("rate")[metric].agg(["mean", "min", "max"]).reset_index()
            label = attack if table["model"].nunique() == 1 else f"{model} / {attack}"
            ax.errorbar(
                stats["rate"] * 100,
                stats["mean"],
                yerr=[stats["mean"] - stats["min"], stats["max"] - stats["mean"]],
                marker="o",
                capsize=3,
                color=f"C{i}",
                label=label,
            )
        ax.set(title=SWEEP_METRICS[metric], xlabel="poisoned training examples (%)")
        if metric != "clean_loss":
            ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    fig.suptitle(title or "poison-rate sweep")
    legend(fig, list(axes))
    return fig


def steering_grid_figure(table: "pd.DataFrame", title: str | None = None) -> Figure:
    """Test-half steering-score gain over unsteered by layer, with its 95% interval: one panel
    per trait, a line per method."""
    traits = sorted(table["trait"].unique())
    fig = Figure(figsize=(1.5 + 3.8 * len(traits), 3.8), layout="constrained")
    axes = fig.subplots(1, len(traits), squeeze=False)[0]
    for ax, trait in zip(axes, traits):
        part = table[table["trait"] == trait]
        for i, (method, rows) in enumerate(part.groupby("method")):
            rows = rows.sort_values("layer")
            gain = rows["gain"].astype(float)
            errors = [
                (gain - rows["gain_low"].astype(float)).fillna(0),
                (rows["gain_high"].astype(float) - gain).fillna(0),
            ]
            ax.errorbar(rows["layer"], gain, yerr=errors, marker="o", capsize=3, color=f"C{i}", label=method)
        ax.axhline(0, color="0.6", lw=0.8)
        if part["gain"].isna().all():
            ax.text(0.5, 0.5, "no setting was scored", transform=ax.transAxes, ha="center", color="0.4")
        ax.set(title=trait, xlabel="layer", ylabel="steering-score gain over unsteered (test)")
        ax.grid(alpha=0.3)
    fig.suptitle(title or "steering sweep: test-half gain per layer (strength chosen on dev)")
    legend(fig, list(axes))
    return fig


def quantization_sweep_figure(table: "pd.DataFrame", title: str | None = None) -> Figure:
    """Per trait and backend: the re-extracted direction's mean cosine to float32 and the retained steering effect."""
    fig = Figure(figsize=(10.0, 3.8), layout="constrained")
    axes = fig.subplots(1, 2, squeeze=False)[0]
    rows = table.dropna(subset=["method"]) if "method" in table.columns else table
    for ax, metric, label in (
        (axes[0], "mean_cosine", "mean cosine to float32"),
        (axes[1], "retained", "steering effect retained"),
    ):
        if metric not in rows.columns:
            continue
        pivot = rows.groupby(["backend", "trait"])[metric].mean().unstack("trait")
        pivot.plot.bar(ax=ax, rot=0)
        ax.set(title=label, xlabel="")
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(title or "quantization sweep")
    return fig


def sweep_figure(kind: str, table: "pd.DataFrame") -> Figure:
    """The figure for an aggregated table of one sweep kind (poison, steering, quantization)."""
    figures = {
        "poison": poison_sweep_figure,
        "steering": steering_grid_figure,
        "quantization": quantization_sweep_figure,
    }
    return figures[kind](table)
