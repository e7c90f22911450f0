"""GGUF control vectors, the files llama.cpp (`--control-vector`), ollama and repeng read and write.

The layout: architecture `controlvector`, a `controlvector.model_hint` string, a
`controlvector.layer_count`, and one 1-D float32 tensor `direction.k` per steered block; llama.cpp
adds `direction.k` (times the scale given at load) to block k's output at every position, which is
TransformerLens' `blocks.k.hook_resid_post`. llama.cpp refuses `direction.0`. Layer numbers are read
by `core.foreign` (ASCII digits; `direction.12` and `direction.012` name one layer and are summed).
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

from tl_traits.core.files import atomic_write_bytes
from tl_traits.core.foreign import layer_number
from tl_traits.core.numeric import check_number
from tl_traits.core.vectors import TraitVector
from tl_traits.interop.block_outputs import InteropError, block_output_index

ARCH = "controlvector"
PREFIX = "direction."


def export_gguf(
    vector: TraitVector,
    path: str | os.PathLike[str],
    *,
    strength: float = 1.0,
    layers: list[int] | None = None,
    model_hint: str | None = None,
) -> Path:
    """Write `vector` as a GGUF control vector, atomically.

    Each `direction.k` holds what `steer(model, vector, k, strength=strength)` adds, so with the
    default strength 1 llama.cpp's scale is the project's strength: `--control-vector-scaled
    FILE 0.4` steers as `strength=0.4` does. layers: which of the vector's layers (default all
    of them but 0, which llama.cpp cannot steer; -1 is the last layer, as in `steer`). model_hint:
    recorded for repeng (default: the model's name); llama.cpp ignores it.
    """
    import gguf
    import numpy as np

    strength = check_number(strength, "strength", InteropError)  # finite in float32; layer_tensors checks it scaled
    hook = vector.hook
    if layers is None:  # every layer llama.cpp can steer: block 0's output is out of its reach
        first = {"resid_post": 1, "resid_pre": 2}.get(hook, 0)
        layers = [layer for layer in vector.layers if layer >= first]
        if not layers:
            raise InteropError(
                f"no layer left to export: llama.cpp steers blocks 1 and up, and this vector has "
                f"layers {vector.layers} at {hook}"
            )
    # layer_tensors reads `layers` as every layer key is read: -1 is the last layer, [] is refused
    blocks = {
        block_output_index(layer, hook, "llama.cpp"): t for layer, t in vector.layer_tensors(strength, layers).items()
    }
    if 0 in blocks:
        raise InteropError(
            "llama.cpp cannot steer the output of block 0 (it refuses direction.0); leave layer 0 out of layers"
        )
    model = vector.metadata.get("model") or {}
    writer_path = Path(tempfile.mkdtemp(prefix="tl_traits_gguf_")) / "vector.gguf"
    try:
        writer = gguf.GGUFWriter(str(writer_path), ARCH)
        writer.add_string(f"{ARCH}.model_hint", model_hint or str(model.get("name") or "unknown"))
        writer.add_uint32(f"{ARCH}.layer_count", len(blocks))
        # what made it, for a reader of the file (llama.cpp and repeng ignore these keys)
        writer.add_string("tl_traits.vector", vector.label)
        writer.add_string("tl_traits.model", str(model.get("name")))
        writer.add_string("tl_traits.hook", hook)
        writer.add_float32("tl_traits.strength", float(strength))
        for block in sorted(blocks):
            writer.add_tensor(f"{PREFIX}{block}", blocks[block].numpy().astype(np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        return atomic_write_bytes(path, writer_path.read_bytes())
    finally:
        writer_path.unlink(missing_ok=True)
        writer_path.parent.rmdir()


def import_gguf(path: str | os.PathLike[str], model: Any, *, name: str | None = None) -> TraitVector:
    """Read a GGUF control vector (from repeng, llama.cpp's cvector generator, or `export_gguf`) for `model`.

    The result is in absolute units: `steer(model, v, strength=s)` adds s times each file tensor,
    as llama.cpp does at scale s (for a file written by `export_gguf`, strength s here is strength
    `s x` the exported strength on the original vector). Its layers are the file's `direction.k`
    (two names for one layer, `direction.12` and `direction.012`, are summed).
    """
    tensors, fields = read_control_vector(path)
    vector = TraitVector.from_layer_tensors(
        model, tensors, hook="resid_post", name=name or Path(path).stem, source=str(path)
    )
    vector.metadata["model_hint"] = fields.get(f"{ARCH}.model_hint")
    if fields.get("tl_traits.strength") is not None:
        vector.metadata["exported_at_strength"] = fields["tl_traits.strength"]
    return vector


def read_control_vector(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """`({tensor name: float32 array}, {key: value})` of a GGUF control vector, checked as llama.cpp checks it
    (only 1-D float32 `direction.<k>` tensors of one width). The names are layer keys: resolve them with
    `core.foreign.layer_index` (which also sums `direction.12` and `direction.012` in `from_layer_tensors`)."""
    import gguf

    path = Path(path)
    if not path.is_file():
        raise InteropError(f"no GGUF file at {path}")
    try:
        reader = gguf.GGUFReader(str(path))
        fields = {key: _field_value(reader, key) for key in reader.fields if not key.startswith("GGUF.")}
        listed = [(str(t.name), t.tensor_type, len(t.shape), t) for t in reader.tensors]
    except Exception as exc:
        raise InteropError(f"{path} is not a readable GGUF file ({type(exc).__name__}: {exc})") from exc
    if fields.get("general.architecture") != ARCH:
        warnings.warn(
            f"{path} has architecture {fields.get('general.architecture')!r}, not {ARCH!r}: "
            "it may not be a control vector",
            stacklevel=3,
        )
    tensors: dict[str, Any] = {}
    for name, kind, dims, tensor in listed:
        if name.startswith(PREFIX):
            layer_number(name, what="tensor", error=InteropError, where=f"{path}: ")  # ASCII digits, one number
        if not name.startswith(PREFIX) or not re.fullmatch(r"-?[0-9]+", name[len(PREFIX) :]):
            raise InteropError(f"{path} holds tensor {name!r}; a control vector holds only direction.<layer> tensors")
        if kind != gguf.GGMLQuantizationType.F32 or dims != 1:
            raise InteropError(f"{path}: {name} is not a 1-D float32 tensor (llama.cpp refuses it too)")
        try:
            tensors[name] = tensor.data.copy()
        except Exception as exc:
            raise InteropError(f"{path}: the data of {name} cannot be read ({type(exc).__name__}: {exc})") from exc
    if not tensors:
        raise InteropError(f"{path} holds no direction.<layer> tensors")
    if len({t.shape[0] for t in tensors.values()}) > 1:
        raise InteropError(f"{path}: its direction tensors have different widths")
    return tensors, fields


def _field_value(reader: Any, key: str) -> Any:
    """A scalar or string GGUF field's value (None for arrays and anything else)."""
    field = reader.get_field(key)
    if field is None or len(field.data) != 1:
        return None
    part = field.parts[field.data[0]]
    if field.types and field.types[0].name == "STRING":
        return bytes(part).decode("utf-8", errors="replace")
    return part[0].item() if hasattr(part[0], "item") else part[0]
