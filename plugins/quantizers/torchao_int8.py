"""torchao-int8: int8 weights stored and multiplied by torchao's kernels, on CPU or CUDA.

What it does:
- on a private copy of a `TransformerBridge`, swaps the weight of every HF `nn.Linear` inside
  `model.blocks` (attention q/k/v/o, MLP gate/up/down) for a torchao `Int8Tensor`: int8
  codes (`qdata`, 1 byte per weight) plus one float scale per output row (symmetric,
  per-channel). The float weight is gone: the copy really holds int8, about a quarter of
  the float32 bytes of those layers;
- `F.linear` on such a weight dispatches to torchao. Default `activations="float"`
  (weight-only): the int8 matrix is multiplied with the float activations and the row
  scales applied to the output. `activations="int8"` (W8A8) also quantizes each token's
  activations to int8 on the fly and multiplies int8 x int8 with `torch._int_mm`
  (oneDNN/VNNI on x86 CPUs, cuBLASLt on CUDA), then rescales;
- points the bridge's own reads of those weights at the int8 tensors too: in compatibility
  mode the gated MLP calls `F.linear(x, _processed_W_in)` on views of the HF weights rather
  than the linears. A bridge that multiplies with float copies of its own is refused
  instead of being left half quantized;
- keeps every TL hook: the bridge wrappers and hook points are untouched, so
  `run_with_cache`, `steer` and `generate` work as on the float model, in the same
  (processed) basis;
- records `{"bits": 8, "scheme", "kernels": "torchao <version>", "modules", "bytes_before",
  "bytes_after"}` (bytes of the quantized linears' weights) on the result.

What it does not do:
- run faster in eager mode on CPU: widening the codes per call (weight-only) and quantizing
  activations (W8A8) cost more than they save at research batch sizes (a 2048x2048 linear
  on a 2-core AVX-512 machine: float32 1.4 ms, weight-only 11 ms, W8A8 34 ms per token). It
  saves memory; wrap the model in `torch.compile` (inductor fuses the dequantization) for speed;
- quantize a `HookedTransformer` (its weights are einsum parameters, not `nn.Linear`
  modules): load with kind='bridge';
- touch embeddings, the unembedding (often tied to the embedding) or norms;
- quantize a linear twice, or one whose weight is already packed (bitsandbytes, another
  torchao tensor): those are skipped, and a model with none left is refused;
- make weight-space analyses work: `W_Q`-style reads, re-running TL's weight processing or
  saving with safetensors need plain tensors (`weight.dequantize()` gives one back).
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from typing import Any, Literal

import torch

from tl_traits.core.models import model_kind
from tl_traits.plugins.quantizers import catalogue
from tl_traits.quantization.quantizer import QuantizationError, Quantizer

MISSING = "pip install torchao"
SCHEMES = {
    "float": "int8 weight-only, per-channel",
    "int8": "int8 weights per-channel, dynamic per-token int8 activations (W8A8, torch._int_mm)",
}


def _check() -> tuple[bool, str]:
    try:
        found = importlib.util.find_spec("torchao") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        return False, MISSING
    try:
        _import_torchao()
    except Exception as exc:  # e.g. a torchao built for another torch
        return False, f"torchao is installed but does not import with torch {torch.__version__}: {exc}"
    return True, ""


def _import_torchao() -> Any:
    """Import torchao, without its notes about CUDA-only extensions a CPU build cannot load."""
    if "torchao" in sys.modules:
        return sys.modules["torchao"]
    quiet = [logging.getLogger("torchao"), logging.getLogger("torch.utils._pytree")]
    levels = [log.level for log in quiet]
    for log in quiet:
        log.setLevel(logging.ERROR)
    try:
        import torchao
    finally:
        for log, level in zip(quiet, levels):
            log.setLevel(level)
    return torchao


def _config(activations: str) -> Any:
    """The torchao config object (the `*Config` classes; the [torchao] extra needs torchao >= 0.18)."""
    _import_torchao()
    from torchao import quantization as q

    if activations == "float":
        return q.Int8WeightOnlyConfig()
    return q.Int8DynamicActivationInt8WeightConfig()


def tensor_bytes(tensor: torch.Tensor) -> int:
    """Bytes a tensor really stores: for a wrapper subclass (torchao), the sum of its inner tensors."""
    if hasattr(tensor, "__tensor_flatten__"):
        names, _ = tensor.__tensor_flatten__()
        return sum(tensor_bytes(getattr(tensor, name)) for name in names if getattr(tensor, name) is not None)
    return tensor.numel() * tensor.element_size()


def _is_plain_float(weight: Any) -> bool:
    plain = isinstance(weight, torch.Tensor) and not hasattr(weight, "__tensor_flatten__")  # not a torchao wrapper
    return plain and weight.dtype.is_floating_point


def block_linears(model: Any) -> list[torch.nn.Linear]:
    """The distinct HF `nn.Linear` modules inside a bridge's blocks that still hold float weights."""
    seen: dict[int, torch.nn.Linear] = {}
    for module in model.blocks.modules():
        if isinstance(module, torch.nn.Linear) and _is_plain_float(module.weight):
            seen.setdefault(id(module), module)  # a module can be reachable under two names
    return list(seen.values())


