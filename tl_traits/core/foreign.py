"""Layers and tensors that come from elsewhere, each checked in one place.

Every path that takes a layer key or a tensor made by another tool (or typed by a user) goes
through here: the importers (`import_safetensors`, `import_gguf`, `from_steering_vector`, all via
`TraitVector.from_layer_tensors`), the exporters' `layers=` (`export_gguf`, `to_steering_vector`,
via `TraitVector.layer_tensors`), `steer(model, {layer: tensor})` and `steer`'s `layers=`,
`capture`'s `layers=`, and llama.cpp's control-vector buffer.

- A layer key is a whole number: a Python int, a numpy integer, or a name whose one whole number
  (ASCII digits 0-9, with an optional minus sign) is the layer: "12", "-1", "layer.-1",
  "direction.012". Negative keys count from the end: -1 is the last layer everywhere.
- Keys that name the same layer once resolved (`-1` and `29` on a 30-layer model, `direction.12`
  and `direction.012`) are summed, as llama.cpp and steering-vectors add both.
- A tensor is exactly `[d_model]` (or one `[1, d_model]` row): never flattened from another shape,
  on a real device (not `meta`), of a float dtype, and finite once in float32.
"""

from __future__ import annotations

import operator
import re
from typing import Any, Iterable, Mapping

import torch
from torch import Tensor

from tl_traits.core.errors import TlTraitsError

ASCII_DIGITS = "0123456789"
# a whole number between separators: "12", "layer.12", "layer.-1", "model.layers.12", "direction.012"
_NUMBER = re.compile(r"(?:^|[._/-])(-?[0-9]+)(?=[._/-]|$)")
_HOOK_KEY = re.compile(r"^blocks\.(-?[0-9]+)\.(.+)$")


class ForeignInputError(TlTraitsError):
    """A layer key or a tensor that cannot be read as a layer or a steering vector."""


def _shown(key: Any) -> str:
    """A key as a message shows it: a number plainly (np.int64(3) as 3), a name quoted."""
    number = layer_number_or_none(key)
    return str(number) if number is not None else repr(key)


def layer_number_or_none(key: Any) -> int | None:
    """The whole number of an int-like key (int, numpy integer, integer 0-d tensor), or None (bools are not numbers)."""
    if isinstance(key, bool) or str(getattr(key, "dtype", "")).endswith("bool"):
        return None
    if isinstance(key, str):
        return None
    try:
        return operator.index(key)
    except TypeError:
        return None


def layer_number(
    key: Any, *, what: str = "layer key", error: type[TlTraitsError] = ForeignInputError, where: str = ""
) -> int:
    """The whole number a layer key holds, not yet resolved against a model (it may be negative).

    where: a prefix for messages (the file, "x.safetensors: ")."""
    number = layer_number_or_none(key)
    if number is not None:
        return number
    if not isinstance(key, str):
        raise error(
            f"{where}{what} {key!r} is not a layer: give a whole number (an int or a numpy integer) "
            "or a name like 'layer.12'"
        )
    foreign = sorted({ch for ch in key if ch.isdigit() and ch not in ASCII_DIGITS})
    if foreign:
        raise error(
            f"{where}{what} {key!r} writes its layer with non-ASCII digits ({''.join(foreign)}); "
            "write layer numbers with the digits 0-9"
        )
    found = _NUMBER.findall(key)
    if len(found) != 1:
        raise error(
            f"{where}cannot tell the layer of {what} {key!r}: it holds {'no' if not found else 'several'} "
            "whole numbers; name it by its layer alone ('12', 'layer.12', 'layer.-1' for the last)"
        )
    return int(found[0])


def layer_index(
    key: Any,
    n_layers: int | None,
    *,
    what: str = "layer",
    error: type[TlTraitsError] = ForeignInputError,
    model: str = "this model",
    where: str = "",
) -> int:
    """`key` as a layer 0..n_layers-1; negative counts from the end (-1 is the last layer).

    n_layers None: the layer count is unknown, so only keys counted from 0 are accepted."""
    number = layer_number(key, what=what, error=error, where=where)
    if n_layers is None:
        if number < 0:
            raise error(
                f"{where}{what} {_shown(key)} counts from the end, but the number of layers is unknown "
                "here; give the layer counted from 0"
            )
        return number
    if not -n_layers <= number < n_layers:
        raise error(
            f"{where}{what} {_shown(key)} is out of range: {model} has {n_layers} layers "
            f"(0..{n_layers - 1}, or -1 for the last)"
        )
    return number % n_layers


def layer_list(
    layers: Any,
    n_layers: int | None,
    *,
    what: str = "layers",
    error: type[TlTraitsError] = ForeignInputError,
    model: str = "this model",
) -> list[int]:
    """One layer key or a sequence of them -> layers 0..n_layers-1 in the order given, each once.

    A selection names each layer once: `[-1, 29]` on 30 layers is layer 29, not 29 twice."""
    keys = [layers] if isinstance(layers, str) or layer_number_or_none(layers) is not None else layers
    try:
        keys = list(keys)
    except TypeError:
        raise error(f"{what} must be a layer or a list of layers, not {layers!r}") from None
    if not keys:
        raise error(f"{what} is empty; give at least one layer")
    chosen: list[int] = []
    for key in keys:
        index = layer_index(key, n_layers, what="layer", error=error, model=model)
        if index not in chosen:
            chosen.append(index)
    return chosen


