"""Quantization core: the Quantizer plugin shape, copying a model, and recording what was done in its identity."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import einops
import torch
from jaxtyping import Float, Integer
from torch import Tensor

from tl_traits.core.errors import TlTraitsError
from tl_traits.core.models import QUANTIZATION_ATTR


class QuantizationError(TlTraitsError):
    """A quantizer that cannot run here or on this model; the message names the fix."""


class Quantizer:
    """A named quantization backend: `quantize(model, **options) -> new model`, `available() -> (ok, why)`.

    `fn(copy, **options) -> (model, info)` does the work on a private copy (or builds a new
    model) and returns what it did; `check() -> (ok, why)` says whether it can run here.
    """

    def __init__(
        self,
        name: str,
        description: str,
        fn: Callable[..., tuple[Any, dict[str, Any]]],
        check: Callable[[], tuple[bool, str]] | None = None,
        *,
        copies: bool = True,
    ) -> None:
        self.name, self.description, self._fn, self._check, self._copies = name, description, fn, check, copies

    def available(self) -> tuple[bool, str]:
        return self._check() if self._check else (True, "")

    def quantize(self, model: Any, **options: Any) -> Any:
        ok, why = self.available()
        if not ok:
            raise QuantizationError(f"quantizer '{self.name}' is not available here: {why}")
        target = copy_model(model) if self._copies else model
        result, info = self._fn(target, **options)
        record_quantization(result, {"backend": self.name, **info}, base=model)
        return result

    def __repr__(self) -> str:
        return f"Quantizer({self.name!r}: {self.description})"


def copy_model(model: Any) -> Any:
    """An independent copy (parameters and buffers included): the original stays untouched.

    Plain tensors that view a parameter's storage (TransformerBridge's processed weights) are
    re-pointed at the copy's parameters; a bare deepcopy would leave them as stale clones.
    """
    aliases = tensor_aliases(model) if isinstance(model, torch.nn.Module) else []
    clone = copy.deepcopy(model)
    if aliases:
        restore_aliases(clone, aliases)
    return clone


def record_quantization(model: Any, info: dict[str, Any], base: Any = None) -> None:
    """Attach `info` to the model so `model_identity` (and every artifact) records the precision.

    Quantizing an already quantized model keeps the earlier steps under "applied_to".
    """
    earlier = getattr(base, QUANTIZATION_ATTR, None) if base is not None else None
    setattr(model, QUANTIZATION_ATTR, {**info, **({"applied_to": earlier} if earlier else {})})
    for attr in ("_tl_traits_source",):
        if base is not None and hasattr(base, attr) and not hasattr(model, attr):
            setattr(model, attr, getattr(base, attr))


def quantization_info(model: Any) -> dict[str, Any] | None:
    """What the quantizer recorded on this model (None for a model that was not quantized here)."""
    return getattr(model, QUANTIZATION_ATTR, None)


# ================================================================================================
# Weight-only quantization math, on one layout: a weight matrix `[out, inp]` (rows = output
# channels, as in torch.nn.Linear). Everything is computed in float32; scales are kept in float32.
# ================================================================================================
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


def nf4_codebook_from_quantiles(offset: float = NF4_OFFSET) -> Float[Tensor, "16"]:
    """The NF4 levels computed as the paper describes (normal quantiles, asymmetric, exact zero)."""
    from scipy.stats import norm

    positive = norm.ppf(torch.linspace(offset, 0.5, 9, dtype=torch.float64)[:-1].numpy()).tolist()
    negative = (-norm.ppf(torch.linspace(offset, 0.5, 8, dtype=torch.float64)[:-1].numpy())).tolist()
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


def _check_scheme(scheme: str) -> None:
    if scheme not in SCHEMES:
        raise QuantizationError(f"unknown quantization scheme {scheme!r}; known: {', '.join(SCHEMES)}")


def quantize_weight(w: Float[Tensor, "out inp"], scheme: str, *, group_size: int | None = None) -> QuantizedWeight:
    """Quantize one matrix with `scheme` ("int8", "int4", "nf4"); group_size defaults per scheme.

    int8 is per output channel and takes no group size (pass None).
    """
    _check_scheme(scheme)
    if scheme == "int8":
        if group_size is not None:
            raise QuantizationError("int8 is per output channel (one scale per row); it takes no group_size")
        codes, scales = int8_quantize(w)
        return QuantizedWeight(scheme, codes, scales, int(codes.shape[1]))
    size = DEFAULT_GROUP_SIZE[scheme] if group_size is None else group_size
    codes, scales = (int4_quantize if scheme == "int4" else nf4_quantize)(w, size)
    return QuantizedWeight(scheme, codes, scales, size)


def fake_quantize(w: Float[Tensor, "out inp"], scheme: str, *, group_size: int | None = None) -> Float[Tensor, "out inp"]:
    """Quantize and dequantize `w` (the weight a simulated low-bit model computes with), in w's dtype."""
    return quantize_weight(w, scheme, group_size=group_size).dequantize().to(w.dtype)


