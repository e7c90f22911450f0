"""bf16: the model in bfloat16 (float32's 8-bit exponent, 7-bit mantissa).

Native where the device runs bfloat16 matmuls (checked with a tiny probe, then a two-token
forward of the cast copy): the copy is `model.to(torch.bfloat16)` with `cfg.dtype` updated, so
weights, buffers and activations are all bfloat16. Otherwise (or with
`compute="simulated"`) only the weights are rounded to bfloat16 and stored back as float32:
activations and accumulations stay float32, which hides bfloat16's coarse activations.
Options: `compute="auto" | "native" | "simulated"`.
"""

from __future__ import annotations

import torch
from tl_traits.plugins.quantizers import catalogue
from tl_traits.quantization.builders import half_precision

bf16 = catalogue.bf16(half_precision("bf16", torch.bfloat16))
