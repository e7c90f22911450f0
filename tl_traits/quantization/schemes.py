"""Weight-only quantization math (int8, int4, nf4) on one `[out, inp]` matrix: codes, scales, round trips."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import einops
import torch
from jaxtyping import Float, Integer
from torch import Tensor

from tl_traits.quantization.quantizer import QuantizationError

# One layout: a weight matrix `[out, inp]` (rows = output channels, as in torch.nn.Linear).
# Everything is computed in float32; scales are kept in float32.
SCHEMES = ("int8", "int4", "nf4")
BITS = {"int8": 8, "int4": 4, "nf4": 4}
DEFAULT_GROUP_SIZE = {"int8": None, "int4": 128, "nf4": 64}  # int8 is per output channel (a whole row)
INT8_MAX = 127  # symmetric: codes in [-127, 127]; -128 is never used, so zero and the grid are symmetric
INT4_MAX = 7  # symmetric: codes in [-7, 7]; -8 is never used (15 levels), so 0 is exact and +-absmax both exact

# The NormalFloat-4 levels of QLoRA (Dettmers et al. 2023, "QLoRA", appendix E), exactly as
# bitsandbytes stores them (`bitsandbytes.functional.get_4bit_type("nf4")` and the CUDA kernel
# `dDequantizeNF4`). They are quantiles of N(0, 1): 8 positive levels from
# `norm.ppf(linspace(0.9677083, 0.5, 9)[:-1])`, 7 negative ones from
# `-norm.ppf(linspace(0.9677083, 0.5, 8)[:-1])` and an exact zero, divided by the largest; see
# `nf4_codebook_from_quantiles`, which the tests compare with these constants.
NF4_CODEBOOK: tuple[float, ...] = (
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
)  # fmt: skip
NF4_OFFSET = 0.9677083  # bitsandbytes' `create_normal_map` offset: the outermost quantile used


def nf4_codebook_from_quantiles(offset: float = NF4_OFFSET) -> Float[Tensor, " 16"]:
    """The NF4 levels computed as the paper describes (normal quantiles, asymmetric, exact zero)."""
    # normal quantiles
    positive = torch.special.ndtri(torch.linspace(offset, 0.5, 9, dtype=torch.float64)[:-1]).tolist()
    negative = (-torch.special.ndtri(torch.linspace(offset, 0.5, 8, dtype=torch.float64)[:-1])).tolist()
    levels = torch.tensor(positive + [0.0] + negative, dtype=torch.float64).sort().values
    return (levels / levels.max()).to(torch.float32)


def nf4_max_gap() -> float:
    """The widest gap between neighbouring NF4 levels (between -1 and the next level, ~0.304)."""
    levels = torch.tensor(NF4_CODEBOOK)
    return float((levels[1:] - levels[:-1]).max())


def _as_matrix(w: Tensor, what: str = "weight") -> Tensor:
    if w.ndim != 2:
        raise QuantizationError(f"{what} must be a matrix [out, inp], got shape {tuple(w.shape)}")
    if not w.is_floating_point():
        raise QuantizationError(f"{what} must be a float tensor, got {w.dtype}")
    w = w.detach().to(torch.float32).contiguous()
    if not bool(torch.isfinite(w).all()):
        raise QuantizationError(f"{what} has NaN or infinite entries; they cannot be quantized")
    return w


def _grouped(w: Float[Tensor, "out inp"], group_size: int) -> Float[Tensor, "out groups group"]:
    """Split each row into groups of `group_size` along the input dim; a ragged last group is padded with 0.

    Zero padding never changes a group's absmax, and the padded codes are cut off again.
    """
    if not isinstance(group_size, int) or group_size < 1:
        raise QuantizationError(f"group_size must be a positive int, got {group_size!r}")
    pad = (-w.shape[1]) % group_size
    if pad:
        w = torch.nn.functional.pad(w, (0, pad))
    return einops.rearrange(w, "out (groups group) -> out groups group", group=group_size)


def _per_group(scales: Float[Tensor, "out groups"], group_size: int, inp: int) -> Float[Tensor, "out inp"]:
    return scales.repeat_interleave(group_size, dim=1)[:, :inp]


def _safe(scale: Tensor) -> Tensor:
    """Scales with zeros replaced by 1: an all-zero row or group then codes to 0 instead of 0/0."""
    return torch.where(scale > 0, scale, torch.ones_like(scale))


def int8_quantize(w: Float[Tensor, "out inp"]) -> tuple[Integer[Tensor, "out inp"], Float[Tensor, "out 1"]]:
    """Symmetric per-output-channel absmax: scale = absmax(row) / 127, codes = round(w / scale) in [-127, 127].

    Codes are torch.int8, scales float32 `[out, 1]`. Round-trip error per element <= scale / 2.
    """
    w = _as_matrix(w)
    scales = w.abs().amax(dim=1, keepdim=True) / INT8_MAX
    codes = torch.round(w / _safe(scales)).clamp_(-INT8_MAX, INT8_MAX).to(torch.int8)
    return codes, scales


def int8_dequantize(codes: Integer[Tensor, "out inp"], scales: Float[Tensor, "out 1"]) -> Float[Tensor, "out inp"]:
    return codes.to(torch.float32) * scales


def int4_quantize(
    w: Float[Tensor, "out inp"], group_size: int = 128
) -> tuple[Integer[Tensor, "out inp"], Float[Tensor, "out groups"]]:
    """Symmetric group-wise absmax along the input dim: scale = absmax(group) / 7, codes in [-7, 7].

    Codes are torch.int8 holding one 4-bit value each (real kernels pack two per byte),
    scales float32 `[out, ceil(inp / group_size)]`; the last group may be shorter. Round-trip
    error per element <= its group's scale / 2. Symmetric [-7, 7] rather than [-8, 7] (as in
    llama.cpp's Q4_0) or an asymmetric zero point (GPTQ/AWQ): one level fewer, no bias.
    """
    w = _as_matrix(w)
    groups = _grouped(w, group_size)
    scales = groups.abs().amax(dim=2) / INT4_MAX
    codes = torch.round(groups / _safe(scales)[..., None]).clamp_(-INT4_MAX, INT4_MAX)
    codes = einops.rearrange(codes, "out groups group -> out (groups group)")[:, : w.shape[1]]
    return codes.to(torch.int8), scales


def int4_dequantize(
    codes: Integer[Tensor, "out inp"], scales: Float[Tensor, "out groups"], group_size: int = 128
) -> Float[Tensor, "out inp"]:
    return codes.to(torch.float32) * _per_group(scales, group_size, codes.shape[1])


def nf4_quantize(
    w: Float[Tensor, "out inp"], group_size: int = 64
) -> tuple[Integer[Tensor, "out inp"], Float[Tensor, "out groups"]]:
    """NormalFloat-4: per-group absmax (blocksize 64 like bitsandbytes), nearest of the 16 NF4 levels.

    Codes are torch.uint8 indices 0..15 into NF4_CODEBOOK, scales (absmax) float32
    `[out, groups]`. Groups run along each row, which equals bitsandbytes' blocks over the
    flattened weight whenever `inp` is a multiple of the group size. Round-trip error per
    element <= absmax * nf4_max_gap() / 2. Not simulated: double quantization of the scales.
    """
    w = _as_matrix(w)
    groups = _grouped(w, group_size)
    scales = groups.abs().amax(dim=2)
    normed = groups / _safe(scales)[..., None]  # in [-1, 1]
    levels = torch.tensor(NF4_CODEBOOK, dtype=torch.float32, device=w.device)
    midpoints = (levels[1:] + levels[:-1]) / 2
    codes = torch.bucketize(normed, midpoints)  # index of the nearest level
    codes = einops.rearrange(codes, "out groups group -> out (groups group)")[:, : w.shape[1]]
    return codes.to(torch.uint8), scales


def nf4_dequantize(
    codes: Integer[Tensor, "out inp"], scales: Float[Tensor, "out groups"], group_size: int = 64
) -> Float[Tensor, "out inp"]:
    levels = torch.tensor(NF4_CODEBOOK, dtype=torch.float32, device=codes.device)
    return levels[codes.long()] * _per_group(scales, group_size, codes.shape[1])


@dataclass(frozen=True)
class QuantizedWeight:
    """What a weight-only scheme stores for one `[out, inp]` matrix: codes plus float32 scales."""

    scheme: str
    codes: Tensor  # int8 (int8, int4: signed codes) or uint8 (nf4: codebook indices), [out, inp]
    scales: Tensor  # float32 [out, groups]; int8 has one group per row
    group_size: int  # elements per scale along the input dim (int8: the whole row)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.codes.shape)  # type: ignore[return-value]

    @property
    def n_weights(self) -> int:
        return self.codes.numel()

    @property
    def code_bytes(self) -> int:
        """Bytes the codes take when packed (two 4-bit codes per byte)."""
        return math.ceil(self.n_weights * BITS[self.scheme] / 8)

    @property
    def scale_bytes(self) -> int:
        return self.scales.numel() * self.scales.element_size()

    def dequantize(self) -> Float[Tensor, "out inp"]:
        if self.scheme == "int8":
            return int8_dequantize(self.codes, self.scales)
        if self.scheme == "int4":
            return int4_dequantize(self.codes, self.scales, self.group_size)
        return nf4_dequantize(self.codes, self.scales, self.group_size)


def check_scheme(scheme: str) -> None:
    if scheme not in SCHEMES:
        raise QuantizationError(f"unknown quantization scheme {scheme!r}; known: {', '.join(SCHEMES)}")


def quantize_weight(w: Float[Tensor, "out inp"], scheme: str, *, group_size: int | None = None) -> QuantizedWeight:
    """Quantize one matrix with `scheme` ("int8", "int4", "nf4"); group_size defaults per scheme.

    int8 is per output channel and takes no group size (pass None).
    """
    check_scheme(scheme)
    if scheme == "int8":
        if group_size is not None:
            raise QuantizationError("int8 is per output channel (one scale per row); it takes no group_size")
        codes, scales = int8_quantize(w)
        return QuantizedWeight(scheme, codes, scales, int(codes.shape[1]))
    size = cast(int, DEFAULT_GROUP_SIZE[scheme]) if group_size is None else group_size  # int4, nf4: a size
    codes, scales = (int4_quantize if scheme == "int4" else nf4_quantize)(w, size)
    return QuantizedWeight(scheme, codes, scales, size)


def fake_quantize(
    w: Float[Tensor, "out inp"], scheme: str, *, group_size: int | None = None
) -> Float[Tensor, "out inp"]:
    """Quantize and dequantize `w` (the weight a simulated low-bit model computes with), in w's dtype."""
    return quantize_weight(w, scheme, group_size=group_size).dequantize().to(w.dtype)


def relative_error(w: Tensor, approx: Tensor) -> float:
    """Relative Frobenius error ||w - approx|| / ||w|| (0 for an all-zero w reproduced exactly)."""
    w, approx = w.detach().to(torch.float32), approx.detach().to(torch.float32)
    denom = float(torch.linalg.norm(w))
    diff = float(torch.linalg.norm(w - approx))
    return diff / denom if denom > 0 else diff
