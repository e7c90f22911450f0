"""stats: AUROC, Cohen's d, accuracy and midpoint against sklearn / numpy, batched == per layer, clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from tl_traits.core import stats

SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def score_pairs(draw, layers: int = 1, min_size: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """[layers, n] and [layers, m] scores; small integer grids half the time, so ties are common."""
    n, m = draw(st.integers(min_size, 25)), draw(st.integers(min_size, 25))
    if draw(st.booleans()):
        values = st.integers(-3, 3).map(float)
    else:
        values = st.floats(-1e3, 1e3, allow_nan=False, width=32)
    pos = draw(st.lists(values, min_size=layers * n, max_size=layers * n))
    neg = draw(st.lists(values, min_size=layers * m, max_size=layers * m))
    return np.array(pos).reshape(layers, n), np.array(neg).reshape(layers, m)


def reference_d(pos: np.ndarray, neg: np.ndarray) -> float:
    n1, n2 = len(pos), len(neg)
    pooled = np.sqrt(((n1 - 1) * pos.var(ddof=1) + (n2 - 1) * neg.var(ddof=1)) / (n1 + n2 - 2))
    return (pos.mean() - neg.mean()) / pooled


@SETTINGS
@given(score_pairs())
def test_auroc_matches_sklearn_with_ties(pair):
    pos, neg = pair[0][0], pair[1][0]
    expected = roc_auc_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg])
    got = stats.auroc(torch.tensor(pos), torch.tensor(neg))
    assert got.shape == () and abs(got.item() - expected) < 1e-12


@SETTINGS
@given(score_pairs(min_size=2))
def test_cohens_d_matches_numpy(pair):
    pos, neg = pair[0][0], pair[1][0]
    got = stats.cohens_d(torch.tensor(pos), torch.tensor(neg)).item()
    spread = (len(pos) - 1) * pos.var(ddof=1) + (len(neg) - 1) * neg.var(ddof=1)
    scale = 1 + max(np.abs(pos).max(), np.abs(neg).max())
    if spread > 1e-6 * scale**2:  # else rounding, not the formula, decides the digits
        assert got == pytest.approx(reference_d(pos, neg), rel=1e-6, abs=1e-9)
    else:
        assert np.isfinite(got)


@SETTINGS
@given(score_pairs(layers=3), st.floats(-5, 5))
def test_batched_equals_per_layer(pair, threshold):
    pos, neg = torch.tensor(pair[0]), torch.tensor(pair[1])
    thresholds = torch.tensor([threshold, threshold + 1, threshold - 1], dtype=torch.float64)
    batched = {
        "auroc": stats.auroc(pos, neg),
        "cohens_d": stats.cohens_d(pos, neg),
        "accuracy": stats.accuracy_at_threshold(pos, neg, thresholds),
        "midpoint": stats.midpoint(pos, neg),
    }
    for layer in range(3):
        p, q, t = pos[layer], neg[layer], thresholds[layer]
        per_layer = {
            "auroc": stats.auroc(p, q),
            "cohens_d": stats.cohens_d(p, q),
            "accuracy": stats.accuracy_at_threshold(p, q, t),
            "midpoint": stats.midpoint(p, q),
        }
        for name, value in per_layer.items():
            assert batched[name].shape == (3,)
            torch.testing.assert_close(batched[name][layer], value, rtol=1e-12, atol=1e-12, msg=name)


@SETTINGS
@given(score_pairs(), st.floats(-5, 5))
def test_accuracy_and_midpoint_by_hand(pair, threshold):
    pos, neg = pair[0][0], pair[1][0]
    right = (pos > threshold).sum() + (neg <= threshold).sum()
    got = stats.accuracy_at_threshold(torch.tensor(pos), torch.tensor(neg), threshold)
    assert got.item() == pytest.approx(right / (len(pos) + len(neg)))
    mid = stats.midpoint(torch.tensor(pos), torch.tensor(neg)).item()
    assert mid == pytest.approx((pos.mean() + neg.mean()) / 2, rel=1e-12, abs=1e-9)


def test_known_values_and_dtypes():
    pos, neg = torch.tensor([3.0, 2.0, 1.0]), torch.tensor([1.0, 0.0])
    assert stats.auroc(pos, neg).item() == pytest.approx((2 + 2 + 1.5) / 6)
    assert stats.auroc(neg, pos).item() == pytest.approx(1 - (2 + 2 + 1.5) / 6)
    assert stats.auroc(pos, neg).dtype == torch.float32  # the caller's dtype comes back
    assert stats.cohens_d(pos, neg).item() == pytest.approx(reference_d(pos.numpy(), neg.numpy()), rel=1e-6)
    assert stats.accuracy_at_threshold(pos, neg, 1.0).item() == pytest.approx(4 / 5)  # 1.0 counts as negative
    assert stats.auroc(torch.tensor([1, 2]), torch.tensor([0])).dtype == torch.get_default_dtype()


def test_degenerate_spread_is_finite():
    same = torch.ones(2, 4)
    assert stats.cohens_d(same, same).tolist() == [0.0, 0.0]
    apart = stats.cohens_d(same + 1, same)
    assert torch.isfinite(apart).all() and (apart > 1e6).all()
    one_each = stats.cohens_d(torch.tensor([2.0]), torch.tensor([1.0]))  # no degrees of freedom at all
    assert torch.isfinite(one_each) and one_each > 0


@pytest.mark.parametrize("fn", [stats.auroc, stats.cohens_d, stats.midpoint])
def test_empty_inputs_are_refused(fn):
    with pytest.raises(ValueError, match="needs at least one positive and one negative score"):
        fn(torch.tensor([]), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="needs at least one positive and one negative score"):
        fn(torch.ones(3, 2), torch.ones(3, 0))
    with pytest.raises(ValueError, match="needs at least one positive"):
        stats.accuracy_at_threshold(torch.tensor([1.0]), torch.tensor([]), 0.0)


def test_mismatched_layers_are_refused():
    with pytest.raises(ValueError, match="must share their leading"):
        stats.auroc(torch.ones(3, 5), torch.ones(4, 5))


def test_spearman_averages_tied_ranks():
    from tl_traits.core.stats import spearman

    # ranks of x: 1, 2.5, 2.5, 4; of y: 1, 2, 3, 4 -> Pearson of the ranks
    assert spearman(torch.tensor([1.0, 2.0, 2.0, 3.0]), torch.tensor([10.0, 20.0, 30.0, 40.0])) == pytest.approx(
        0.9486832980505138
    )
    assert spearman(torch.tensor([3.0, 2.0, 1.0]), torch.tensor([1.0, 2.0, 3.0])) == pytest.approx(-1.0)
    assert math.isnan(spearman(torch.tensor([1.0, 1.0, 1.0]), torch.tensor([1.0, 2.0, 3.0])))


def test_bootstrap_interval_is_seeded_and_contains_the_mean():
    from tl_traits.core.stats import bootstrap_interval

    values = [float(v) for v in range(20)]
    low, high = bootstrap_interval(values, resamples=1000)
    assert low < sum(values) / len(values) < high
    assert (low, high) == bootstrap_interval(values, resamples=1000)  # the same seed, the same interval
    assert bootstrap_interval([3.0], resamples=50) == (3.0, 3.0)
    with pytest.raises(stats.StatsError, match="at least one value"):
        bootstrap_interval([])


@pytest.mark.parametrize("side", ["pos", "neg"])
def test_auroc_refuses_a_nan_score_instead_of_counting_it_as_a_win(side):
    """Sorted last, a NaN positive beat every negative: a judge that returned NaN calibrated at AUROC 1.000."""
    nan, scores = float("nan"), torch.tensor([0.2, 0.4, 0.6])
    pos, neg = (torch.full((3,), nan), scores) if side == "pos" else (scores, torch.tensor([nan, 0.1, nan]))
    with pytest.raises(
        stats.StatsError,
        match=f"{3 if side == 'pos' else 2} of the {'positive' if side == 'pos' else 'negative'} scores are NaN",
    ):
        stats.auroc(pos, neg)
    with pytest.raises(stats.StatsError, match="NaN"):  # batched over layers too: one NaN in any layer
        stats.auroc(torch.stack([scores, pos if side == "pos" else scores]), torch.stack([scores, neg]))
