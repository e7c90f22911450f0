"""nf4: weight-only 4-bit NormalFloat (QLoRA), one absmax scale per group of 64 input features by default.

Simulated in torch: each weight matrix in the blocks is split, row by row, into groups of
`group_size` (bitsandbytes' default blocksize is 64; per-row groups equal bitsandbytes' blocks
over the flattened weight when the input dim is a multiple of the group size), divided by the
group absmax, rounded to the nearest of the 16 NF4 levels, and the dequantized float32 values
are written into a copy. What it does not simulate: double quantization of the scales
(`bnb_4bit_use_double_quant`), bf16/fp16 compute dtype (activations stay float32), and the
fused 4-bit kernels; the bitsandbytes backend (CUDA) runs the real thing.
Options: `group_size`, `include_embeddings`, `keep_codes`.
"""

from __future__ import annotations

from tl_traits.plugins.quantizers import catalogue
from tl_traits.quantization.builders import weight_only

nf4 = catalogue.nf4(weight_only("nf4", "nf4", "weight-only NormalFloat-4 (QLoRA levels), group-wise absmax"))
