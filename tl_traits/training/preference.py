"""The objectives that train a steering vector on preference triples (BiPO, RePS): pure functions of
response log-likelihoods, steered and unsteered."""

from __future__ import annotations

import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from tl_traits.training.config import TrainingError
from tl_traits.training.sft import IGNORE_INDEX

OBJECTIVES = ("bipo", "reps")


def response_logprobs(
    logits: Float[Tensor, "batch seq vocab"], labels: Int[Tensor, "batch seq"]
) -> tuple[Float[Tensor, " batch"], Int[Tensor, " batch"]]:
    """Each row's summed log-probability of its labelled (response) tokens, and how many there are."""
    targets = labels[:, 1:]
    mask = targets != IGNORE_INDEX
    logp = F.log_softmax(logits[:, :-1].float(), dim=-1)
    picked = logp.gather(-1, targets.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return (picked * mask).sum(dim=1), mask.sum(dim=1)


def bipo_loss(
    steered_pos: Float[Tensor, " n"],
    steered_neg: Float[Tensor, " n"],
    ref_pos: Float[Tensor, " n"],
    ref_neg: Float[Tensor, " n"],
    sign: float,
    beta: float,
) -> Float[Tensor, ""]:
    """BiPO (Cao et al. 2024): a DPO loss whose policy is the model steered by sign x v and whose reference is
    the unsteered model. At sign +1 the vector must raise the positive response's likelihood ratio over the
    negative one's; at -1 the same vector, subtracted, must do the opposite. Inputs: summed log-probs."""
    margin = (steered_pos - ref_pos) - (steered_neg - ref_neg)
    return -F.logsigmoid(sign * beta * margin).mean()


def reps_loss(
    steered_pos: Float[Tensor, " n"],
    steered_neg: Float[Tensor, " n"],
    ref_pos: Float[Tensor, " n"],
    ref_neg: Float[Tensor, " n"],
    sign: float,
) -> Float[Tensor, ""]:
    """RePS-style (Wu et al. 2025): reference-free and length-normalised. Inputs are mean log-probs per response
    token. Steered toward (+1), the positive response must beat the negative one; steered away (-1), the negative
    must beat the positive. The side to be raised is weighted by how far the unsteered model prefers the other
    side (at least 1), so pairs the model already gets right weigh less than those it gets wrong."""
    wanted, other = (steered_pos, steered_neg) if sign > 0 else (steered_neg, steered_pos)
    ref_wanted, ref_other = (ref_pos, ref_neg) if sign > 0 else (ref_neg, ref_pos)
    weight = (ref_other - ref_wanted).clamp_min(1.0)
    return -F.logsigmoid(weight * wanted - other).mean()


def preference_loss(
    objective: str,
    steered: tuple[Tensor, Tensor],
    reference: tuple[Tensor, Tensor],
    counts: tuple[Tensor, Tensor],
    sign: float,
    beta: float,
) -> Float[Tensor, ""]:
    """The named objective on summed log-probs (`counts`: response tokens per row, positive and negative)."""
    if objective == "bipo":
        return bipo_loss(steered[0], steered[1], reference[0], reference[1], sign, beta)
    if objective == "reps":
        per_token = [x / n.clamp_min(1) for x, n in zip((*steered, *reference), (*counts, *counts))]
        return reps_loss(per_token[0], per_token[1], per_token[2], per_token[3], sign)
    raise TrainingError(f"unknown objective {objective!r}; use one of {', '.join(OBJECTIVES)}")


def preference_accuracy(
    steered_pos: Tensor, steered_neg: Tensor, counts_pos: Tensor, counts_neg: Tensor, sign: float
) -> float:
    """Share of pairs whose wanted side (positive at +1, negative at -1) has the higher mean log-prob per token."""
    pos, neg = steered_pos / counts_pos.clamp_min(1), steered_neg / counts_neg.clamp_min(1)
    return float(((pos > neg) if sign > 0 else (neg > pos)).float().mean())
