"""The int8/int4/nf4 math on one matrix: round-trip bounds (property tests), the NF4 codebook, stored bytes."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tl_traits.quantization.schemes import (
    NF4_CODEBOOK,
    fake_quantize,
    int4_dequantize,
    int4_quantize,
    int8_dequantize,
    int8_quantize,
    nf4_codebook_from_quantiles,
    nf4_dequantize,
    nf4_max_gap,
    nf4_quantize,
    quantize_weight,
    relative_error,
)

WEIGHT_ONLY = ("int8", "int4", "nf4")


@st.composite
def matrices(draw, max_out: int = 6, max_inp: int = 70):
    """A random [out, inp] float32 matrix: Gaussian at a random scale, some rows/columns zeroed, a few outliers."""
    out = draw(st.integers(1, max_out))
    inp = draw(st.integers(1, max_inp))
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.sampled_from([1e-6, 1e-3, 0.02, 1.0, 300.0]))
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out, inp, generator=g) * scale
    if draw(st.booleans()):
        w[torch.rand(out, generator=g) < 0.3] = 0.0  # all-zero rows
    if draw(st.booleans()):
        w[:, torch.rand(inp, generator=g) < 0.3] = 0.0  # zero columns: all-zero groups in small groups
    if draw(st.booleans()):
        w.view(-1)[int(torch.randint(w.numel(), (1,), generator=g))] *= 50.0  # an outlier
    return w


def _per_group(values: torch.Tensor, group_size: int, inp: int) -> torch.Tensor:
    return values.repeat_interleave(group_size, dim=1)[:, :inp]


def _slack(bound: torch.Tensor) -> torch.Tensor:
    """Float32 rounding in w / scale and codes * scale: a few ulps of the bound."""
    return bound * (1 + 1e-5) + 1e-30


@settings(max_examples=40, deadline=None)
@given(matrices())
def test_int8_round_trip_is_within_half_a_step_per_row(w):
    codes, scales = int8_quantize(w)
    assert codes.dtype == torch.int8 and codes.shape == w.shape
    assert scales.shape == (w.shape[0], 1) and scales.dtype == torch.float32
    assert int(codes.abs().max()) <= 127
    deq = int8_dequantize(codes, scales)
    assert deq.shape == w.shape and deq.dtype == torch.float32
    absmax = w.abs().amax(dim=1, keepdim=True)
    assert torch.all((w - deq).abs() <= _slack(absmax / 254))
    zero_rows = absmax.squeeze(1) == 0
    assert torch.all(deq[zero_rows] == 0) and torch.all(codes[zero_rows] == 0)


@settings(max_examples=40, deadline=None)
@given(matrices(), st.sampled_from([1, 3, 8, 16, 128]))
def test_int4_round_trip_is_within_half_a_group_step(w, group_size):
    codes, scales = int4_quantize(w, group_size)
    n_groups = math.ceil(w.shape[1] / group_size)  # the last group may be ragged
    assert codes.dtype == torch.int8 and codes.shape == w.shape
    assert scales.shape == (w.shape[0], n_groups)
    assert int(codes.abs().max()) <= 7
    deq = int4_dequantize(codes, scales, group_size)
    assert deq.shape == w.shape and deq.dtype == torch.float32
    step = _per_group(scales, group_size, w.shape[1])
    assert torch.all((w - deq).abs() <= _slack(step / 2))
    assert torch.all(deq[step == 0] == 0)


@settings(max_examples=40, deadline=None)
@given(matrices(), st.sampled_from([1, 5, 64, 128]))
def test_nf4_round_trip_is_within_half_the_widest_codebook_gap(w, group_size):
    codes, absmax = nf4_quantize(w, group_size)
    assert codes.dtype == torch.uint8 and codes.shape == w.shape
    assert absmax.shape == (w.shape[0], math.ceil(w.shape[1] / group_size))
    assert int(codes.max()) <= 15
    deq = nf4_dequantize(codes, absmax, group_size)
    assert deq.shape == w.shape and deq.dtype == torch.float32
    scale = _per_group(absmax, group_size, w.shape[1])
    assert torch.all((w - deq).abs() <= _slack(scale * nf4_max_gap() / 2))
    assert torch.all(deq[scale == 0] == 0)
    # nearest level: no other level is closer (ties aside)
    levels = torch.tensor(NF4_CODEBOOK)
    normed = torch.where(scale > 0, w / torch.where(scale > 0, scale, 1), 0)
    best = (normed[..., None] - levels).abs().min(dim=-1).values
    chosen = (normed - levels[codes.long()]).abs()
    assert torch.all(chosen <= best + 1e-6)


def test_nf4_codebook_matches_the_normal_quantiles_of_the_paper():
    levels = torch.tensor(NF4_CODEBOOK)
    assert levels.shape == (16,) and torch.all(levels[1:] > levels[:-1])
    assert levels[0] == -1 and levels[-1] == 1 and levels[7] == 0
    torch.testing.assert_close(nf4_codebook_from_quantiles(), levels, atol=1e-6, rtol=0)
    assert nf4_max_gap() == pytest.approx(1 - 0.6961928009986877)


def test_all_zero_matrix_and_exact_grid_values_survive():
    zeros = torch.zeros(3, 10)
    for scheme in WEIGHT_ONLY:
        assert torch.equal(fake_quantize(zeros, scheme, **({} if scheme == "int8" else {"group_size": 4})), zeros)
    on_grid = torch.tensor([[-127.0, 0.0, 5.0, 127.0]]) * 0.5  # absmax 63.5 -> scale 0.5: exact codes
    assert torch.equal(fake_quantize(on_grid, "int8"), on_grid)


def test_fake_quantize_keeps_dtype_and_shape_and_checks_its_input():
    w = torch.randn(4, 96, dtype=torch.bfloat16)
    for scheme in WEIGHT_ONLY:
        out = fake_quantize(w, scheme)
        assert out.dtype == torch.bfloat16 and out.shape == w.shape
    with pytest.raises(ValueError, match="unknown quantization scheme"):
        fake_quantize(w, "int3")
    with pytest.raises(ValueError, match="no group_size"):
        quantize_weight(w, "int8", group_size=32)
    with pytest.raises(ValueError, match="matrix"):
        quantize_weight(torch.randn(5), "int4")
    with pytest.raises(ValueError, match="NaN"):
        quantize_weight(torch.tensor([[1.0, float("nan")]]), "nf4")
    with pytest.raises(ValueError, match="group_size"):
        quantize_weight(w, "int4", group_size=0)


def test_stored_codes_and_scales_and_their_byte_counts():
    w = torch.randn(6, 200)
    int8 = quantize_weight(w, "int8")
    int4 = quantize_weight(w, "int4", group_size=64)  # 200 = 3 * 64 + 8: a ragged last group
    nf4 = quantize_weight(w, "nf4")
    assert (int8.codes.dtype, tuple(int8.scales.shape), int8.group_size) == (torch.int8, (6, 1), 200)
    assert (int4.codes.dtype, tuple(int4.scales.shape), int4.group_size) == (torch.int8, (6, 4), 64)
    assert (nf4.codes.dtype, tuple(nf4.scales.shape), nf4.group_size) == (torch.uint8, (6, 4), 64)
    assert int8.code_bytes == 1200 and int4.code_bytes == 600 and nf4.code_bytes == 600  # 4-bit codes packed
    assert int4.scale_bytes == 6 * 4 * 4
    for qw in (int8, int4, nf4):
        assert torch.equal(
            qw.dequantize(), fake_quantize(w, qw.scheme, group_size=None if qw.scheme == "int8" else qw.group_size)
        )


def test_error_ordering_on_gaussian_weights():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(256, 512, generator=g) * 0.02
    err = {s: relative_error(w, fake_quantize(w, s, group_size=None if s == "int8" else 64)) for s in WEIGHT_ONLY}
    assert err["int8"] < 0.02 < err["nf4"]
    assert err["int8"] < err["int4"] / 5
    # NF4's levels follow the normal distribution: ~0.092 vs ~0.108 for uniform int4 at the same group size
    assert err["nf4"] < 0.95 * err["int4"]
    # and a finer group helps
    assert relative_error(w, fake_quantize(w, "int4", group_size=32)) < err["int4"]
