"""pca_center: the principal axis of activations centred on their contrastive pair's midpoint."""

from __future__ import annotations

from typing import Sequence

import torch
from jaxtyping import Float
from tl_traits.extraction.checks import check_pair, orient, unit_rows
from tl_traits.plugins.extractors import catalogue
from torch import Tensor


@catalogue.pca_center
def pca_center(
    pos: Float[Tensor, "n layer d_model"],
    neg: Float[Tensor, "m layer d_model"],
    *,
    seed: int = 0,
    layers: Sequence[int] | None = None,  # filled by extract: the model layer of each slice (named in errors)
) -> Float[Tensor, "layer d_model"]:
    """First principal component after centring, positives projecting higher (repeng's pca_center).

    With as many positives as negatives, row i of each is a contrastive pair and both are
    centred on the pair's midpoint, which removes what the pair shares (topic, length) and
    leaves +-half their difference; on such paired sets the axis coincides with pca_diff's.
    Otherwise every example is centred on the midpoint of the two class means. PCA's usual
    mean-centring follows. Deterministic; `seed` is ignored.
    """
    pos, neg = check_pair(pos, neg, "pca_center")
    paired = len(pos) == len(neg)
    middle = (pos + neg) / 2 if paired else (pos.mean(dim=0) + neg.mean(dim=0)) / 2
    pooled = torch.cat([pos - middle, neg - middle]).transpose(0, 1)  # [layer, n + m, d_model]
    pooled = pooled - pooled.mean(dim=1, keepdim=True)
    top = torch.linalg.svd(pooled, full_matrices=False).Vh[:, 0]  # top right singular vector, per layer
    return unit_rows(orient(top, pos, neg), "pca_center", layers)
