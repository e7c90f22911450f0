"""Steering figures: a coefficient search's trait score and coherence against strength."""

from __future__ import annotations

from typing import Mapping

from tl_traits.core.extras import require

require("matplotlib")  # the [report] extra: a missing one is named in the error
from matplotlib.figure import Figure

from tl_traits.core.figures import legend
from tl_traits.steering.evaluation import EvaluationResult


def strength_curves(
    result: EvaluationResult | Mapping[str, EvaluationResult], title: str | None = None, trait_label: str = "trait score"
) -> Figure:
    """Trait score and coherence against steering strength, one line per layer; one row per result."""
    results = dict(result) if isinstance(result, Mapping) else {direction_label(result.direction): result}
    layers = sorted({run.layer for res in results.values() for run in res.runs})
    colors = {layer: f"C{i % 10}" for i, layer in enumerate(layers)}
    fig = Figure(figsize=(11, 1 + 3.4 * len(results)), layout="constrained")
    grid = fig.subplots(len(results), 2, squeeze=False, sharey="col")
    for (label, res), (trait_ax, coh_ax) in zip(results.items(), grid):
        for layer in layers:
            runs = sorted((r for r in res.runs if r.layer == layer), key=lambda r: r.strength)
            for ax, field in ((trait_ax, "trait_mean"), (coh_ax, "coherence_mean")):
                points = [(r.strength, getattr(r, field)) for r in runs if getattr(r, field) is not None]
                if points:
                    xs, ys = zip(*points)
                    ax.plot(xs, ys, marker="o", color=colors[layer], label=f"layer {layer}")
        if res.baseline_trait is not None:
            trait_ax.axhline(res.baseline_trait, color="grey", linestyle=":", label="unsteered")
        if res.baseline_coherence is not None:
            coh_ax.axhline(res.baseline_coherence, color="grey", linestyle=":", label="unsteered")
        coh_ax.axhline(res.threshold, color="black", linestyle="--", linewidth=0.9, label=f"threshold {res.threshold:g}")
        trait_ax.set_ylabel(trait_label)
        coh_ax.set_ylabel("coherence")
        trait_ax.set_title(f"{label}: {trait_label}", fontsize="medium")
        coh_ax.set_title(f"{label}: coherence", fontsize="medium")
        for ax in (trait_ax, coh_ax):
            ax.set_xlabel("strength (x mean activation norm)")
            ax.grid(alpha=0.3)
    fig.suptitle(title or "Steering sweep")
    legend(fig, grid.ravel())
    return fig


def direction_label(direction: int) -> str:
    return "toward the trait" if direction > 0 else "away from the trait"

