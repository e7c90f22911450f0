"""Vectors read on another labelled set, and learning curves: on activations with a planted direction."""

from __future__ import annotations

import pytest
import torch

import tl_traits as tt
from tl_traits.core.capture import ActivationSet
from tl_traits.core.trait_sets import TraitDataset, TraitExample
from tl_traits.extraction.transfer import TransferError, directions_on, learning_curve, transfer_metrics

D, LAYERS = 16, [0, 1, 2]


def planted(n_pos: int, n_neg: int, *, shift: float, layer_gain=(0.2, 1.0, 3.0), seed: int = 0) -> ActivationSet:
    """Noise, with positives pushed along axis 0 by `shift * gain` at each layer (layer 2 separates best)."""
    gen = torch.Generator().manual_seed(seed)
    acts = torch.randn(n_pos + n_neg, len(LAYERS), D, generator=gen)
    for i, gain in enumerate(layer_gain):
        acts[:n_pos, i, 0] += shift * gain
    labels = torch.tensor([1] * n_pos + [0] * n_neg)
    return ActivationSet(acts, acts.norm(dim=-1), labels, list(LAYERS), "resid_post", "response[:]")


def paired_dataset(n: int) -> TraitDataset:
    prompts = [f"question {i}" for i in range(n)]
    return TraitDataset("planted", [TraitExample(p, "yes") for p in prompts], [TraitExample(p, "no") for p in prompts])


def axis_vector(sign: float = 1.0) -> tt.TraitVector:
    directions = torch.zeros(len(LAYERS), D)
    directions[:, 0] = sign
    return tt.TraitVector("mean_diff", directions, list(LAYERS), torch.ones(len(LAYERS)), {}, {})


def test_transfer_metrics_reads_the_planted_axis_and_keeps_polarity():
    acts = planted(30, 30, shift=2.0)
    right = transfer_metrics(axis_vector(), acts)
    assert right["auroc"].shape == (3,) and right["cohens_d"].shape == (3,)
    assert right["auroc"][2] > 0.97 and right["auroc"][0] < right["auroc"][2]
    flipped = transfer_metrics(axis_vector(-1.0), acts)  # the wrong sign reads as below chance, not as 1 - AUROC hidden
    torch.testing.assert_close(flipped["auroc"], 1 - right["auroc"])
    orthogonal = directions_on(torch.eye(D)[1:2], [2], acts)
    assert 0.3 < float(orthogonal["auroc"][0]) < 0.7


def test_transfer_metrics_refuses_sets_it_cannot_score():
    acts = planted(10, 10, shift=1.0)
    with pytest.raises(TransferError, match="no labels"):
        transfer_metrics(
            axis_vector(), ActivationSet(acts.acts, acts.token_norms, None, LAYERS, "resid_post", "response[:]")
        )
    with pytest.raises(TransferError, match="1 positive and 10 negative"):
        transfer_metrics(axis_vector(), acts.subset(list(range(9, 20))))
    with pytest.raises(TransferError, match=r"lack layers \[5\]"):
        directions_on(torch.eye(D)[:1], [5], acts)


def test_learning_curve_picks_the_layer_in_distribution_and_grows_with_pairs():
    train = planted(40, 40, shift=1.0, seed=1)
    task = planted(40, 40, shift=2.0, layer_gain=(0.0, 1.0, 1.0), seed=2)  # a different set: layer 0 carries nothing
    rows = learning_curve(
        train,
        paired_dataset(40),
        ["mean_diff", "random_baseline"],
        eval_sets={"task": task},
        sizes=(2, 16),
        seeds=(0, 1, 2),
    )
    assert len(rows) == 2 * 2 * 3
    assert {r["pairs"] for r in rows} == {2, 16} and {r["seed"] for r in rows} == {0, 1, 2}

    def mean(method: str, n: int, key: str) -> float:
        found = [r[key] for r in rows if r["method"] == method and r["pairs"] == n]
        return sum(found) / len(found)

    assert mean("mean_diff", 16, "AUROC task") > 0.75
    assert mean("mean_diff", 16, "in-distribution AUROC") > mean("mean_diff", 2, "in-distribution AUROC") + 0.1
    assert mean("mean_diff", 16, "AUROC task") > mean("random_baseline", 16, "AUROC task") + 0.2
    assert all(r["layer"] == 2 for r in rows if r["method"] == "mean_diff" and r["pairs"] == 16)
    # the same draw is reproducible
    again = learning_curve(train, paired_dataset(40), ["mean_diff"], eval_sets={"task": task}, sizes=(2,), seeds=(1,))
    first = next(r for r in rows if r["method"] == "mean_diff" and r["pairs"] == 2 and r["seed"] == 1)
    assert again[0] == first


def test_learning_curve_errors_name_the_problem():
    train = planted(10, 10, shift=1.0)
    with pytest.raises(TransferError, match="exceeds the 8 training examples"):
        learning_curve(train, paired_dataset(10), ["mean_diff"], eval_sets={}, sizes=(9,))
    with pytest.raises(TransferError, match="activations hold 20 examples but the trait has 24"):
        learning_curve(train, paired_dataset(12), ["mean_diff"], eval_sets={}, sizes=(2,))
    with pytest.raises(TransferError, match="val_split > 0"):
        learning_curve(train, paired_dataset(10), ["mean_diff"], eval_sets={}, sizes=(2,), val_split=0.0)


def test_learning_curve_figure_has_a_line_per_method():
    from tl_traits.extraction.figures import learning_curves

    train = planted(20, 20, shift=1.0)
    rows = learning_curve(
        train, paired_dataset(20), ["mean_diff", "probe"], eval_sets={"task": train}, sizes=(2, 8), seeds=(0, 1)
    )
    fig = learning_curves(rows, title="planted")
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert {"mean_diff", "probe"} <= set(labels)
