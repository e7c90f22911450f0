"""Extraction figures: held-out metrics of every method over layers."""

from __future__ import annotations

from typing import Any, Sequence

from tl_traits.core.extras import require

require("matplotlib")  # the [report] extra: a missing one is named in the error
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from tl_traits.core.figures import legend
from tl_traits.core.vectors import TraitVectors

LABELS = {"auroc": "AUROC (held out)", "accuracy": "accuracy (held out)", "cohens_d": "Cohen's d (held out)"}
BOUNDED = ("auroc", "accuracy")  # 0..1 with chance at 0.5
RANDOM = "random_baseline"


def layer_metrics(
    vectors: TraitVectors, metrics: Sequence[str] = ("auroc", "cohens_d"), title: str | None = None
) -> Figure:
    """One panel per metric, one line per method over layers; a dot at each method's best-AUROC layer."""
    fig = Figure(figsize=(1.5 + 4.5 * len(metrics), 4), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        for i, name in enumerate(vectors.methods):
            vec = vectors[name]
            if metric not in vec.metrics:
                continue
            style: dict[str, Any] = (
                {"color": "grey", "linestyle": "--"} if name == RANDOM else {"color": f"C{i}", "marker": "o"}
            )
            if name != RANDOM:  # the dot: the layer this method would be used at
                best = vec.best_layer("auroc" if "auroc" in vec.metrics else metric)
                style["markevery"] = [vec.layers.index(best)]
            ax.plot(vec.layers, vec.metrics[metric].float().tolist(), label=name, **style)
        if metric in BOUNDED:
            ax.axhline(0.5, color="black", linewidth=0.8, linestyle=":", label="chance")
            ax.set_ylim(-0.02, 1.02)  # saturated values at 1.0 stay visible above the frame
        ax.set_xlabel("layer")
        ax.set_ylabel(LABELS.get(metric, metric))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    dataset = vectors.metadata.get("dataset") or {}
    model = (vectors.metadata.get("model") or {}).get("name")
    fig.suptitle(title or f"{dataset.get('name', 'trait')}" + (f" ({model})" if model else ""))
    legend(fig, axes)
    return fig


def learning_curves(rows: Sequence[dict], eval_name: str = "task", title: str | None = None) -> Figure:
    """`learning_curve` rows as one line per method: mean AUROC on `eval_name` (solid) and in distribution
    (dotted) against training pairs, with the spread over draws shaded."""
    fig = Figure(figsize=(5.5, 4), layout="constrained")
    ax = fig.subplots()
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for i, method in enumerate(methods):
        by_n: dict[int, list[dict]] = {}
        for r in rows:
            if r["method"] == method:
                by_n.setdefault(r["pairs"], []).append(r)
        ns = sorted(by_n)
        ood = [[r[f"AUROC {eval_name}"] for r in by_n[n]] for n in ns]
        mean = [sum(v) / len(v) for v in ood]
        color = "grey" if method == RANDOM else f"C{i}"
        ax.plot(ns, mean, marker="o", color=color, label=method)
        ax.fill_between(ns, [min(v) for v in ood], [max(v) for v in ood], color=color, alpha=0.12)
        ind = [sum(r["in-distribution AUROC"] for r in by_n[n]) / len(by_n[n]) for n in ns]
        ax.plot(ns, ind, linestyle=":", color=color, alpha=0.7)
    ax.axhline(0.5, color="black", linewidth=0.8, linestyle=":")
    ax.set_xscale("log", base=2)
    ns = sorted({r["pairs"] for r in rows})
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("training pairs")
    ax.set_ylabel(f"AUROC (solid: {eval_name}, dotted: in distribution)")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    legend(fig, [ax])
    return fig
