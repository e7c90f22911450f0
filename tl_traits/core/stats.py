"""Pure statistics: separation of positive vs negative scores (AUROC, Cohen's d, accuracy, midpoint), ranks, intervals.

Each takes `[*layer, n]` and `[*layer, m]` scores and reduces the last axis, so one call scores every layer.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from tl_traits.core.errors import TlTraitsError

_EPS = 1e-12  # floor on the pooled std: a zero spread gives a large finite d, never inf or nan


class StatsError(TlTraitsError):
    """Inputs a statistic cannot be computed from (empty, mismatched, one class)."""


def auroc(pos_scores: Float[Tensor, "*layer n"], neg_scores: Float[Tensor, "*layer m"]) -> Float[Tensor, " *layer"]:
    """P(a positive outscores a negative), ties counted 1/2 (the Mann-Whitney U statistic / (n m)).

    A NaN score is refused (StatsError), never ranked: sorted last, it would count as a win over every
    negative, and a judge that returns NaN would look perfect. Drop unscored items first (and count them)."""
    pos, neg, dtype = _pair(pos_scores, neg_scores, "auroc")
    for label, x in (("positive", pos), ("negative", neg)):
        if bool(x.isnan().any()):
            raise StatsError(
                f"auroc: {int(x.isnan().sum())} of the {label} scores are NaN; a NaN has no rank. "
                "Leave unscored items out (and report how many) before ranking"
            )
    neg_sorted = neg.sort(dim=-1).values.contiguous()
    below = torch.searchsorted(neg_sorted, pos.contiguous(), side="left")
    not_above = torch.searchsorted(neg_sorted, pos.contiguous(), side="right")
    wins = (below + not_above).sum(dim=-1).double() / 2  # below + ties / 2, kept exact in integers
    return (wins / (pos.shape[-1] * neg.shape[-1])).to(dtype)


def cohens_d(pos: Float[Tensor, "*layer n"], neg: Float[Tensor, "*layer m"]) -> Float[Tensor, " *layer"]:
    """(mean pos - mean neg) / pooled std (ddof 1); 0 where both the spread and the gap are 0."""
    pos, neg, dtype = _pair(pos, neg, "cohens_d")
    n1, n2 = pos.shape[-1], neg.shape[-1]
    ss = pos.var(dim=-1, correction=0) * n1 + neg.var(dim=-1, correction=0) * n2  # = (n1-1)s1² + (n2-1)s2²
    pooled = (ss / max(n1 + n2 - 2, 1)).sqrt()
    return ((pos.mean(dim=-1) - neg.mean(dim=-1)) / pooled.clamp_min(_EPS)).to(dtype)


def accuracy_at_threshold(
    pos: Float[Tensor, "*layer n"], neg: Float[Tensor, "*layer m"], threshold: float | Float[Tensor, " *layer"]
) -> Float[Tensor, " *layer"]:
    """Fraction classified right by `score > threshold` (positives above, negatives at or below)."""
    pos, neg, dtype = _pair(pos, neg, "accuracy_at_threshold")
    t = torch.as_tensor(threshold, dtype=pos.dtype, device=pos.device)
    if t.ndim:
        t = t.unsqueeze(-1)
    right = (pos > t).sum(dim=-1) + (neg <= t).sum(dim=-1)
    return (right.double() / (pos.shape[-1] + neg.shape[-1])).to(dtype)


def midpoint(pos: Float[Tensor, "*layer n"], neg: Float[Tensor, "*layer m"]) -> Float[Tensor, " *layer"]:
    """Halfway between the two class means: the natural decision threshold of a direction."""
    pos, neg, dtype = _pair(pos, neg, "midpoint")
    return ((pos.mean(dim=-1) + neg.mean(dim=-1)) / 2).to(dtype)


def spearman(x: Float[Tensor, " n"], y: Float[Tensor, " n"]) -> float:
    """Spearman's rank correlation (ties get their average rank); NaN when either side is constant."""
    x, y = torch.as_tensor(x, dtype=torch.float64).reshape(-1), torch.as_tensor(y, dtype=torch.float64).reshape(-1)
    if x.shape != y.shape or x.numel() < 2:
        raise StatsError(
            f"spearman needs two equal-length series of at least 2 values, got {x.numel()} and {y.numel()}"
        )
    rx, ry = _average_ranks(x), _average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    scale = (rx.square().sum() * ry.square().sum()).sqrt()
    return float((rx * ry).sum() / scale) if float(scale) > 0 else float("nan")