def _bridge_weight_reads(
    model: Any, linears: list[torch.nn.Linear]
) -> list[tuple[torch.nn.Module, str, torch.nn.Linear]]:
    """Plain tensors through which bridge components read a linear's weight directly.

    In compatibility mode TransformerBridge's gated MLP computes `F.linear(x, _processed_W_in)`
    with views of the HF weights instead of calling the linears; those views must follow the
    linear to its quantized weight, or the MLP would silently stay float.
    """
    by_ptr = {lin.weight.data_ptr(): lin for lin in linears}
    found, seen = [], set()
    for module in model.blocks.modules():
        if id(module) in seen:
            continue
        seen.add(id(module))
        for attr, value in vars(module).items():
            if type(value) is not torch.Tensor or value.dim() < 2 or value.data_ptr() not in by_ptr:
                continue
            linear = by_ptr[value.data_ptr()]
            if value.shape != linear.weight.shape or value.stride() != linear.weight.stride():
                raise QuantizationError(
                    f"{type(module).__name__}.{attr} reads a reshaped view of a linear's weight "
                    f"({tuple(value.shape)} vs {tuple(linear.weight.shape)}); torchao-int8 cannot follow it there"
                )
            found.append((module, attr, linear))
    return found


def _float_weight_reads(model: Any) -> list[str]:
    """Float matrices bridge components still multiply with directly (bypassing the linears)."""
    names = []
    for name, module in model.blocks.named_modules():
        if not getattr(module, "_use_processed_weights", False):
            continue
        for attr, value in vars(module).items():
            if attr.startswith("_processed_W") and _is_plain_float(value) and value.dim() >= 2:
                names.append(f"blocks.{name}.{attr}")
    return names


def _quantize(model: Any, *, activations: Literal["float", "int8"] = "float") -> tuple[Any, dict[str, Any]]:
    if activations not in SCHEMES:
        raise QuantizationError(f"activations must be one of {', '.join(SCHEMES)}, not {activations!r}")
    kind = model_kind(model)
    if kind == "hooked" or not hasattr(model, "blocks"):
        raise QuantizationError(
            f"torchao-int8 needs nn.Linear modules, which a {kind} model does not have: "
            "load with kind='bridge' (tl_traits.load_model(..., kind='bridge'))"
        )
    linears = block_linears(model)
    if not linears:
        raise QuantizationError(
            "torchao-int8 found no float nn.Linear inside the model's blocks (already quantized?); "
            "quantize the float model"
        )
    torchao = _import_torchao()
    from torchao.quantization import quantize_

    config = _config(activations)
    reads = _bridge_weight_reads(model, linears)
    before = sum(tensor_bytes(lin.weight) for lin in linears)
    for linear in linears:
        quantize_(linear, config)
    for module, attr, linear in reads:
        object.__setattr__(module, attr, linear.weight)  # the same Parameter: no second registration
    bypass = _float_weight_reads(model)
    if bypass:
        raise QuantizationError(
            "torchao-int8 quantized the linears, but the bridge multiplies with float copies it holds "
            f"itself ({', '.join(bypass[:4])}{', ...' if len(bypass) > 4 else ''}), so the result would "
            "be only partly quantized; this architecture is not supported by this backend"
        )
    after = sum(tensor_bytes(lin.weight) for lin in linears)
    info = {
        "bits": 8,
        "scheme": SCHEMES[activations],
        "kernels": f"torchao {torchao.__version__}",
        "modules": len(linears),
        "bytes_before": before,
        "bytes_after": after,
    }
    return model, info


torchao_int8 = catalogue.torchao_int8(
    Quantizer(
        "torchao-int8",
        "torchao int8 weights (per-channel) in the bridge's linears; activations='int8' for W8A8 int8 matmuls",
        _quantize,
        _check,
    )
)
