"""Judging figures: a judge's score against the reader's rating, with the gate and the label cut."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tl_traits.core.extras import require

require("matplotlib")  # the [report] extra: a missing one is named in the error
from matplotlib.figure import Figure

from tl_traits.core.figures import legend

if TYPE_CHECKING:
    from tl_traits.judging.calibration import Calibration

SOURCES = {"steered": "C0", "unsteered": "C2", "written": "C3"}


def calibration_figure(result: Calibration, label_cut: float = 70.0) -> Figure:
    """Score (y) against rating (x), one dot per response coloured by where it came from; the four gate quadrants."""
    fig = Figure(figsize=(6.4, 5.0), layout="constrained")
    ax = fig.subplots()
    for source, colour in SOURCES.items():
        points = [(i["rating"], i["score"]) for i in result.items if i["source"] == source and i["score"] is not None]
        if points:
            xs, ys = zip(*points)
            ax.scatter(xs, ys, s=18, alpha=0.7, color=colour, label=f"{source} ({len(points)})")
    ax.axhline(result.gate, color="black", linestyle="--", linewidth=0.9, label=f"judge gate {result.gate:g}")
    ax.axvline(label_cut, color="grey", linestyle=":", linewidth=0.9, label=f"rating {label_cut:g}")
    ax.set(xlim=(-3, 103), ylim=(-3, 103), xlabel=f"reader's {result.scale} rating", ylabel=f"{result.judge} score")
    numbers = " ".join(
        f"{k} {v:.2f}"
        for k, v in (
            ("AUROC", result.auroc),
            ("rho", result.spearman),
            ("precision", result.precision),
            ("recall", result.recall),
        )
        if v is not None
    )
    ax.set_title(
        f"{result.judge} vs reader: {result.scale}"
        + (f" ({result.trait})" if result.trait else "")
        + f", {result.split}, n={result.n}\n{numbers}",
        fontsize="medium",
    )
    ax.grid(alpha=0.3)
    legend(fig, [ax])
    return fig
