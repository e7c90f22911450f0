"""The unsteered model's likelihood of a response to a question: mean next-token loss and token diversity."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor

from tl_traits.core.models import model_device
from tl_traits.core.prompts import prepare_inputs


def distinct_n(tokens: Sequence[int], n: int) -> float:
    """Unique n-grams / all n-grams (1.0 when the text is too short to have any)."""
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 1.0


@torch.no_grad()
def response_likelihood(model: Any, questions: list[str], responses: list[str]) -> list[tuple[float, float]]:
    """(mean nll in nats per token, mean of distinct-2/3) per response, one forward pass for the batch.

    The nll covers the response tokens and the end-of-turn token after them, given the chat-formatted
    question (`prepare_inputs`); a response with no token scores (inf, 1.0). Pass the unsteered model.
    """
    batch = prepare_inputs(model, questions, responses, padding_side="right")
    device = model_device(model)
    ids: Int[Tensor, "batch seq"] = batch.input_ids.to(device)
    result = model(ids, attention_mask=batch.attention_mask.to(device))
    logits: Float[Tensor, "batch seq vocab"] = getattr(result, "logits", result)
    out = []
    for row, spans in enumerate(batch.spans):
        (r0, r1), (e0, e1) = spans.response, spans.end
        targets = list(range(max(r0, 1), r1)) + ([e0] if e1 > e0 else [])
        if not targets:
            out.append((float("inf"), 1.0))
            continue
        index = torch.tensor(targets, device=device)
        logprobs = logits[row, index - 1].float().log_softmax(-1)
        nll = -logprobs.gather(-1, ids[row, index].unsqueeze(-1)).mean().item()
        tokens = batch.token_ids[row][r0:r1]
        out.append((nll, (distinct_n(tokens, 2) + distinct_n(tokens, 3)) / 2))
    return out
