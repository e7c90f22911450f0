"""Monitoring figures: two groups' projections as overlaid histograms with their comparison."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from tl_traits.core.extras import require

require("matplotlib")  # the [report] extra: a missing one is named in the error
from matplotlib.figure import Figure

from tl_traits.core.figures import legend
from tl_traits.monitoring.monitor import GroupComparison, compare_groups


def group_histogram(
    first: Sequence[float],
    second: Sequence[float],
    labels: tuple[str, str] = ("refused", "answered"),
    comparison: GroupComparison | None = None,
    xlabel: str = "projection",
    title: str | None = None,
) -> Figure:
    """Two groups' values as overlaid histograms on shared bins, their means, and d / AUROC / p."""
    groups = [[float(x) for x in values if not math.isnan(float(x))] for values in (first, second)]
    if comparison is None and all(len(g) >= 2 for g in groups):
        comparison = compare_groups(*groups)
    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.subplots()
    both = groups[0] + groups[1]
    if both:
        auto = len(np.histogram_bin_edges(both, bins="auto")) - 1  # 2 bins for 3 values, hundreds for outliers
        edges = np.histogram_bin_edges(both, bins=min(max(auto, 10), 40))
    else:
        edges = np.linspace(0, 1, 11)
        ax.text(0.5, 0.5, "no values in either group", ha="center", va="center", transform=ax.transAxes)
    for i, (label, values) in enumerate(zip(labels, groups)):
        # matplotlib's stub types bins as int | Sequence | str; hist takes an array of edges, as documented
        ax.hist(
            values,
            bins=edges,  # type: ignore[arg-type]
            alpha=0.5,
            color=f"C{i}",
            label=f"{label} (n={len(values)})",
        )
        if values:
            mean = sum(values) / len(values)
            ax.axvline(mean, color=f"C{i}", linestyle="--", label=f"{label} mean {mean:.2f}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    legend(fig, [ax])
    if comparison is not None:
        lo, hi = comparison.d_ci
        summary = (
            f"d = {comparison.cohens_d:.2f} [{lo:.2f}, {hi:.2f}], AUROC = {comparison.auroc:.2f}, "
            f"p = {comparison.p_value:.2g}"
        )
    else:
        summary = f"too few values to compare (n={len(groups[0])} and n={len(groups[1])}; need 2 each)"
    ax.set_title(f"{title or f'{labels[0]} vs {labels[1]}'}\n{summary}", fontsize="medium")
    return fig
