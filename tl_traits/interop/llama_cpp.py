"""Steer llama.cpp from Python: apply GGUF control vectors to a llama-cpp-python `Llama`, as
`--control-vector-scaled` does."""

from __future__ import annotations

import os
from typing import Any, Sequence

from tl_traits.core.errors import MissingExtraError
from tl_traits.core.foreign import layer_index, read_tensor
from tl_traits.interop.block_outputs import InteropError
from tl_traits.interop.gguf_control_vectors import read_control_vector

LLAMA_CPP_INSTALL = "make llamacpp (or pip install llama-cpp-python; it builds llama.cpp from source)"


def apply_control_vectors(llama: Any, vectors: Sequence[tuple[str | os.PathLike[str], float]] | None) -> None:
    """Set `[(gguf_path, scale), ...]` on a `llama_cpp.Llama` (None or [] clears them).

    Files are summed, each times its scale, into llama.cpp's buffer (one row per block from
    block 1; `direction.k` is added to block k's output), the way llama.cpp's own loader does.
    The Llama's token cache is reset: its KV entries were computed under the old vectors, and
    llama-cpp-python would otherwise reuse them for a prompt that starts the same way.
    """
    try:
        import llama_cpp
        import numpy as np
    except ImportError as exc:
        raise MissingExtraError("llama-cpp-python", install=LLAMA_CPP_INSTALL) from exc
    n_embd, n_layer = int(llama.n_embd()), int(llama_cpp.llama_model_n_layer(llama.model))
    ctx = llama.ctx
    llama.reset()
    if not vectors:
        llama_cpp.llama_set_adapter_cvec(ctx, None, 0, n_embd, -1, -1)
        return
    buffer = np.zeros((n_layer, n_embd), dtype=np.float32)  # row k-1 holds block k
    for path, scale in vectors:
        tensors, _ = read_control_vector(path)
        for name, t in tensors.items():
            t = read_tensor(t, n_embd, what=f"{path}: {name}", error=InteropError, model="this llama.cpp model").numpy()
            k = layer_index(
                name, n_layer, what="tensor", error=InteropError, model="this llama.cpp model", where=f"{path}: "
            )
            if k == 0:
                raise InteropError(f"{path} steers block 0; llama.cpp steers blocks 1..{n_layer - 1} of this model")
            buffer[k - 1] += float(scale) * t  # two names for one block (direction.12, direction.012) add up
    data = np.ascontiguousarray(buffer.reshape(-1))
    status = llama_cpp.llama_set_adapter_cvec(
        ctx,
        data.ctypes.data_as(llama_cpp.ctypes.POINTER(llama_cpp.ctypes.c_float)),
        data.size,
        n_embd,
        1,
        n_layer,
    )
    if status != 0:
        raise InteropError(f"llama.cpp refused the control vector (status {status})")
