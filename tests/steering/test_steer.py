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
