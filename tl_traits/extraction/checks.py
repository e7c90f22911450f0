"""Input checks and output conventions (unit norm, sign) for extractors: the built-in ones and any plugin author's."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from tl_traits.extraction.extract import ExtractionError


def check_pair(
    pos: Any, neg: Any, method: str
) -> tuple[Float[Tensor, "n layer d_model"], Float[Tensor, "m layer d_model"]]:
    """`pos` and `neg` as float32 `[examples, layers, d_model]` tensors, or a ValueError saying what to fix."""
    pos, neg = torch.as_tensor(pos), torch.as_tensor(neg)
    for label, x in (("pos", pos), ("neg", neg)):
        if x.ndim != 3:
            raise ExtractionError(
                f"{method}: {label} has shape {tuple(x.shape)}; extractors need [examples, layers, d_model] "
                "activations (capture() returns that shape; for a single layer use x[:, None, :])"
            )
        if x.shape[0] == 0:
            raise ExtractionError(
                f"{method}: {label} is empty (0 examples); pass at least one positive and one negative example"
            )
    if pos.shape[1:] != neg.shape[1:]:
        raise ExtractionError(
            f"{method}: pos is [n, layers, d_model] = {tuple(pos.shape)} but neg is {tuple(neg.shape)}; "
            "layers and d_model must match (capture both sets from the same model, hook and layers)"
        )
    if pos.device != neg.device:
        raise ExtractionError(f"{method}: pos is on {pos.device} but neg on {neg.device}; move both to one device")
    pos, neg = pos.float(), neg.float()
    for label, x in (("pos", pos), ("neg", neg)):
        # A finite sum proves every entry finite without a full-size mask; only a suspect sum pays for one
        if not torch.isfinite(x.sum()) and not torch.isfinite(x).all():
            bad = (~torch.isfinite(x)).nonzero()[0].tolist()
            raise ExtractionError(
                f"{method}: {label} holds non-finite values (first at [example, layer, dim] = {bad}); "
                "drop those examples or capture in a wider dtype"
            )
    return pos, neg


def unit_rows(
    directions: Float[Tensor, "layer d_model"], method: str, layers: Sequence[int] | None = None
) -> Float[Tensor, "layer d_model"]:
    """Each layer's direction scaled to unit norm (float32); a zero direction is an error, not a nan, naming the
    model layers (`layers`, one per row, as extract passes them; without it, row i is layer i)."""
    norms = directions.norm(dim=-1, keepdim=True)
    rows = (norms.squeeze(-1) == 0).nonzero().flatten().tolist()
    names = list(layers) if layers is not None else []
    zero = [int(names[i]) for i in rows] if len(names) == len(directions) else rows
    if zero:
        raise ExtractionError(
            f"{method}: the direction is exactly zero at layers {zero} (the two sets are indistinguishable "
            "there); check that pos and neg really differ"
        )
    return (directions / norms).float().contiguous()


def orient(
    directions: Float[Tensor, "layer d_model"],
    pos: Float[Tensor, "n layer d_model"],
    neg: Float[Tensor, "m layer d_model"],
) -> Float[Tensor, "layer d_model"]:
    """Flip each layer's direction so positives project higher than negatives on average."""
    gap = torch.einsum("ld,ld->l", pos.mean(dim=0) - neg.mean(dim=0), directions)
    return directions * torch.where(gap < 0, -1.0, 1.0).unsqueeze(-1)
