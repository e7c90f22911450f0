"""Plain safetensors files of per-layer vectors from other tools (no tl_traits header) as TraitVectors.

Tensor names carry the layer as their one whole number ("12", "layer.12", "direction.12",
"model.layers.12"), or are TransformerLens hook names ("blocks.12.hook_resid_post", which also give the hook).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from tl_traits.core.hook_names import HookNameError, parse_hook_name
from tl_traits.core.vectors import HEADER_KEY, TraitVector
from tl_traits.interop.block_outputs import InteropError

_NUMBER = re.compile(r"(?:^|[._/-])(\d+)(?=[._/-]|$)")  # a whole number between separators


def import_safetensors(path: str | os.PathLike[str], model: Any, *, hook: str | None = None, name: str | None = None) -> TraitVector:
    """A `{layer: tensor}` safetensors file (repeng-, steering-vectors- or hand-made) for `model`, in absolute units.

    hook: where the tensors are added (default: the hook named in TL hook-name keys, else
    resid_post, a decoder block's output, which is what those tools steer)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise InteropError(f"no safetensors file at {path}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            ours = HEADER_KEY in (fh.metadata() or {})
            tensors = {key: fh.get_tensor(key) for key in fh.keys()}
    except Exception as exc:
        raise InteropError(f"{path} is not a readable safetensors file ({type(exc).__name__}: {exc})") from exc
    if ours:
        raise InteropError(f"{path} is a tl_traits vectors file (it has the tl_traits header); read it with "
                           f"tt.TraitVectors.load({str(path)!r}), not import_safetensors (which is for other tools' files)")
    by_layer, hooks = {}, set()
    for key, tensor in tensors.items():
        layer, key_hook = _layer_of(key)
        if layer is None:
            raise InteropError(f"{path}: cannot tell the layer of tensor {key!r}; name tensors by layer "
                               "('12', 'layer.12', 'blocks.12.hook_resid_post')")
        if layer in by_layer:
            raise InteropError(f"{path}: two tensors for layer {layer}")
        by_layer[layer] = tensor
        hooks.add(key_hook)
    named = {h for h in hooks if h}
    if len(named) > 1:
        raise InteropError(f"{path} mixes hooks {sorted(named)}; import one hook at a time")
    chosen = hook or (named.pop() if named else "resid_post")
    return TraitVector.from_layer_tensors(model, by_layer, hook=chosen, name=name or path.stem, source=str(path))


def _layer_of(key: str) -> tuple[int | None, str | None]:
    try:
        layer, hook = parse_hook_name(key)
        return layer, hook
    except HookNameError:
        pass
    numbers = _NUMBER.findall(key)
    return (int(numbers[0]), None) if len(numbers) == 1 else (None, None)  # none, or several: ambiguous
