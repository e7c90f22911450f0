"""Quantizing, casting and rounding a whole model in place (quantizers call these on their private
copy), and probes of whether the result runs."""

from __future__ import annotations

import math
from typing import Any

import torch

from tl_traits.core.models import model_device
from tl_traits.core.weight_views import (
    is_subclass_tensor,
    plain_tensors,
    restore_aliases,
    tensor_aliases,
)
from tl_traits.quantization.quantizer import QuantizationError
from tl_traits.quantization.schemes import (
    BITS,
    DEFAULT_GROUP_SIZE,
    QuantizedWeight,
    check_scheme,
    quantize_weight,
)
from tl_traits.quantization.weights import linear_weights


def relink_stale_views(model: torch.nn.Module) -> int:
    """Re-point processed-weight tensors that a plain `copy.deepcopy` detached from their parameter.

    A `_processed_*` tensor that shares no storage with any parameter is matched, by shape,
    dtype and equal values, with a parameter of its own module; returns how many were re-pointed.
    Raises QuantizationError when one cannot be matched (an in-place write would then miss it).
    """
    shared = {
        t.untyped_storage().data_ptr()
        for _, t in [*model.named_parameters(), *model.named_buffers()]
        if not is_subclass_tensor(t)
    }
    modules = dict(model.named_modules())
    done = 0
    for mname, attr, value in list(plain_tensors(model)):
        if (
            not attr.startswith("_processed_W")
            or is_subclass_tensor(value)
            or value.untyped_storage().data_ptr() in shared
        ):
            continue
        match = next(
            (
                p
                for p in modules[mname].parameters()
                if p.shape == value.shape and p.dtype == value.dtype and torch.equal(p.detach(), value)
            ),
            None,
        )
        if match is None:
            raise QuantizationError(
                f"{mname}.{attr} is a processed weight that no longer shares storage with its parameter "
                "(was the model copied with copy.deepcopy?); in-place quantization would miss it. "
                "Quantize the original model, or copy it with tl_traits.quantization.quantizer.copy_model."
            )
        object.__setattr__(modules[mname], attr, match.detach())
        done += 1
    return done


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
    check_scheme(scheme)
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
        n_weights, code_bytes, scale_bytes = (
            n_weights + qw.n_weights,
            code_bytes + qw.code_bytes,
            scale_bytes + qw.scale_bytes,
        )
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


def can_compute(dtype: torch.dtype, device: torch.device | str = "cpu") -> tuple[bool, str]:
    """Whether `device` runs a matmul (and a softmax) in `dtype`: a tiny probe, not a guess."""
    try:
        a = torch.ones(4, 4, dtype=dtype, device=device)
        out = torch.nn.functional.linear(a, a) @ a
        torch.softmax(out, dim=-1)
        if not bool(torch.isfinite(out).all()):
            return False, f"a {dtype} matmul on {device} gave non-finite values"
    except (RuntimeError, TypeError, NotImplementedError) as exc:
        return False, (
            f"{dtype} matmul on {device} failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        )
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
