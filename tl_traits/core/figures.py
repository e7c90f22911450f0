"""Figures to look at rather than read: metrics by layer, steering sweeps, group histograms.

Built as `matplotlib.figure.Figure` objects (no pyplot, no GUI backend); save or embed them as images.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from tl_traits.core.errors import TlTraitsError
from tl_traits.core.files import atomic_write_bytes

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

    from tl_traits.core.vectors import TraitVectors
    from tl_traits.monitoring.monitor import GroupComparison
    from tl_traits.quantization.study import QuantStudy
    from tl_traits.steering.evaluation import EvaluationResult

DPI = 120
FORMATS = {"png": "image/png", "svg": "image/svg+xml", "pdf": "application/pdf"}
LABELS = {"auroc": "AUROC (held out)", "accuracy": "accuracy (held out)", "cohens_d": "Cohen's d (held out)"}
BOUNDED = ("auroc", "accuracy")  # 0..1 with chance at 0.5
RANDOM = "random_baseline"


def layer_metrics(vectors: TraitVectors, metrics: Sequence[str] = ("auroc", "cohens_d"), title: str | None = None) -> Figure:
    """One panel per metric, one line per method over layers; a dot at each method's best-AUROC layer."""
    fig = Figure(figsize=(1.5 + 4.5 * len(metrics), 4), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        for i, name in enumerate(vectors.methods):
            vec = vectors[name]
            if metric not in vec.metrics:
                continue
            style = {"color": "grey", "linestyle": "--"} if name == RANDOM else {"color": f"C{i}", "marker": "o"}
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
    _legend(fig, axes)
    return fig


def steering_sweep(
    result: EvaluationResult | Mapping[str, EvaluationResult], title: str | None = None, trait_label: str = "trait score"
) -> Figure:
    """Trait score and coherence against steering strength, one line per layer; one row per result."""
    results = dict(result) if isinstance(result, Mapping) else {_direction_label(result.direction): result}
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
    _legend(fig, grid.ravel())
    return fig


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
        from tl_traits.monitoring.monitor import compare_groups

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
        ax.hist(values, bins=edges, alpha=0.5, color=f"C{i}", label=f"{label} (n={len(values)})")
        if values:
            mean = sum(values) / len(values)
            ax.axvline(mean, color=f"C{i}", linestyle="--", label=f"{label} mean {mean:.2f}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    _legend(fig, [ax])
    if comparison is not None:
        lo, hi = comparison.d_ci
        summary = f"d = {comparison.cohens_d:.2f} [{lo:.2f}, {hi:.2f}], AUROC = {comparison.auroc:.2f}, p = {comparison.p_value:.2g}"
    else:
        summary = f"too few values to compare (n={len(groups[0])} and n={len(groups[1])}; need 2 each)"
    ax.set_title(f"{title or f'{labels[0]} vs {labels[1]}'}\n{summary}", fontsize="medium")
    return fig


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
        drift_ax.plot(study.layers, [max(d, 1e-7) for d in r.drift], marker=".", color=colours[r.backend], label=r.backend)
    drift_ax.set(title="residual drift", xlabel="layer", ylabel="mean |h_q - h| / |h|", yscale="log")
    drift_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    drift_ax.grid(alpha=0.3)
    fig.suptitle(title or f"{study.trait}: how quantization bends the direction")
    if done:
        _legend(fig, list(axes))
    return fig


SWEEP_METRICS = {
    "asr": "attack success rate", "clean_accuracy": "clean accuracy (sentiment)",
    "clean_exact": "clean exact answers (instructions)", "clean_loss": "clean loss per token",
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
            ax.errorbar(stats["rate"] * 100, stats["mean"], yerr=[stats["mean"] - stats["min"], stats["max"] - stats["mean"]],
                        marker="o", capsize=3, color=f"C{i}", label=label)
        ax.set(title=SWEEP_METRICS[metric], xlabel="poisoned training examples (%)")
        if metric != "clean_loss":
            ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    fig.suptitle(title or "poison-rate sweep")
    _legend(fig, list(axes))
    return fig


def steering_sweep_figure(table: "pd.DataFrame", title: str | None = None) -> Figure:
    """Coherent trait delta by layer: one panel per trait, one line per method."""
    traits = sorted(table["trait"].unique())
    fig = Figure(figsize=(1.5 + 3.8 * len(traits), 3.8), layout="constrained")
    axes = fig.subplots(1, len(traits), squeeze=False)[0]
    for ax, trait in zip(axes, traits):
        part = table[table["trait"] == trait]
        for i, (method, rows) in enumerate(part.groupby("method")):
            rows = rows.sort_values("layer")
            ax.plot(rows["layer"], rows["coherent_delta"], marker="o", color=f"C{i}", label=method)
        ax.axhline(0, color="0.6", lw=0.8)
        if part["coherent_delta"].isna().all():
            ax.text(0.5, 0.5, "no setting stayed coherent", transform=ax.transAxes, ha="center", color="0.4")
        ax.set(title=trait, xlabel="layer", ylabel="coherent trait delta (0-100)")
        ax.grid(alpha=0.3)
    fig.suptitle(title or "steering sweep: best coherent delta per layer")
    _legend(fig, list(axes))
    return fig


def quantization_sweep_figure(table: "pd.DataFrame", title: str | None = None) -> Figure:
    """Per trait and backend: the re-extracted direction's mean cosine to float32 and the retained steering effect."""
    fig = Figure(figsize=(10.0, 3.8), layout="constrained")
    axes = fig.subplots(1, 2, squeeze=False)[0]
    rows = table.dropna(subset=["method"]) if "method" in table.columns else table
    for ax, metric, label in ((axes[0], "mean_cosine", "mean cosine to float32"),
                              (axes[1], "retained", "steering effect retained")):
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
    figures = {"poison": poison_sweep_figure, "steering": steering_sweep_figure,
               "quantization": quantization_sweep_figure}
    return figures[kind](table)


def feature_density_figure(density: Sequence[float], title: str | None = None) -> Figure:
    """Histogram of log10 feature firing rates (an SAE's usual health check); dead features counted apart."""
    rates = np.asarray(density, dtype=float)
    alive = rates[rates > 0]
    fig = Figure(figsize=(6.0, 3.6), layout="constrained")
    ax = fig.subplots()
    if alive.size:
        ax.hist(np.log10(alive), bins=50, color="C0")
    ax.set(xlabel="log10 firing rate on held-out tokens", ylabel="features",
           title=title or f"SAE feature density ({rates.size - alive.size} of {rates.size} dead)")
    ax.grid(alpha=0.3)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Write `fig` as PNG, SVG or PDF (by suffix), atomically: rendered in memory, then one rename."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise TlTraitsError(f"cannot save a figure as '{path.suffix}'; use one of {', '.join('.' + f for f in FORMATS)}")
    return atomic_write_bytes(path, _render(fig, fmt))


def figure_to_data_uri(fig: Figure, fmt: str = "png") -> str:
    """`data:image/png;base64,...`, for a self-contained HTML page."""
    if fmt not in FORMATS:
        raise TlTraitsError(f"unknown image format '{fmt}'; use one of {', '.join(FORMATS)}")
    return f"data:{FORMATS[fmt]};base64,{base64.b64encode(_render(fig, fmt)).decode('ascii')}"


def img_tag(fig: Figure, alt: str) -> str:
    return f'<img src="{figure_to_data_uri(fig)}" alt="{html.escape(alt)}" style="max-width:100%">'


# -- helpers ------------------------------------------------------------------------------------------
def _render(fig: Figure, fmt: str) -> bytes:
    buffer = io.BytesIO()
    metadata = {"svg": {"Date": None}, "pdf": {"CreationDate": None}}.get(fmt)  # no timestamps in the file
    fig.savefig(buffer, format=fmt, dpi=DPI, metadata=metadata)
    return buffer.getvalue()


def _legend(fig: Figure, axes: Sequence[Axes]) -> None:
    """One legend for the figure, outside the panels, each label once."""
    entries: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if entries:
        fig.legend(list(entries.values()), list(entries), loc="outside right upper", fontsize="small")


def _direction_label(direction: int) -> str:
    return "toward the trait" if direction > 0 else "away from the trait"
