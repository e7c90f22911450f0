"""SAE figures: the feature-density histogram, an SAE's usual health check."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from tl_traits.core.extras import require

require("matplotlib")  # the [report] extra: a missing one is named in the error
from matplotlib.figure import Figure


def feature_density_figure(density: Sequence[float], title: str | None = None) -> Figure:
    """Histogram of log10 feature firing rates (an SAE's usual health check); dead features counted apart."""
    rates = np.asarray(density, dtype=float)
    alive = rates[rates > 0]
    fig = Figure(figsize=(6.0, 3.6), layout="constrained")
    ax = fig.subplots()
    if alive.size:
        ax.hist(np.log10(alive), bins=50, color="C0")
    ax.set(
        xlabel="log10 firing rate on held-out tokens",
        ylabel="features",
        title=title or f"SAE feature density ({rates.size - alive.size} of {rates.size} dead)",
    )
    ax.grid(alpha=0.3)
    return fig
