"""Built-in extractors through the registry: shapes, unit norms, determinism, planted
directions, the probe vs sklearn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from jaxtyping import Float
from sklearn.linear_model import LogisticRegression
from tl_traits.plugins.extractors.probe import logistic_regression
from torch import Tensor

import tl_traits as tt

BUILTINS = ["mean_diff", "probe", "gradient", "pca_diff", "pca_center", "random_baseline"]
DATA_SEED = 1234  # not 0: random_baseline's own default seed must not draw the planted direction


def planted(
    n: int = 100, layers: int = 4, d: int = 64, a: float = 2.0, seed: int = DATA_SEED
) -> tuple[Float[Tensor, "n layer d"], Float[Tensor, "n layer d"], Float[Tensor, "layer d"]]:
    """pos = offset + noise + a·u, neg = offset + noise - a·u, isotropic unit noise, a known unit u per layer."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.nn.functional.normalize(torch.randn(layers, d, generator=gen), dim=-1)
    offset = 5 * torch.nn.functional.normalize(torch.randn(layers, d, generator=gen), dim=-1)
    pos = offset + torch.randn(n, layers, d, generator=gen) + a * u
    neg = offset + torch.randn(n, layers, d, generator=gen) - a * u
    return pos, neg, u


def cosines(directions: Tensor, u: Tensor) -> Tensor:
    return (directions * u).sum(-1) / (directions.norm(dim=-1) * u.norm(dim=-1))


def normalised(pos: Tensor, neg: Tensor) -> tuple[np.ndarray, np.ndarray]:
    x = torch.cat([pos, neg]).transpose(0, 1)
    return (x / x.norm(dim=-1, keepdim=True)).numpy(), np.r_[np.ones(len(pos)), np.zeros(len(neg))]


def test_builtins_come_from_entry_points():
    assert set(BUILTINS) <= set(tt.extractors.names())
    sources = tt.extractors.sources()
    for name in BUILTINS:
        assert sources[name].origin == "entry point"
        assert sources[name].target == f"tl_traits.plugins.extractors.{name}:{name}"


@pytest.mark.parametrize("name", BUILTINS)
def test_contract(name):
    fit = tt.extractors.get(name)
    info = tt.extractors.info(name)  # its declared PluginInfo, which the function carries
    assert fit.plugin_info is info and info.name == name and info.description and "\n" not in info.description
    pos, neg, _ = planted(n=30, layers=3, d=40)
    out = fit(pos, neg, seed=7)
    assert isinstance(out, Float[Tensor, "layer d_model"]) and out.shape == (3, 40)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(3), rtol=0, atol=1e-5)
    assert torch.equal(out, fit(pos, neg, seed=7))  # deterministic for a fixed seed
    narrow = fit(pos[:5].double(), neg[:9].half())  # other dtypes and unequal sizes are fine
    assert narrow.dtype == torch.float32 and narrow.shape == (3, 40)


def test_random_baseline_depends_on_seed_and_shape_only():
    fit = tt.extractors.get("random_baseline")
    pos, neg, _ = planted(n=10, layers=2, d=16)
    assert torch.equal(fit(pos, neg, seed=3), fit(pos + 1, neg * 2, seed=3))
    assert not torch.allclose(fit(pos, neg, seed=3), fit(pos, neg, seed=4))


@pytest.mark.parametrize(
    "name, a", [("mean_diff", 2.0), ("probe", 2.0), ("gradient", 2.0), ("pca_diff", 3.0), ("pca_center", 3.0)]
)
def test_planted_direction_is_recovered(name, a):
    pos, neg, u = planted(a=a)
    assert (cosines(tt.extractors.get(name)(pos, neg), u) >= 0.9).all()


def test_random_baseline_is_a_chance_floor():
    pos, neg, u = planted(d=256, a=3.0)
    assert (cosines(tt.extractors.get("random_baseline")(pos, neg), u).abs() < 0.3).all()


def test_gradient_converges_to_mean_diff():
    pos, neg, _ = planted(a=0.5)  # weak signal: mean_diff is noisy, yet gradient must land on the same vector
    assert (cosines(tt.extractors.get("gradient")(pos, neg), tt.extractors.get("mean_diff")(pos, neg)) > 0.9999).all()


