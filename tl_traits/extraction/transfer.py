"""Detection beyond the training set: vectors scored on another labelled set, and learning curves over training size."""

from __future__ import annotations

import random
from typing import Any, Mapping, Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from tl_traits.core import stats
from tl_traits.core.capture import ActivationSet
from tl_traits.core.errors import TlTraitsError
from tl_traits.core.trait_sets import load_trait
from tl_traits.core.vectors import TraitVector
from tl_traits.extraction.extract import fit_directions, score_directions


class TransferError(TlTraitsError):
    """An evaluation set that cannot score a vector: no labels, a missing class, or layers the vector lacks."""


def transfer_metrics(vector: TraitVector, acts: ActivationSet) -> dict[str, Float[Tensor, " layer"]]:
    """AUROC and Cohen's d of the vector's projections on a labelled set (label 1 = trait shown), per vector layer.

    `acts` is any capture with labels, e.g. `capture(model, other_set, layers=vector.layers)`;
    the vector's own polarity is kept, so AUROC < 0.5 means the direction points the wrong way there.
    """
    return directions_on(vector.directions, vector.layers, acts)


def directions_on(
    directions: Float[Tensor, "layer d_model"], layers: Sequence[int], acts: ActivationSet
) -> dict[str, Float[Tensor, " layer"]]:
    """`transfer_metrics` for bare unit directions at `layers`."""
    if acts.labels is None:
        raise TransferError(
            "the evaluation activations have no labels; capture a TraitDataset (positives = trait shown)"
        )
    n_pos, n_neg = int((acts.labels == 1).sum()), int((acts.labels == 0).sum())
    if n_pos < 2 or n_neg < 2:
        raise TransferError(
            f"the evaluation set has {n_pos} positive and {n_neg} negative examples; each class needs at least 2"
        )
    missing = [layer for layer in layers if layer not in acts.layers]
    if missing:
        raise TransferError(
            f"the evaluation activations lack layers {missing}; capture them with layers={list(layers)}"
        )
    rows = [acts.layers.index(layer) for layer in layers]
    scores = torch.einsum("kld,ld->lk", acts.acts[:, rows].float(), directions.float())
    pos, neg = scores[:, acts.labels == 1], scores[:, acts.labels == 0]
    return {"auroc": stats.auroc(pos, neg), "cohens_d": stats.cohens_d(pos, neg)}


def learning_curve(
    acts: ActivationSet,
    trait: Any,
    methods: Sequence[str],
    *,
    eval_sets: Mapping[str, ActivationSet],
    sizes: Sequence[int] = (4, 8, 16, 32),
    seeds: Sequence[int] = (0, 1, 2),
    val_split: float = 0.2,
    split_seed: int = 0,
    method_options: Mapping[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Fit each method on n training pairs (n in `sizes`, a fresh random draw per seed) and score it.

    The in-distribution validation split is fixed (`val_split`, `split_seed`) and chooses the layer
    (held-out AUROC, ties to the larger Cohen's d); every evaluation set is then read at that layer,
    never at its own best one. One row per (method, n, seed) with the chosen layer, the in-distribution
    AUROC there, and `AUROC <eval name>` per evaluation set.
    """
    dataset = load_trait(trait)
    if len(acts) != len(dataset.examples):
        raise TransferError(f"activations hold {len(acts)} examples but the trait has {len(dataset.examples)}")
    train_idx, val_idx = dataset.split_indices(val_split, split_seed)
    if not val_idx:
        raise TransferError("learning_curve needs a validation split to choose the layer; pass val_split > 0")
    n_pos = len(dataset.positive)
    pos_idx = [i for i in train_idx if i < n_pos]
    neg_idx = [i for i in train_idx if i >= n_pos]
    val = acts.subset(val_idx)
    rows = []
    for n in sizes:
        if n > min(len(pos_idx), len(neg_idx)):
            raise TransferError(f"size {n} exceeds the {min(len(pos_idx), len(neg_idx))} training examples per side")
        for seed in seeds:
            rng = random.Random(seed * 1000 + n)
            if dataset.paired:  # keep contrastive pairs together
                chosen_pos = sorted(rng.sample(pos_idx, n))
                chosen_neg = [i + n_pos for i in chosen_pos]
            else:
                chosen_pos, chosen_neg = sorted(rng.sample(pos_idx, n)), sorted(rng.sample(neg_idx, n))
            train_pos, train_neg = acts.acts[chosen_pos], acts.acts[chosen_neg]
            for method in methods:
                directions, _ = fit_directions(
                    method,
                    train_pos,
                    train_neg,
                    layers=acts.layers,
                    hook=acts.hook,
                    seed=seed,
                    options=(method_options or {}).get(method),
                )
                metrics = score_directions(directions, train_pos, train_neg, val.by_label(1), val.by_label(0))
                chosen = TraitVector(
                    method, directions, list(acts.layers), acts.token_norms.mean(0), metrics, {}, hook=acts.hook
                )
                layer = chosen.best_layer("auroc")
                i = acts.layers.index(layer)
                row = {
                    "method": method,
                    "pairs": n,
                    "seed": seed,
                    "layer": layer,
                    "in-distribution AUROC": float(metrics["auroc"][i]),
                }
                for name, eval_acts in eval_sets.items():
                    row[f"AUROC {name}"] = float(directions_on(directions[i : i + 1], [layer], eval_acts)["auroc"][0])
                rows.append(row)
    return rows
