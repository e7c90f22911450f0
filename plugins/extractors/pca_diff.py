"""pca_diff: the principal axis of paired differences pos[i] - neg[i]."""

from __future__ import annotations

from typing import Sequence

import torch
from jaxtyping import Float
from tl_traits.extraction.checks import check_pair, orient, unit_rows
from tl_traits.plugins.extractors import catalogue
from torch import Tensor


@catalogue.pca_diff
def pca_diff(
    pos: Float[Tensor, "n layer d_model"],
    neg: Float[Tensor, "m layer d_model"],
    *,
    seed: int = 0,
    layers: Sequence[int] | None = None,  # filled by extract: the model layer of each slice (named in errors)
) -> Float[Tensor, "layer d_model"]:
    """First principal axis of pos[i] - neg[i] over the first min(n, m) pairs, positives projecting higher.

    The differences are not centred: a consistent shift along the trait is the signal here,
    and centring would remove it. Deterministic; `seed` is ignored.
    """
    pos, neg = check_pair(pos, neg, "pca_diff")
    k = min(len(pos), len(neg))
    diffs = (pos[:k] - neg[:k]).transpose(0, 1)  # [layer, k, d_model]
    top = torch.linalg.svd(diffs, full_matrices=False).Vh[:, 0]  # top right singular vector, per layer
    return unit_rows(orient(top, pos, neg), "pca_diff", layers)