def test_probe_matches_sklearn_held_out():
    """Same objective as LogisticRegression(C=1) on row-normalised data: same held-out accuracy, ~80-90%."""
    pos, neg, _ = planted(n=80, layers=5, d=128, a=1.3)
    test_pos, test_neg, _ = planted(n=250, layers=5, d=128, a=1.3)  # same seed: same u and offset, fresh noise
    test_pos, test_neg = test_pos[80:], test_neg[80:]
    x, y = normalised(pos, neg)
    x_test, y_test = normalised(test_pos, test_neg)
    w, b = logistic_regression(pos, neg)
    ours = ((np.einsum("lnd,ld->ln", x_test, w.numpy()) + b.numpy()[:, None] > 0) == y_test).mean(axis=1)
    for layer in range(5):
        clf = LogisticRegression(C=1.0).fit(x[layer], y)
        sk = clf.score(x_test[layer], y_test)
        assert 0.75 <= sk <= 0.95, "the set should be hard enough that accuracy is not 100%"
        assert abs(ours[layer] - sk) <= 0.01
        tight = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(x[layer].astype(np.float64), y)
        assert cosines(w[layer].double(), torch.from_numpy(tight.coef_[0])) > 0.9999
        assert b[layer].item() == pytest.approx(tight.intercept_[0], abs=1e-3)
    direction = tt.extractors.get("probe")(pos, neg)
    torch.testing.assert_close(direction, w / w.norm(dim=-1, keepdim=True))


@pytest.mark.parametrize("C", [0.01, 100.0])
def test_probe_other_C_and_more_examples_than_dims(C):
    pos, neg, _ = planted(n=60, layers=2, d=16, a=1.0)
    x, y = normalised(pos, neg)
    w, b = logistic_regression(pos, neg, C=C)
    for layer in range(2):
        tight = LogisticRegression(C=C, tol=1e-10, max_iter=100_000).fit(x[layer].astype(np.float64), y)
        assert cosines(w[layer].double(), torch.from_numpy(tight.coef_[0])) > 0.9999


def test_decorated_extractor_is_found():
    @tt.extractors.register("my_method")
    def my_method(pos, neg, *, seed=0):
        return (pos.mean(0) - neg.mean(0)).sign()

    try:
        assert tt.extractors.get("my_method") is my_method
        assert tt.extractors.sources()["my_method"].origin == "decorator"
        pos, neg, _ = planted(n=5, layers=2, d=8)
        assert tt.extractors.get("my_method")(pos, neg).shape == (2, 8)
    finally:
        tt.extractors.unregister("my_method")
    assert "my_method" not in tt.extractors


@pytest.mark.parametrize("name", BUILTINS)
def test_bad_inputs_name_the_problem(name):
    fit = tt.extractors.get(name)
    pos, neg, _ = planted(n=6, layers=2, d=8)
    with pytest.raises(ValueError, match=f"{name}: neg is empty"):
        fit(pos, neg[:0])
    with pytest.raises(ValueError, match="d_model must match"):
        fit(pos, neg[..., :7])
    with pytest.raises(ValueError, match=r"pos has shape \(6, 8\).*\[examples, layers, d_model\]"):
        fit(pos[:, 0], neg)
    bad = pos.clone()
    bad[2, 1, 3] = float("nan")
    with pytest.raises(
        ValueError,
        match=r"pos holds non-finite values \(first at \[example, layer, "
        r"dim\] = \[2, 1, 3\]\)",
    ):
        fit(bad, neg)


def test_identical_sets_have_no_mean_direction():
    pos, _, _ = planted(n=6, layers=2, d=8)
    for name in ("mean_diff", "gradient"):
        with pytest.raises(ValueError, match="exactly zero at layers \\[0, 1\\]"):
            tt.extractors.get(name)(pos, pos.clone())


def test_unknown_option_is_refused():
    pos, neg, _ = planted(n=6, layers=2, d=8)
    with pytest.raises(TypeError):
        tt.extractors.get("probe")(pos, neg, lr=0.1)


def test_pca_center_on_pairs_is_the_pair_difference_axis():
    gen = torch.Generator().manual_seed(5)
    shared = torch.randn(30, 2, 16, generator=gen) * 5  # what each pair has in common
    diff = torch.randn(30, 2, 16, generator=gen)
    pos, neg = shared + diff, shared - diff
    center = tt.extractors.get("pca_center")(pos, neg)
    cos = (center * tt.extractors.get("pca_diff")(pos, neg)).sum(-1)
    torch.testing.assert_close(cos, torch.ones(2), rtol=1e-4, atol=1e-4)
    unpaired = tt.extractors.get("pca_center")(pos, neg[:20])  # falls back to class-midpoint centring
    assert unpaired.shape == (2, 16)


@pytest.mark.parametrize("name", ["mean_diff", "gradient"])
def test_a_zero_direction_names_the_model_layers_extract_asked_for(name):
    """Extracting layers [4, 10], the error named "layers [0, 1]": rows of the activations, not model layers."""
    pos, _, _ = planted(n=6, layers=2, d=8)
    with pytest.raises(ValueError, match="exactly zero at layers \\[4, 10\\]"):
        tt.extractors.get(name)(pos, pos.clone(), layers=[4, 10])
