"""random_baseline: a seeded random direction per layer, the chance floor every method must beat."""

from __future__ import annotations

from typing import Sequence

import torch
from jaxtyping import Float
from tl_traits.extraction.checks import check_pair, unit_rows
from tl_traits.plugins.extractors import catalogue
from torch import Tensor


@catalogue.random_baseline
def random_baseline(
    pos: Float[Tensor, "n layer d_model"],
    neg: Float[Tensor, "m layer d_model"],
    *,
    seed: int = 0,
    layers: Sequence[int] | None = None,  # filled by extract: the model layer of each slice (named in errors)
) -> Float[Tensor, "layer d_model"]:
    """Isotropic random unit directions from `seed`; the data fixes only the shape (no sign flip)."""
    pos, neg = check_pair(pos, neg, "random_baseline")
    gen = torch.Generator().manual_seed(seed)  # on the CPU, so a seed gives the same vectors on any device
    directions = torch.randn(pos.shape[1:], generator=gen, dtype=torch.float32)
    return unit_rows(directions, "random_baseline", layers).to(pos.device)
