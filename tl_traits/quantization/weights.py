"""Walking a TL model's weight matrices in the `[out, inp]` layout, each once, for both model kinds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import einops
import torch
from jaxtyping import Float
from torch import Tensor

from tl_traits.core.models import model_kind
from tl_traits.quantization.quantizer import QuantizationError

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
            slots.append(WeightSlot(pname, param, *_HOOKED_EMBEDDINGS[pname]))
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