def relative_error(w: Tensor, approx: Tensor) -> float:
    """Relative Frobenius error ||w - approx|| / ||w|| (0 for an all-zero w reproduced exactly)."""
    w, approx = w.detach().to(torch.float32), approx.detach().to(torch.float32)
    denom = float(torch.linalg.norm(w))
    diff = float(torch.linalg.norm(w - approx))
    return diff / denom if denom > 0 else diff


# ================================================================================================
# Walking a TL model's weight matrices in the `[out, inp]` layout, for both model kinds.
# ================================================================================================
# HookedTransformer block parameters: leaf name -> (pattern to [out, inp], pattern back).
_HOOKED_LAYOUTS: dict[str, tuple[str, str]] = {
    "W_Q": ("n m h -> (n h) m", "(n h) m -> n m h"),
    "W_K": ("n m h -> (n h) m", "(n h) m -> n m h"),
    "W_V": ("n m h -> (n h) m", "(n h) m -> n m h"),
    "_W_K": ("n m h -> (n h) m", "(n h) m -> n m h"),  # grouped-query attention: n = n_key_value_heads
    "_W_V": ("n m h -> (n h) m", "(n h) m -> n m h"),
    "W_O": ("n h m -> m (n h)", "m (n h) -> n h m"),
    "W_in": ("m f -> f m", "f m -> m f"),
    "W_gate": ("m f -> f m", "f m -> m f"),
    "W_out": ("f m -> m f", "m f -> f m"),
}
_HOOKED_EMBEDDINGS: dict[str, tuple[str | None, str | None]] = {
    "embed.W_E": (None, None),  # [d_vocab, d_model]: one row per token
    "unembed.W_U": ("m v -> v m", "v m -> m v"),  # [d_model, d_vocab] -> [d_vocab, d_model]
}


@dataclass
class WeightSlot:
    """One weight matrix of a model, read and written as `[out, inp]` (in place, storage kept)."""

    name: str  # e.g. "blocks.0.attn.q" (bridge) or "blocks.0.attn.W_Q" (hooked)
    param: torch.nn.Parameter
    to_matrix: str | None = None  # einops pattern from the parameter to [out, inp]; None: already so
    from_matrix: str | None = None
    sizes: dict[str, int] = field(default_factory=dict)
    duplicate: bool = False  # a fused weight the forward does not use (GPT-2 bridge's qkv): written, not counted

    def read(self) -> Float[Tensor, "out inp"]:
        w = self.param.detach()
        return einops.rearrange(w, self.to_matrix) if self.to_matrix else w

    def write(self, matrix: Float[Tensor, "out inp"]) -> None:
        value = einops.rearrange(matrix, self.from_matrix, **self.sizes) if self.from_matrix else matrix
        with torch.no_grad():
            # copy into the existing storage: views of it (the bridge's processed weights) follow
            self.param.data.copy_(value.to(self.param.dtype))


def linear_weights(model: Any, *, include_embeddings: bool = False) -> list[WeightSlot]:
    """Every weight matrix inside `model.blocks` (plus embedding/unembedding when asked), each once.

    bridge: the HF `torch.nn.Linear` (and GPT-2-style `Conv1D`) modules inside the blocks,
        named by their shortest TL path (`blocks.0.attn.q`, `blocks.0.mlp.gate`, ...).
    hooked: W_Q, W_K/_W_K, W_V/_W_V, W_O, W_in, W_gate, W_out of each block, rearranged.
    Biases, LayerNorm weights and positional embeddings are never included.
    """
    from tl_traits.core.models import model_kind

    kind = model_kind(model)
    if kind == "hooked":
        slots = _hooked_slots(model, include_embeddings)
    elif kind == "bridge":
        slots = _bridge_slots(model, include_embeddings)
    else:
        raise QuantizationError(f"cannot walk the weights of a {kind}; pass a TransformerBridge or HookedTransformer")
    unique: dict[int, WeightSlot] = {}
    for slot in slots:  # tied weights (embed = unembed) are visited once
        unique.setdefault(id(slot.param), slot)
    return list(unique.values())