def _average_ranks(values: Tensor) -> Tensor:
    order = values.argsort()
    ranks = torch.empty_like(values)
    ranks[order] = torch.arange(1, values.numel() + 1, dtype=values.dtype)
    _, group = torch.unique(values, return_inverse=True)
    totals = torch.zeros(int(group.max()) + 1, dtype=values.dtype).index_add_(0, group, ranks)
    return (totals / torch.bincount(group).to(values.dtype))[group]


def _pair(pos: Tensor, neg: Tensor, name: str) -> tuple[Tensor, Tensor, torch.dtype]:
    """Both as float64 (the caller's float dtype is returned for the result), after shape checks."""
    pos, neg = torch.as_tensor(pos), torch.as_tensor(neg)
    if pos.ndim == 0 or neg.ndim == 0 or pos.shape[-1] == 0 or neg.shape[-1] == 0:
        raise StatsError(
            f"{name} needs at least one positive and one negative score; got shapes "
            f"{tuple(pos.shape)} and {tuple(neg.shape)}"
        )
    if pos.shape[:-1] != neg.shape[:-1]:
        raise StatsError(
            f"{name}: positive scores {tuple(pos.shape)} and negative scores {tuple(neg.shape)} must share "
            "their leading (layer) dims; only the last axis (examples) may differ"
        )
    dtype = pos.dtype if pos.dtype.is_floating_point else torch.get_default_dtype()
    return pos.double(), neg.double(), dtype


def fit_logistic(
    x: Float[Tensor, "n f"], y: Float[Tensor, " n"], *, l2: float = 1.0, steps: int = 50
) -> tuple[Float[Tensor, " f"], float]:
    """L2-penalised logistic regression by Newton's method: (coefficients, intercept), intercept unpenalised.

    Minimises sum of log-losses + l2 / 2 * |w|^2 over standardised features; deterministic, no sklearn.
    """
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise StatsError(f"fit_logistic needs x [n, f] and y [n]; got {tuple(x.shape)} and {tuple(y.shape)}")
    if not (0 < float(y.sum()) < len(y)):
        raise StatsError("fit_logistic needs both classes among the labels")
    design = torch.cat([x.double(), torch.ones(len(x), 1, dtype=torch.float64)], dim=1)
    target = y.double()
    theta = torch.zeros(design.shape[1], dtype=torch.float64)
    penalty = torch.full_like(theta, float(l2))
    penalty[-1] = 0.0
    for _ in range(steps):
        p = torch.sigmoid(design @ theta)
        grad = design.T @ (p - target) + penalty * theta
        hess = (
            design.T @ (design * (p * (1 - p)).unsqueeze(1))
            + torch.diag(penalty)
            + 1e-9 * torch.eye(len(theta), dtype=torch.float64)
        )
        step = torch.linalg.solve(hess, grad)
        theta = theta - step
        if step.abs().max() < 1e-10:
            break
    return theta[:-1].float(), float(theta[-1])


def bootstrap_interval(
    values: Sequence[float], *, resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """A percentile bootstrap interval for the mean of `values` (for paired data, pass the differences).

    Resamples the values with replacement `resamples` times (seeded, so a rerun gives the same interval).
    """
    data = torch.as_tensor([float(v) for v in values], dtype=torch.float64)
    if data.numel() == 0:
        raise StatsError("bootstrap_interval needs at least one value")
    if not 0 < level < 1 or resamples < 1:
        raise StatsError(f"bootstrap_interval needs 0 < level < 1 and resamples >= 1, got {level} and {resamples}")
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(0, data.numel(), (resamples, data.numel()), generator=generator)
    means = data[picks].mean(dim=1)
    tail = (1 - level) / 2
    low, high = torch.quantile(means, torch.tensor([tail, 1 - tail], dtype=torch.float64)).tolist()
    return float(low), float(high)


def shared_key_groups(keys: list[tuple[Any, ...]]) -> list[list[int]]:
    """Indices joined when they share any key (union-find), each unit in index order, units by their first index."""
    parent: list[int] = list(range(len(keys)))
    first: dict[Any, int] = {}

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i, item in enumerate(keys):
        for key in item:
            a, b = root(i), root(first.setdefault(key, i))
            parent[max(a, b)] = min(a, b)
    units: dict[int, list[int]] = {}
    for i in range(len(keys)):
        units.setdefault(root(i), []).append(i)
    return list(units.values())
