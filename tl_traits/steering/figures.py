"""Steering figures: a dev search's steering score, trait score and coherence against strength."""

from __future__ import annotations

from typing import Mapping

from tl_traits.core.extras import require

require("matplotlib")  # the [report] extra: a missing one is named in the error
from matplotlib.figure import Figure

from tl_traits.core.figures import legend
from tl_traits.steering.results import SteeringResult, direction_word

PANELS = (("score", "steering score"), ("trait", "trait score"), ("coherence", "coherence"))


def strength_curves(
    result: SteeringResult | Mapping[str, SteeringResult], title: str | None = None, trait_label: str = "trait score"
) -> Figure:
    """Steering score, trait and coherence against strength on the dev questions, a line per candidate setting.

    The unsteered dev answers are the dotted line, the coherence threshold dashed, and each group's
    setting chosen on dev a star. One row per result (e.g. toward and away).
    """
    results = dict(result) if isinstance(result, Mapping) else {direction_word(result.direction): result}
    candidates = list(dict.fromkeys(c for res in results.values() for c in res.candidates))
    colors = {c: f"C{i % 10}" for i, c in enumerate(candidates)}
    fig = Figure(figsize=(13, 1 + 3.4 * len(results)), layout="constrained")
    grid = fig.subplots(len(results), len(PANELS), squeeze=False, sharey="col")
    for (label, res), axes in zip(results.items(), grid):
        chosen = {id(o.chosen) for o in res.outcomes.values()}
        base = res.baseline["dev"]
        for candidate in res.candidates:
            runs = res.runs_of(candidate)
            for ax, (part, _) in zip(axes, PANELS):
                points = [
                    (r.strength, r.answers.mean(part), id(r) in chosen)
                    for r in runs
                    if r.answers.mean(part) is not None
                ]
                if not points:
                    continue
                xs, ys, stars = zip(*points)
                ax.plot(xs, ys, marker="o", color=colors[candidate], label=candidate.label)
                for x, y, star in points:
                    if star:
                        ax.plot(
                            [x],
                            [y],
                            marker="*",
                            markersize=16,
                            color=colors[candidate],
                            markeredgecolor="black",
                            linestyle="none",
                            label="chosen on dev",
                        )
        for ax, (part, name) in zip(axes, PANELS):
            value = base.mean(part)
            if value is not None:
                ax.axhline(value, color="grey", linestyle=":", label="unsteered")
            if part == "coherence":
                ax.axhline(
                    res.threshold, color="black", linestyle="--", linewidth=0.9, label=f"threshold {res.threshold:g}"
                )
            ax.set_xscale("log")
            ax.set_xlabel("strength (x the layer's mean activation norm)")
            ax.set_ylabel(trait_label if part == "trait" else name)
            ax.set_title(f"{label}: {trait_label if part == 'trait' else name}", fontsize="medium")
            ax.grid(alpha=0.3)
    fig.suptitle(title or "Steering search (dev questions)")
    legend(fig, grid.ravel())
    return fig
