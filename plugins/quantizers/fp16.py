"""fp16: the model in IEEE half precision (5-bit exponent, 10-bit mantissa).

Native where the device runs float16 matmuls (checked with a tiny probe, then a two-token
forward of the cast copy): the copy is `model.to(torch.float16)` with `cfg.dtype` updated, so
weights, buffers and activations are all float16, as TL runs a model loaded with
`dtype=torch.float16`. Otherwise (or with `compute="simulated"`) only the weights are rounded
to float16 and stored back as float32: activations, LayerNorm arithmetic and attention
scores stay float32, so overflow in activations (|x| > 65504) is not reproduced.
Options: `compute="auto" | "native" | "simulated"`.
"""

from __future__ import annotations

import torch
from tl_traits.plugins.quantizers import catalogue
from tl_traits.quantization.builders import half_precision

fp16 = catalogue.fp16(half_precision("fp16", torch.float16))
