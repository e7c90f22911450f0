"""Quantization figures: cosine to float32 and residual drift by layer, one line per backend."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tl_traits.core.extras import require

require("matplotlib")  # the [report] extra: a missing one is named in the error
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from tl_traits.core.figures import legend

if TYPE_CHECKING:
    from tl_traits.quantization.study import QuantStudy


def quantization_figure(study: QuantStudy, title: str | None = None) -> Figure:
    """Cosine to float32 by layer (one panel per method, one line per backend) and residual drift by layer."""
    done = [r for r in study.backends if not r.skipped]
    n = len(study.methods) + 1
    fig = Figure(figsize=(1.5 + 4.2 * n, 4), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    colours = {r.backend: f"C{i}" for i, r in enumerate(done)}
    for ax, method in zip(axes, study.methods):
        for r in done:
            ax.plot(study.layers, r.cosine[method], marker=".", color=colours[r.backend], label=r.backend)
        ax.set(title=f"{method}: re-extracted vs float32", xlabel="layer", ylabel="cosine similarity")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    drift_ax = axes[-1]
    for r in done:
        drift_ax.plot(
            study.layers, [max(d, 1e-7) for d in r.drift], marker=".", color=colours[r.backend], label=r.backend
        )
    drift_ax.set(title="residual drift", xlabel="layer", ylabel="mean |h_q - h| / |h|", yscale="log")
    drift_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    drift_ax.grid(alpha=0.3)
    fig.suptitle(title or f"{study.trait}: how quantization bends the direction")
    if done:
        legend(fig, list(axes))
    return fig
