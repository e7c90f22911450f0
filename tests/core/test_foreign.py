"""core.foreign: the one reader of layer keys and of tensors that come from other tools (pure tensors, no model)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tl_traits.core.errors import TlTraitsError
from tl_traits.core.foreign import (
    ForeignInputError,
    hook_of_key,
    layer_index,
    layer_list,
    layer_number,
    read_tensor,
    sum_by_layer,
)
from tl_traits.core.hook_names import HOOKS


@pytest.mark.parametrize(
    ("key", "layer"),
    [
        (12, 12),
        (np.int64(12), 12),
        (np.int32(-1), 29),
        (np.uint8(3), 3),
        (torch.tensor(5), 5),
        ("12", 12),
        ("-1", 29),
        ("layer.-1", 29),
        ("direction.012", 12),
        ("model.layers.12", 12),
        ("layer_3", 3),
        (-30, 0),
    ],
)
def test_a_layer_key_is_one_whole_number_and_negative_counts_from_the_end(key, layer):
    assert layer_index(key, 30) == layer


@pytest.mark.parametrize("key", ["direction.١٢", "layer.²", "١٢", "layer.１２"])
def test_non_ascii_digits_are_refused_with_our_error(key):
    with pytest.raises(ForeignInputError, match="non-ASCII digits"):
        layer_index(key, 30)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (30, "layer 30 is out of range: this model has 30 layers"),
        (-31, "out of range"),
        (np.int64(40), "layer 40 is out of range"),
        (True, "is not a layer"),
        (1.5, "is not a layer"),
        (None, "is not a layer"),
        ("steering_vector", "holds no whole numbers"),
        ("model.layers.1.2", "several"),
    ],
)
def test_keys_that_are_not_a_layer_here_are_refused(key, message):
    with pytest.raises(ForeignInputError, match=message):
        layer_index(key, 30)


def test_a_layer_list_resolves_each_layer_once_and_refuses_an_empty_one():
    assert layer_list([-1, 29, np.int64(3)], 30) == [29, 3]
    assert layer_list(np.int64(-2), 30) == [28]
    with pytest.raises(ForeignInputError, match="layers is empty"):
        layer_list([], 30)
    with pytest.raises(ForeignInputError, match="counts from the end"):
        layer_list([-1], None)  # no layer count known: only layers counted from 0


def test_a_tensor_must_be_exactly_d_model_wide():
    assert read_tensor(np.ones(24, dtype=np.float16), 24).dtype == torch.float32
    assert read_tensor(torch.ones(1, 24), 24).shape == (24,)  # one row, as some tools store a vector
    with pytest.raises(ForeignInputError, match=r"shape \[24, 24\].*not flattened"):
        read_tensor(torch.ones(24, 24), 576)
    with pytest.raises(ForeignInputError, match="made for another model"):
        read_tensor(torch.ones(64), 576)


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        (torch.empty(24, device="meta"), "meta device"),
        (torch.ones(24, dtype=torch.int64), "dtype int64"),
        (torch.ones(24, dtype=torch.bool), "dtype bool"),
        (torch.ones(24, dtype=torch.complex64), "dtype complex64"),
        (torch.full((24,), float("nan")), "NaN or inf"),
        (np.full(24, 1e39), "NaN or inf"),  # finite in float64, inf in float32
        ("not a tensor", "is not a tensor"),
    ],
)
def test_tensors_that_cannot_steer_are_refused(tensor, message):
    with pytest.raises(ForeignInputError, match=message):
        read_tensor(tensor, 24)


def test_keys_naming_one_layer_are_summed():
    a, b = torch.full((4,), 1.0), torch.full((4,), 2.0)
    summed = sum_by_layer({-1: a, 29: b, "layer.3": a, "direction.003": a}, 30, 4)
    assert list(summed) == [3, 29]
    torch.testing.assert_close(summed[29], a + b)
    torch.testing.assert_close(summed[3], 2 * a)
    with pytest.raises(ForeignInputError, match="overflow float32 when summed"):
        sum_by_layer({-1: torch.full((4,), 3e38), 29: torch.full((4,), 3e38)}, 30, 4)


def test_hook_names_we_steer_give_the_hook_and_others_are_refused():
    assert hook_of_key("blocks.3.hook_resid_pre", HOOKS) == "resid_pre"
    assert hook_of_key("layer.3", HOOKS) is None
    for key in ("blocks.12.hook_mlp_in", "blocks.12.attn.hook_z", "model.layers.12.mlp", "model.layers.12.self_attn"):
        with pytest.raises(ForeignInputError, match="resid_post"):
            hook_of_key(key, HOOKS)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=24),
        st.integers(),
        st.floats(),
        st.none(),
        st.booleans(),
        st.builds(
            lambda p, n: f"{p}{n}",
            st.sampled_from(["", "layer.", "direction.", "blocks.", "x_"]),
            st.integers(-100, 100),
        ),
    )
)
def test_any_key_is_a_layer_in_range_or_our_error(key):
    try:
        layer = layer_index(key, 30)
    except TlTraitsError:
        return
    assert 0 <= layer < 30 and isinstance(layer, int)
    assert layer == layer_number(key) % 30