def _hooked_slots(model: Any, include_embeddings: bool) -> list[WeightSlot]:
    slots = []
    for pname, param in model.named_parameters():
        leaf = pname.rsplit(".", 1)[-1]
        if pname.startswith("blocks.") and leaf in _HOOKED_LAYOUTS:
            to_m, from_m = _HOOKED_LAYOUTS[leaf]
            if param.ndim != len(to_m.split("->")[0].split()):
                continue
            sizes = {"n": param.shape[0]} if param.ndim == 3 else {}
            slots.append(WeightSlot(pname, param, to_m, from_m, sizes))
        elif include_embeddings and pname in _HOOKED_EMBEDDINGS:
            to_m, from_m = _HOOKED_EMBEDDINGS[pname]
            slots.append(WeightSlot(pname, param, to_m, from_m))
    return slots


def _is_conv1d(module: torch.nn.Module) -> bool:
    """transformers' GPT-2-style Conv1D: a linear layer whose weight is stored [inp, out]."""
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf") and getattr(module, "weight", None) is not None


def _tl_path(prefix: str, names: list[str]) -> str:
    """The most TL-like of a module's names: fewest `_original_component` hops, then shortest."""
    best = min(names, key=lambda n: (n.count("_original_component"), len(n), n))
    parts = [p for p in best.split(".") if p and p != "_original_component"]
    return ".".join([prefix, *parts]) if prefix else ".".join(parts)


def _module_slots(root: torch.nn.Module, prefix: str, kinds: tuple[type, ...]) -> list[WeightSlot]:
    found: dict[int, tuple[torch.nn.Module, list[str]]] = {}
    for name, module in root.named_modules(remove_duplicate=False):
        if isinstance(module, kinds) or _is_conv1d(module):
            found.setdefault(id(module), (module, []))[1].append(name)
    slots = []
    for module, names in found.values():
        weight = module.weight
        if not isinstance(weight, torch.nn.Parameter) or weight.ndim != 2:
            continue
        transpose = ("i o -> o i", "o i -> i o") if _is_conv1d(module) else (None, None)
        slots.append(WeightSlot(_tl_path(prefix, names), weight, *transpose))
    return slots


def _bridge_slots(model: Any, include_embeddings: bool) -> list[WeightSlot]:
    slots = _module_slots(model.blocks, "blocks", (torch.nn.Linear,))
    # Joint-QKV architectures (GPT-2): the bridge splits c_attn into q/k/v Linear copies (with the
    # LayerNorm folded in, in compatibility mode) that the forward uses, and keeps the raw fused
    # c_attn as `attn.qkv`. It is rounded too, so no full-precision weight is left, but not counted.
    names = {slot.name for slot in slots}
    for slot in slots:
        if slot.name.endswith(".qkv"):
            stem = slot.name[: -len("qkv")]
            slot.duplicate = all(stem + part in names for part in ("q", "k", "v"))
    if include_embeddings:
        for attr, kinds in (("embed", (torch.nn.Embedding,)), ("unembed", (torch.nn.Linear,))):
            part = getattr(model, attr, None)
            if isinstance(part, torch.nn.Module):
                slots += _module_slots(part, attr, kinds)
    return slots


# ================================================================================================
# Plain tensors that alias parameters (the bridge's "processed weights") across copies and casts.
# ================================================================================================
@dataclass(frozen=True)
class TensorAlias:
    """A plain tensor attribute (not a parameter or buffer) that is a view of a parameter's storage.

    TransformerBridge in compatibility mode keeps such views (e.g. `_processed_W_in` of a gated
    MLP, used by its forward). `copy.deepcopy` clones parameters one by one and `.to(dtype)`
    replaces their storage, so both silently turn the views into stale independent tensors.
    """

    module: str
    attr: str
    target: str  # parameter or buffer name
    size: tuple[int, ...]
    stride: tuple[int, ...]
    offset: int  # storage offset relative to the target's own


