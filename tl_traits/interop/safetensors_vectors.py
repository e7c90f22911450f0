"""Plain safetensors files of per-layer vectors from other tools (no tl_traits header) as TraitVectors.

Tensor names carry the layer as their one whole number ("12", "layer.12", "direction.12",
"model.layers.12", "layer.-1" for the last layer), or are TransformerLens hook names
("blocks.12.hook_resid_post", which also give the hook). A name pointing at a place we do not steer
(`blocks.12.hook_mlp_in`, `model.layers.12.mlp`) is refused. Names that resolve to one layer are
summed; each tensor must be exactly [d_model] (`core.foreign` reads both).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tl_traits.core.foreign import hook_of_key, layer_number
from tl_traits.core.hook_names import HOOKS
from tl_traits.core.vectors import TraitVector, has_vectors_header
from tl_traits.interop.block_outputs import InteropError


def import_safetensors(
    path: str | os.PathLike[str], model: Any, *, hook: str | None = None, name: str | None = None
) -> TraitVector:
    """A `{layer: tensor}` safetensors file (repeng-, steering-vectors- or hand-made) for `model`, in absolute units.

    hook: where the tensors are added (default: the hook named in TL hook-name keys, else
    resid_post, a decoder block's output, which is what those tools steer)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise InteropError(f"no safetensors file at {path}")
    try:
        ours = has_vectors_header(path)
        with safe_open(str(path), framework="pt") as fh:
            tensors = {key: fh.get_tensor(key) for key in fh.keys()}
    except Exception as exc:
        raise InteropError(f"{path} is not a readable safetensors file ({type(exc).__name__}: {exc})") from exc
    if ours:
        raise InteropError(
            f"{path} is a tl_traits vectors file (it has the tl_traits header); read it with "
            f"tt.TraitVectors.load({str(path)!r}), not import_safetensors (which is "
            "for other tools' files)"
        )
    hooks = set()
    for key in tensors:
        hooks.add(hook_of_key(key, HOOKS, where=f"{path}: ", error=InteropError))
        # a clear error before the model is asked
        layer_number(key, what="tensor", error=InteropError, where=f"{path}: ")
    named = {h for h in hooks if h}
    if named and None in hooks and hook is None:
        named.add("resid_post")  # a plain layer key means the residual stream, as in steering-vectors' files
    if len(named) > 1:
        raise InteropError(
            f"{path} mixes hooks {sorted(named)} (plain layer keys are resid_post); import one hook at a time"
        )
    chosen = hook or (named.pop() if named else "resid_post")
    return TraitVector.from_layer_tensors(model, tensors, hook=chosen, name=name or path.stem, source=str(path))
