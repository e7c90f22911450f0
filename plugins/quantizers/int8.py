"""int8: weight-only symmetric 8-bit, one absmax scale per output channel (row of an `[out, in]` weight).

Simulated faithfully in torch: each weight matrix in the blocks (attention q/k/v/o, MLP
gate/up/down) is quantized (codes in [-127, 127], scale = row absmax / 127) and its
dequantized float32 values are written into a copy of the model. What it does not simulate:
LLM.int8()'s outlier decomposition (feature columns above the threshold kept in fp16; only
the bitsandbytes backend has it, on CUDA), int8 activations or int32 accumulation (activations
stay float32). Biases and norms stay float32; embeddings only with `include_embeddings=True`.
Options: `include_embeddings`, `keep_codes` (keep codes/scales on the model).
"""

from __future__ import annotations

from tl_traits.plugins.quantizers import catalogue
from tl_traits.quantization.builders import weight_only

int8 = catalogue.int8(weight_only("int8", "int8", "weight-only symmetric int8 absmax"))
