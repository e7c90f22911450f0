"""steer(): arguments that cannot steer are refused before any hook is attached."""

from __future__ import annotations

import pytest
import torch

import tl_traits as tt
from tl_traits.steering.steer import SteeringError


@pytest.mark.parametrize("field", ["strength", "coef"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf"), "0.5", True])
def test_steer_refuses_values_that_are_not_finite_numbers(tiny_hooked, field, bad):
    vector = torch.ones(tiny_hooked.cfg.d_model)
    with pytest.raises(SteeringError, match=f"{field} must be a finite number"):
        with tt.steer(tiny_hooked, vector, 0, **{field: bad}):
            pass
    assert not any(hp.fwd_hooks for hp in tiny_hooked.hook_dict.values())  # nothing left attached


def test_a_finite_coef_still_steers(tiny_hooked):
    vector = torch.ones(tiny_hooked.cfg.d_model)
    tokens = torch.tensor([[1, 2, 3]])
    plain = tiny_hooked(tokens)
    with tt.steer(tiny_hooked, vector, 0, coef=3.0):
        steered = tiny_hooked(tokens)
    assert not torch.allclose(plain, steered)


def test_negative_layers_mean_what_extract_means(tiny_hooked):
    vector = torch.randn(tiny_hooked.cfg.d_model)
    tokens = torch.tensor([[1, 2, 3]])
    last = tiny_hooked.cfg.n_layers - 1
    with tt.steer(tiny_hooked, vector, -1, coef=2.0):
        from_end = tiny_hooked(tokens)
    with tt.steer(tiny_hooked, vector, last, coef=2.0):
        counted = tiny_hooked(tokens)
    torch.testing.assert_close(from_end, counted)
    with pytest.raises(SteeringError, match="out of range"):
        with tt.steer(tiny_hooked, vector, -tiny_hooked.cfg.n_layers - 1, coef=2.0):
            pass


def _vector_on(model, layers, act_norm=50.0, units=None):
    from tl_traits.core.models import model_identity
    from tl_traits.core.vectors import TraitVector

    d = model.cfg.d_model
    directions = torch.nn.functional.normalize(
        torch.randn(len(layers), d, generator=torch.Generator().manual_seed(0)), dim=-1
    )
    meta = {
        "model": model_identity(model).to_dict(),
        "hook": "resid_post",
        "dataset": {"name": "t"},
        **({"units": units} if units else {}),
    }
    return TraitVector("mean_diff", directions, list(layers), torch.full((len(layers),), act_norm), {}, meta)


def test_a_strength_or_coef_that_overflows_float32_is_refused(tiny_hooked):
    """Finite numbers like 1e39 passed the old check: the vector became inf and generate returned empty text."""
    from tl_traits.steering.steer import Setting

    vec = _vector_on(tiny_hooked, [0, 1])
    raw = torch.ones(tiny_hooked.cfg.d_model)
    for kwargs, message in (
        ({"strength": 1e39}, "strength 1e\\+39 overflows float32"),
        ({"strength": 1e37}, "coefficient at layer 1 .* overflows float32"),  # x a norm of 50
        ({"coef": -1e39}, "coef -1e\\+39 overflows float32"),
    ):
        with pytest.raises(SteeringError, match=message):
            tt.steer(tiny_hooked, vec, 1, **kwargs)
    with pytest.raises(SteeringError, match="coefficient at layer 0"):
        tt.steer(tiny_hooked, 1e38 * raw, 0, coef=10.0)
    with pytest.raises(SteeringError, match="Setting strength 1e\\+39 overflows float32"):
        Setting(1, strength=1e39)
    with pytest.raises(SteeringError, match="Setting coef must be a finite number"):
        Setting(1, coef=float("nan"))
    assert not any(hp.fwd_hooks for hp in tiny_hooked.hook_dict.values())


def test_numpy_scalars_steer_as_the_numbers_they_hold(tiny_hooked):
    import numpy as np

    from tl_traits.steering.steer import Setting

    vec = _vector_on(tiny_hooked, [0, 1])
    tokens = torch.tensor([[1, 2, 3]])
    with tt.steer(tiny_hooked, vec, 1, strength=0.5):
        plain = tiny_hooked(tokens)
    with tt.steer(tiny_hooked, vec, 1, strength=np.float32(0.5)):
        numpy = tiny_hooked(tokens)
    torch.testing.assert_close(plain, numpy)
    setting = Setting(1, strength=np.float32(0.5))
    assert setting.strength == 0.5 and type(setting.strength) is float  # a JSON log can write it


def test_one_times_an_imported_vector_steers_at_the_same_layers(tiny_hooked):
    """`1 * imported` lost its absolute units, so steer picked one default layer instead of all of its layers."""
    imported = _vector_on(tiny_hooked, [0, 1], act_norm=1.0, units="absolute")
    names = [name for name, _ in tt.steer(tiny_hooked, imported, strength=1.0)]
    assert names == ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
    for derived in (1 * imported, imported * 1.0, -(-imported)):  # noqa: B002 - two negations, not a decrement
        assert [name for name, _ in tt.steer(tiny_hooked, derived, strength=1.0)] == names


def _added(steering, layer: int, d_model: int) -> torch.Tensor:
    """What a Steering's hook at `layer` adds to a zero residual."""
    (fn,) = [fn for name, fn in steering.hooks if name == f"blocks.{layer}.hook_resid_post"]
    return fn(torch.zeros(1, 1, d_model), None)[0, 0]


def test_a_dict_naming_one_layer_twice_adds_both_as_steering_vectors_does(tiny_hooked):
    d, last = tiny_hooked.cfg.d_model, tiny_hooked.cfg.n_layers - 1
    a, b = torch.randn(d), torch.randn(d)
    steering = tt.steer(tiny_hooked, {-1: a, last: b})
    assert [name for name, _ in steering.hooks] == [f"blocks.{last}.hook_resid_post"]
    torch.testing.assert_close(_added(steering, last, d), a + b)  # was b alone


def test_numpy_integer_layers_are_layers(tiny_hooked):
    import numpy as np

    d = tiny_hooked.cfg.d_model
    a = torch.randn(d)
    # was "out of range"
    torch.testing.assert_close(_added(tt.steer(tiny_hooked, {np.int64(1): a}, coef=2.0), 1, d), 2 * a)
    torch.testing.assert_close(_added(tt.steer(tiny_hooked, a, np.int64(-1)), tiny_hooked.cfg.n_layers - 1, d), a)
    torch.testing.assert_close(_added(tt.steer(tiny_hooked, a, [np.int32(0)]), 0, d), a)


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        (torch.empty(32, device="meta"), "meta device"),  # was NotImplementedError: Cannot copy out of meta tensor
        (torch.ones(4, 8), r"shape \[4, 8\].*not flattened"),
        (torch.ones(32, dtype=torch.int64), "dtype int64"),
    ],
)
def test_a_tensor_that_cannot_steer_is_refused_clearly(tiny_hooked, tensor, message):
    assert tiny_hooked.cfg.d_model == 32
    with pytest.raises(SteeringError, match=message):
        tt.steer(tiny_hooked, {0: tensor})
    with pytest.raises(SteeringError, match=message):
        tt.steer(tiny_hooked, tensor, 0)
