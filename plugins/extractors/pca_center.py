"""pca_center: the principal axis of all activations, pooled and centred."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from tl_traits.plugins.extractors._checks import check_pair, orient, unit_rows


def pca_center(
    pos: Float[Tensor, "n layer d_model"], neg: Float[Tensor, "m layer d_model"], *, seed: int = 0
) -> Float[Tensor, "layer d_model"]:
    """First principal component of pos and neg pooled and centred, positives projecting higher.

    Unsupervised except for the sign: it finds the trait only where the trait is the largest
    source of variance. Deterministic; `seed` is ignored.
    """
    pos, neg = check_pair(pos, neg, "pca_center")
    pooled = torch.cat([pos, neg]).transpose(0, 1)  # [layer, n + m, d_model]
    pooled = pooled - pooled.mean(dim=1, keepdim=True)
    top = torch.linalg.svd(pooled, full_matrices=False).Vh[:, 0]  # top right singular vector, per layer
    return unit_rows(orient(top, pos, neg), "pca_center")


pca_center.description = "first principal component of pooled, centred activations"

