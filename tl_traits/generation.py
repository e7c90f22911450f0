"""Text generation through `prepare_inputs`: returns only the new text of each prompt."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from tl_traits.prompts import PromptInput, prepare_inputs


@torch.no_grad()
def generate(
    model: Any,
    prompts: PromptInput | Sequence[PromptInput],
    *,
    max_new_tokens: int = 64,
    greedy: bool = True,
    temperature: float = 1.0,
    seed: int | None = None,
    system: str | None = None,
) -> list[str]:
    """Generate a continuation for each prompt (chat-formatted when the model has a template).

    One prompt at a time with TL's KV-cached `generate`; stops at the tokenizer's EOS
    (the end-of-turn token on chat models). Special tokens are left out of the text.
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    batch = prepare_inputs(model, prompts, system=system, padding_side="left")
    tokenizer = model.tokenizer
    device = next(model.parameters()).device
    if seed is not None:
        torch.manual_seed(seed)
    outputs: list[str] = []
    for ids in batch.token_ids:
        tokens = torch.tensor([ids], dtype=torch.long, device=device)
        out = model.generate(
            tokens,
            max_new_tokens=max_new_tokens,
            do_sample=not greedy,
            temperature=temperature,
            stop_at_eos=tokenizer.eos_token_id is not None,
            eos_token_id=tokenizer.eos_token_id,
            verbose=False,
        )
        new = out[0, len(ids):].tolist()
        outputs.append(tokenizer.decode(new, skip_special_tokens=True))
    return outputs