def _plain_tensors(model: torch.nn.Module) -> Iterator[tuple[str, str, Tensor]]:
    for mname, module in model.named_modules():
        for attr, value in vars(module).items():
            if isinstance(value, Tensor) and not isinstance(value, torch.nn.Parameter) and not attr.startswith("__"):
                yield mname, attr, value


def tensor_aliases(model: torch.nn.Module) -> list[TensorAlias]:
    """Every plain tensor attribute that shares storage with one of the model's parameters/buffers."""
    owners: dict[tuple[int, Any], tuple[str, Tensor]] = {}
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if _is_subclass_tensor(tensor):  # e.g. torchao's int8 weights: no plain storage; deepcopy handles them
            continue
        owners.setdefault((tensor.untyped_storage().data_ptr(), tensor.dtype), (name, tensor))
    aliases = []
    for mname, attr, value in _plain_tensors(model):
        if value.numel() == 0 or _is_subclass_tensor(value):
            continue
        hit = owners.get((value.untyped_storage().data_ptr(), value.dtype))
        if hit is not None:
            target, tensor = hit
            aliases.append(
                TensorAlias(mname, attr, target, tuple(value.size()), tuple(value.stride()),
                            value.storage_offset() - tensor.storage_offset())
            )
    return aliases


def _is_subclass_tensor(tensor: Tensor) -> bool:
    """A tensor subclass that wraps other tensors (torchao's quantized weights, ...)."""
    return hasattr(tensor, "__tensor_flatten__")


def relink_stale_views(model: torch.nn.Module) -> int:
    """Re-point processed-weight tensors that a plain `copy.deepcopy` detached from their parameter.

    A `_processed_*` tensor that shares no storage with any parameter is matched, by shape,
    dtype and equal values, with a parameter of its own module; returns how many were re-pointed.
    Raises QuantizationError when one cannot be matched (an in-place write would then miss it).
    """
    shared = {t.untyped_storage().data_ptr() for _, t in [*model.named_parameters(), *model.named_buffers()]
              if not _is_subclass_tensor(t)}
    modules = dict(model.named_modules())
    done = 0
    for mname, attr, value in list(_plain_tensors(model)):
        if not attr.startswith("_processed_W") or _is_subclass_tensor(value) or value.untyped_storage().data_ptr() in shared:
            continue
        match = next(
            (p for p in modules[mname].parameters()
             if p.shape == value.shape and p.dtype == value.dtype and torch.equal(p.detach(), value)),
            None,
        )
        if match is None:
            raise QuantizationError(
                f"{mname}.{attr} is a processed weight that no longer shares storage with its parameter "
                "(was the model copied with copy.deepcopy?); in-place quantization would miss it. "
                "Quantize the original model, or copy it with tl_traits.quantization.quantize.copy_model."
            )
        object.__setattr__(modules[mname], attr, match.detach())
        done += 1
    return done


def restore_aliases(model: torch.nn.Module, aliases: list[TensorAlias]) -> int:
    """Point each recorded alias at its target's current storage again; returns how many were set."""
    modules = dict(model.named_modules())
    tensors = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    done = 0
    for alias in aliases:
        module, target = modules.get(alias.module), tensors.get(alias.target)
        if module is None or target is None:
            continue
        view = target.detach().as_strided(alias.size, alias.stride, target.storage_offset() + alias.offset)
        object.__setattr__(module, alias.attr, view)
        done += 1
    return done


# ================================================================================================
# Applying a scheme to a whole model (in place: quantizers call these on their private copy).
# ================================================================================================
QUANTIZED_WEIGHTS_ATTR = "_tl_traits_quantized_weights"  # {name: QuantizedWeight} when keep_codes=True


