"""Batched text generation through `prepare_inputs` (left padding, explicit mask): only the new text."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from tqdm.auto import tqdm

from tl_traits.core.errors import TlTraitsError
from tl_traits.core.models import model_device, model_kind
from tl_traits.core.prompts import PreparedInputs, PromptInput, context_length, prepare_inputs

# Called with each batch before it is generated: steering hooks use it to learn the prompt width.
BatchListener = Callable[[PreparedInputs], None]
_LISTENERS: dict[int, list[BatchListener]] = {}


def add_batch_listener(model: Any, listener: BatchListener) -> Callable[[], None]:
    """Register `listener` for this model's generate batches; returns the function that removes it."""
    _LISTENERS.setdefault(id(model), []).append(listener)

    def remove() -> None:
        listeners = _LISTENERS.get(id(model), [])
        if listener in listeners:
            listeners.remove(listener)
        if not listeners:
            _LISTENERS.pop(id(model), None)

    return remove


@torch.no_grad()
def generate(
    model: Any,
    prompts: PromptInput | Sequence[PromptInput],
    *,
    max_new_tokens: int = 64,
    greedy: bool = True,
    temperature: float = 1.0,
    top_p: float | None = None,
    seed: int | None = None,
    system: str | None = None,
    batch_size: int = 32,
    progress: bool = False,
) -> list[str]:
    """Generate a continuation per prompt (chat-formatted when the model has a template).

    Batches are left-padded with an explicit attention mask and run through TL's KV-cached
    `generate`; each row stops at the tokenizer's EOS (the end-of-turn token on chat models).
    Special tokens are left out of the returned text.
    """
    tokens = generate_tokens(
        model,
        prompts,
        max_new_tokens=max_new_tokens,
        greedy=greedy,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        system=system,
        batch_size=batch_size,
        progress=progress,
    )
    return decode_new_text(model, tokens)


def decode_new_text(model: Any, tokens: Sequence[Sequence[int]]) -> list[str]:
    """Each row of new tokens as text, special tokens left out.

    A row cut by `max_new_tokens` inside a character that spans several byte-level tokens (an emoji)
    would end in U+FFFD; that unfinished character is dropped rather than shown broken.
    """
    texts = [model.tokenizer.decode(list(t), skip_special_tokens=True) for t in tokens]
    return [text.rstrip("\ufffd") if text.endswith("\ufffd") else text for text in texts]


@torch.no_grad()
def generate_tokens(
    model: Any,
    prompts: PromptInput | Sequence[PromptInput],
    *,
    max_new_tokens: int = 64,
    greedy: bool = True,
    temperature: float = 1.0,
    top_p: float | None = None,
    seed: int | None = None,
    system: str | None = None,
    batch_size: int = 32,
    progress: bool = False,
) -> list[list[int]]:
    """The new token ids per prompt, cut after the first EOS (which is kept)."""
    if max_new_tokens < 1:
        raise GenerationError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if batch_size < 1:
        raise GenerationError(f"batch_size must be >= 1, got {batch_size}")
    prepared = prepare_inputs(model, prompts, system=system, padding_side="left")
    context = context_length(getattr(model, "cfg", None))
    longest = max(len(row) for row in prepared.token_ids)
    if context is not None and longest + max_new_tokens > context:
        raise GenerationError(
            f"a prompt of {longest} tokens plus max_new_tokens={max_new_tokens} exceeds the model's context of "
            f"{context} tokens; shorten the prompt or lower max_new_tokens to {max(context - longest, 0)}"
        )
    eos = model.tokenizer.eos_token_id
    device = model_device(model)
    if seed is not None:
        torch.manual_seed(seed)
    out: list[list[int]] = []
    starts = range(0, len(prepared), batch_size)
    for start in tqdm(starts, desc="generate", unit="batch", disable=not progress or len(starts) < 2, leave=False):
        batch = _slice(prepared, start, start + batch_size)
        for listener in list(_LISTENERS.get(id(model), [])):
            listener(batch)
        kwargs: dict[str, Any] = dict(
            max_new_tokens=max_new_tokens,
            do_sample=not greedy,
            temperature=temperature,
            top_p=top_p,
            stop_at_eos=eos is not None,
            eos_token_id=eos,
            verbose=False,
            padding_side="left",
        )
        if model_kind(model) == "bridge":
            kwargs["attention_mask"] = batch.attention_mask.to(device)
        result = model.generate(batch.input_ids.to(device), **kwargs)
        width = batch.input_ids.shape[1]
        for row in result[:, width:].tolist():
            out.append(row[: row.index(eos) + 1] if eos is not None and eos in row else row)
    return out


def _slice(batch: PreparedInputs, start: int, stop: int) -> PreparedInputs:
    """Rows [start, stop) re-padded to their own width (a narrower batch runs faster)."""
    rows = batch.token_ids[start:stop]
    width = max(len(r) for r in rows)
    cut = batch.input_ids.shape[1] - width
    return PreparedInputs(
        batch.input_ids[start:stop, cut:],
        batch.attention_mask[start:stop, cut:],
        batch.rendered[start:stop],
        [s.shifted(-cut) for s in batch.spans[start:stop]],
        batch.padding_side,
        batch.settings,
        rows,
    )


class GenerationError(TlTraitsError, RuntimeError):
    """Generation that cannot work: bad settings, a prompt past the context, or a library
    version that breaks TL's generate."""


@torch.no_grad()
def check_cached_generation(model: Any, prompt: str = "How was your day?", n_tokens: int = 8) -> None:
    """Greedy generation with TL's KV cache must give the tokens a full forward per step gives.

    Some transformers releases (5.24) break the bridge's cached generation: the first token is
    right, the rest are junk. A long job that generates text calls this first (one short prompt).
    """
    batch = prepare_inputs(model, [prompt], padding_side="left")
    ids = batch.input_ids.to(model_device(model))
    runs = [
        model.generate(
            ids, max_new_tokens=n_tokens, do_sample=False, use_past_kv_cache=cache, verbose=False, stop_at_eos=False
        )[0, ids.shape[1] :].tolist()
        for cache in (True, False)
    ]
    if runs[0] != runs[1]:
        import transformers

        raise GenerationError(
            f"generation with the KV cache gives {model.tokenizer.decode(runs[0])!r} but without it "
            f"{model.tokenizer.decode(runs[1])!r}: this transformers ({transformers.__version__}) breaks "
            "TransformerLens's cached generation. Install the versions pyproject.toml allows (pip install -e .)"
        )