def hook_of_key(
    key: str, hooks: Iterable[str], *, where: str = "", error: type[TlTraitsError] = ForeignInputError
) -> str | None:
    """The hook a TransformerLens-style tensor name gives (`blocks.12.hook_resid_post` -> resid_post), or None
    for a name that is a layer alone. A name that points at a place we do not steer (`blocks.12.hook_mlp_in`,
    `model.layers.12.mlp`) is refused, naming the hooks accepted, rather than read as resid_post."""
    hooks = tuple(hooks)
    accepted = (
        f"blocks.<layer>.hook_<{'|'.join(hooks)}>, or a name with the layer alone ('12', 'layer.12') for resid_post"
    )
    match = _HOOK_KEY.match(key)
    if match is not None and match.group(2).startswith("hook_"):
        hook = match.group(2)[len("hook_") :]
        if hook in hooks:
            return hook
        raise error(
            f"{where}tensor {key!r} is for hook {hook!r}, which tl_traits does not steer; it accepts {accepted}"
        )
    parts = re.split(r"[./]", key.lower())
    odd = [p for p in parts if p.startswith("hook") or p in _SUBMODULES]
    if odd:
        raise error(
            f"{where}tensor {key!r} names {odd[0]!r}, a place inside a block that tl_traits does not read as a "
            f"block's output; it accepts {accepted}"
        )
    return None


# names of places inside a decoder block: a vector there is not a block output (resid_post)
_SUBMODULES = frozenset(
    {
        "attn",
        "self_attn",
        "attention",
        "mlp",
        "ln1",
        "ln2",
        "input_layernorm",
        "post_attention_layernorm",
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }
)


def read_tensor(
    tensor: Any,
    d_model: int,
    *,
    what: str = "the tensor",
    error: type[TlTraitsError] = ForeignInputError,
    model: str = "the model",
) -> Tensor:
    """`tensor` (torch or numpy) as a float32 CPU `[d_model]` copy, or a clear error.

    Refused: another shape (a `[24, 24]` tensor is not flattened into 576; one `[1, d_model]`
    row is taken as the row), the meta device (shapes without values), integer, bool or
    complex dtypes, and NaN or inf (also values that overflow float32)."""
    if isinstance(tensor, Tensor):
        t = tensor
    else:
        try:
            t = torch.as_tensor(tensor)
        except Exception as exc:  # noqa: BLE001 - anything torch cannot read is bad input here
            raise error(f"{what} is not a tensor ({type(tensor).__name__}): {exc}") from exc
    if t.device.type == "meta":
        raise error(
            f"{what} is on the meta device: it has a shape but no values (a model built with "
            "init_empty_weights?); load its values first"
        )
    if t.layout != torch.strided:
        t = t.to_dense()
    if not t.is_floating_point():
        raise error(
            f"{what} has dtype {str(t.dtype).replace('torch.', '')}; a steering vector holds floats "
            "(float32, float16, bfloat16 or float64)"
        )
    if t.dim() == 2 and t.shape[0] == 1:  # one row, as some tools store a vector
        t = t[0]
    if t.dim() == 1 and t.shape[0] != d_model:
        raise error(
            f"{what} is {t.shape[0]} wide; {model} has d_model {d_model}: it was made for another model "
            f"(a vector must have shape [d_model] = [{d_model}])"
        )
    if tuple(t.shape) != (d_model,):
        raise error(
            f"{what} has shape {list(t.shape)}; it must have shape [d_model] = [{d_model}] "
            "(a tensor of another shape is not flattened into one: pick the row you mean)"
        )
    t = t.detach().to("cpu", torch.float32).clone()
    if not bool(torch.isfinite(t).all()):
        raise error(f"{what} holds NaN or inf values (in float32)")
    return t


def sum_by_layer(
    tensors: Mapping[Any, Any] | Iterable[tuple[Any, Any]],
    n_layers: int | None,
    d_model: int,
    *,
    where: str = "",
    error: type[TlTraitsError] = ForeignInputError,
    model: str = "the model",
) -> dict[int, Tensor]:
    """`{layer key: tensor}` (or `(key, tensor)` pairs) -> `{layer: float32 [d_model]}` sorted by layer.

    Keys that name one layer once resolved (`-1` and `n_layers - 1`, `direction.12` and
    `direction.012`) are summed, as llama.cpp and steering-vectors add both."""
    pairs = list(tensors.items()) if isinstance(tensors, Mapping) else list(tensors)
    summed: dict[int, Tensor] = {}
    for key, tensor in pairs:
        # the width first: a file for another model says so, rather than naming a layer out of range
        t = read_tensor(tensor, d_model, what=f"{where}the tensor for layer {_shown(key)}", error=error, model=model)
        layer = layer_index(key, n_layers, error=error, model=model, where=where)
        summed[layer] = summed[layer] + t if layer in summed else t
    for layer, t in summed.items():
        if not bool(torch.isfinite(t).all()):
            raise error(f"{where}the tensors given for layer {layer} overflow float32 when summed")
    return dict(sorted(summed.items()))
