"""gradient: a direction found by gradient ascent on the separation of mean projections."""

from __future__ import annotations

from typing import Sequence

import torch
from jaxtyping import Float
from tl_traits.extraction.checks import check_pair, unit_rows
from tl_traits.plugins.extractors import catalogue
from torch import Tensor


@catalogue.gradient
def gradient(
    pos: Float[Tensor, "n layer d_model"],
    neg: Float[Tensor, "m layer d_model"],
    *,
    seed: int = 0,
    layers: Sequence[int] | None = None,  # filled by extract: the model layer of each slice
    steps: int = 300,
    lr: float = 0.05,
    penalty: float = 1.0,
) -> Float[Tensor, "layer d_model"]:
    """Adam from a seeded random start, maximising per layer, with u = v / ||v||,

        (mean(pos·u) - mean(neg·u)) / ||mean(pos) - mean(neg)||  -  penalty·(||v|| - 1)²

    The gap is measured in units of its largest possible value so one `lr` suits every layer;
    the penalty pins the scale, leaving one optimum, the mean_diff direction. The learning rate
    decays to 0 on a cosine over `steps`, so the result settles instead of jittering at `lr`.
    """
    pos, neg = check_pair(pos, neg, "gradient")
    gap = pos.mean(dim=0) - neg.mean(dim=0)  # mean(pos·u) - mean(neg·u) = gap·u: one pass over the data
    unit_gap = unit_rows(gap, "gradient", layers)  # a zero gap has no direction to find: an error, as in mean_diff
    gen = torch.Generator().manual_seed(seed)
    start = torch.randn(gap.shape, generator=gen, dtype=torch.float32).to(gap.device)
    # Autograd must run even when the caller is in no_grad or inference mode
    with torch.inference_mode(False), torch.enable_grad():
        unit_gap = unit_gap.clone()  # normal tensors, which autograd may save and Adam may update
        v = torch.nn.Parameter(start / start.norm(dim=-1, keepdim=True))
        opt = torch.optim.Adam([v], lr=lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
        for _ in range(steps):
            norm = v.norm(dim=-1)
            objective = (unit_gap * v).sum(-1) / norm - penalty * (norm - 1) ** 2
            opt.zero_grad()
            (-objective.sum()).backward()  # layers are independent: the sum's gradient is each layer's own
            opt.step()
            schedule.step()
    return unit_rows(v.detach(), "gradient", layers)
