"""mean_diff: the difference of class means, the classic trait direction."""

from __future__ import annotations

from typing import Sequence

from jaxtyping import Float
from tl_traits.extraction.checks import check_pair, unit_rows
from tl_traits.plugins.extractors import catalogue
from torch import Tensor


@catalogue.mean_diff
def mean_diff(
    pos: Float[Tensor, "n layer d_model"],
    neg: Float[Tensor, "m layer d_model"],
    *,
    seed: int = 0,
    layers: Sequence[int] | None = None,  # filled by extract: the model layer of each slice (named in errors)
) -> Float[Tensor, "layer d_model"]:
    """mean(pos) - mean(neg) at every layer, unit norm (deterministic; `seed` is ignored)."""
    pos, neg = check_pair(pos, neg, "mean_diff")
    return unit_rows(pos.mean(dim=0) - neg.mean(dim=0), "mean_diff", layers)