def quantize_model_weights(
    model: Any,
    scheme: str,
    *,
    group_size: int | None = None,
    include_embeddings: bool = False,
    keep_codes: bool = False,
) -> dict[str, Any]:
    """Replace each weight matrix by its quantize-dequantize round trip (float, in place); return what was done.

    The returned dict (JSON-ready) holds the scheme, bits, group size, the touched module
    names (fused weights the forward does not use, like GPT-2's `attn.qkv`, are rewritten
    too and listed under "duplicates")
    and storage stats: `n_weights`, `code_bytes` (packed codes), `scale_bytes` (float32
    scales), `bits_per_weight` and `weight_rel_error` (relative Frobenius error over all
    touched weights). With `keep_codes`, the codes and scales are kept on the model under
    `QUANTIZED_WEIGHTS_ATTR`.
    """
    _check_scheme(scheme)
    relink_stale_views(model)
    slots = linear_weights(model, include_embeddings=include_embeddings)
    if not slots:
        raise QuantizationError(f"found no weight matrices to quantize in this {type(model).__name__}")
    n_weights = code_bytes = scale_bytes = 0
    err2 = norm2 = 0.0
    kept: dict[str, QuantizedWeight] = {}
    counted = [slot for slot in slots if not slot.duplicate]
    for slot in slots:
        w = slot.read()
        try:
            qw = quantize_weight(w, scheme, group_size=group_size)
        except ValueError as exc:
            raise QuantizationError(f"{slot.name}: {exc}") from exc
        approx = qw.dequantize()
        if not slot.duplicate:  # measured before writing: `w` is a view of the parameter
            w32 = w.to(torch.float32)
            err2 += float(((w32 - approx) ** 2).sum())
            norm2 += float((w32**2).sum())
        slot.write(approx)
        if slot.duplicate:
            continue
        n_weights, code_bytes, scale_bytes = n_weights + qw.n_weights, code_bytes + qw.code_bytes, scale_bytes + qw.scale_bytes
        if keep_codes:
            kept[slot.name] = qw
    if keep_codes:
        setattr(model, QUANTIZED_WEIGHTS_ATTR, kept)
    size = None if scheme == "int8" else (DEFAULT_GROUP_SIZE[scheme] if group_size is None else group_size)
    return {
        "bits": BITS[scheme],
        "scheme": scheme,
        "group_size": size,  # None: per output channel
        "include_embeddings": include_embeddings,
        "modules": [slot.name for slot in counted],
        "n_modules": len(counted),
        **({"duplicates": [slot.name for slot in slots if slot.duplicate]} if len(counted) < len(slots) else {}),
        "n_weights": n_weights,
        "code_bytes": code_bytes,
        "scale_bytes": scale_bytes,
        "bits_per_weight": round(8 * (code_bytes + scale_bytes) / n_weights, 4),
        "weight_rel_error": math.sqrt(err2 / norm2) if norm2 > 0 else 0.0,
        "simulated": True,
    }


def model_device(model: Any) -> torch.device:
    first = next(iter(model.parameters()), None)
    return first.device if first is not None else torch.device("cpu")


def can_compute(dtype: torch.dtype, device: torch.device | str = "cpu") -> tuple[bool, str]:
    """Whether `device` runs a matmul (and a softmax) in `dtype`: a tiny probe, not a guess."""
    try:
        a = torch.ones(4, 4, dtype=dtype, device=device)
        out = torch.nn.functional.linear(a, a) @ a
        torch.softmax(out, dim=-1)
        if not bool(torch.isfinite(out).all()):
            return False, f"a {dtype} matmul on {device} gave non-finite values"
    except (RuntimeError, TypeError, NotImplementedError) as exc:
        return False, f"{dtype} matmul on {device} failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    return True, ""


def cast_model(model: Any, dtype: torch.dtype) -> Any:
    """`model.to(dtype)` in place, with `cfg.dtype` and the bridge's processed-weight views kept consistent."""
    aliases = tensor_aliases(model)
    try:
        model.to(dtype, print_details=False)  # both TL kinds take print_details
    except TypeError:
        model.to(dtype)
    restore_aliases(model, aliases)
    if getattr(model, "cfg", None) is not None:
        model.cfg.dtype = dtype
    return model


@torch.no_grad()
def round_weights(model: Any, dtype: torch.dtype) -> int:
    """Round every floating-point parameter to `dtype` and back, in place (storage kept); returns how many."""
    count = 0
    for param in model.parameters():
        if param.is_floating_point():
            param.data.copy_(param.data.to(dtype).to(param.dtype))
            count += 1
    return count


@torch.no_grad()
def smoke_forward(model: Any) -> str:
    """Run a two-token forward; '' when it works and gives finite logits, else why not."""
    try:
        device = model_device(model)
        tokens = torch.zeros(1, 2, dtype=torch.long, device=device)
        logits = model(tokens)
        if not bool(torch.isfinite(logits).all()):
            return "the forward pass gave non-finite logits"
    except Exception as exc:  # noqa: BLE001 - any failure means "cannot run natively"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return ""
