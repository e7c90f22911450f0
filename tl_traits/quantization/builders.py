"""Quantizer builders for plugin authors: weight-only low-bit (int8/int4/nf4 round trips) and 16-bit casts."""

from __future__ import annotations

from typing import Any

import torch

from tl_traits.core.models import model_device
from tl_traits.quantization.in_place import (
    can_compute,
    cast_model,
    quantize_model_weights,
    relink_stale_views,
    round_weights,
    smoke_forward,
)
from tl_traits.quantization.quantizer import QuantizationError, Quantizer
from tl_traits.quantization.schemes import DEFAULT_GROUP_SIZE

COMPUTE_MODES = ("auto", "native", "simulated")


def weight_only(name: str, scheme: str, description: str) -> Quantizer:
    """A quantizer that writes each weight matrix's `scheme` round trip, in float32, into a copy."""

    def run(
        model: Any, *, group_size: int | None = None, include_embeddings: bool = False, keep_codes: bool = False
    ) -> tuple[Any, dict[str, Any]]:
        info = quantize_model_weights(
            model, scheme, group_size=group_size, include_embeddings=include_embeddings, keep_codes=keep_codes
        )
        return model, info

    default = DEFAULT_GROUP_SIZE[scheme]
    suffix = "per output channel" if default is None else f"groups of {default} along the input dim by default"
    return Quantizer(name, f"{description} ({suffix}; simulated: float32 weights and activations)", run)


def half_precision(name: str, dtype: torch.dtype) -> Quantizer:
    """A quantizer that casts a copy to `dtype`, or rounds its weights to `dtype` where that cannot run."""
    label = str(dtype).replace("torch.", "")

    def run(model: Any, *, compute: str = "auto") -> tuple[Any, dict[str, Any]]:
        if compute not in COMPUTE_MODES:
            raise QuantizationError(f"compute must be one of {', '.join(COMPUTE_MODES)}, not {compute!r}")
        info: dict[str, Any] = {"bits": 16, "dtype": label}
        relink_stale_views(model)
        reason = ""
        if compute != "simulated":
            ok, reason = can_compute(dtype, model_device(model))
            if ok:
                start_dtype = getattr(model.cfg, "dtype", torch.float32)
                buffers = {n: b.detach().clone() for n, b in model.named_buffers() if b.is_floating_point()}
                cast_model(model, dtype)
                reason = smoke_forward(model)
                if not reason:
                    return model, {**info, "compute": "native"}
                reason = f"the {label} model did not run: {reason}"
                cast_model(model, start_dtype)  # weights keep their rounding: exactly the simulated model
                with torch.no_grad():
                    for n, b in model.named_buffers():
                        if n in buffers:
                            b.copy_(buffers[n])
            if compute == "native":
                raise QuantizationError(f"{name}: cannot compute in {label} here ({reason}); use compute='simulated'")
        n_tensors = round_weights(model, dtype)
        info = {**info, "compute": "simulated", "n_tensors": n_tensors}
        return model, ({**info, "fallback_reason": reason} if reason else info)

    return Quantizer(name, f"cast to {label} (native where the device computes in {label}, else weights rounded)", run)
