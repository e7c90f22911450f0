"""int4: weight-only symmetric 4-bit, one absmax scale per group of input features (128 by default).

Simulated in torch: each weight matrix in the blocks is split, row by row, into groups of
`group_size` along the input dim (a ragged last group is allowed), quantized to codes in
[-7, 7] with scale = group absmax / 7 (symmetric, so zero is exact; -8 is left unused), and the
dequantized float32 values are written into a copy. What it does not simulate: GPTQ/AWQ-style
error-compensating or activation-aware rounding (this is plain round-to-nearest), asymmetric
zero points, fp16 scales, packed-kernel arithmetic; activations stay float32. Biases and norms
stay float32; embeddings only with `include_embeddings=True`.
Options: `group_size`, `include_embeddings`, `keep_codes`.
"""

from __future__ import annotations

from tl_traits.plugins.quantizers import catalogue
from tl_traits.quantization.builders import weight_only

int4 = catalogue.int4(weight_only("int4", "int4", "weight-only symmetric int4, group-wise absmax"))
