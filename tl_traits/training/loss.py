"""Examples to right-padded batches and the label-masked next-token loss: summed for training,
averaged per response token as `response_loss`."""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from tl_traits.core.models import model_device
from tl_traits.core.tokenizers import pad_id
from tl_traits.training.config import TrainingError
from tl_traits.training.sft import IGNORE_INDEX, EncodedExample, collate


def as_examples(examples: Any) -> list[EncodedExample]:
    """Encode once up front (an SFTDataset encodes on each access) and check the item type."""
    try:
        data = [examples[i] for i in range(len(examples))]
    except TypeError as exc:
        raise TrainingError("examples must be an SFTDataset or a sequence of EncodedExample") from exc
    if not data:
        raise TrainingError("no examples given: pass at least one EncodedExample")
    wrong = next((type(ex).__name__ for ex in data if not isinstance(ex, EncodedExample)), None)
    if wrong is not None:
        raise TrainingError(
            f"examples must be EncodedExample (from tl_traits.training.sft.encode_example), not {wrong}"
        )
    return data


def training_pad_id(model: Any, pad_token_id: int | None) -> int:
    """core.tokenizers.pad_id for a training batch, where a missing id is an error rather than a silent 0."""
    found = pad_id(getattr(model, "tokenizer", None), pad_token_id)
    if found is not None:
        return found
    raise TrainingError(
        "no pad token id: the model's tokenizer has neither a pad nor an EOS token; pass pad_token_id= "
        "(any id works: padding is never labelled and, on the right, never attended by real tokens)"
    )


def n_labelled(example: EncodedExample) -> int:
    """Labelled tokens the loss sees: the first token is never predicted."""
    return sum(label != IGNORE_INDEX for label in example.labels[1:])


def loss_sum(logits: Float[Tensor, "batch seq vocab"], labels: Int[Tensor, "batch seq"]) -> Float[Tensor, ""]:
    """Summed next-token cross-entropy over labelled positions (0 with a graph when none is labelled)."""
    return F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
        labels[:, 1:].reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )


def forward_batch(
    model: Any, examples: Sequence[EncodedExample], pad: int, device: torch.device
) -> tuple[Tensor, Tensor]:
    batch = collate(examples, pad, padding_side="right")
    # Right padding needs no attention mask in a causal model: real tokens never attend to the
    # pads after them, and pad positions are never labelled.
    logits = model(batch["input_ids"].to(device))
    labels = batch["labels"].to(device)
    return logits, labels


def response_loss(model: Any, examples: Any, *, batch_size: int = 16, pad_token_id: int | None = None) -> float:
    """Mean cross-entropy per labelled (response) token over all examples, in eval mode without grad."""
    data, pad, device = as_examples(examples), training_pad_id(model, pad_token_id), model_device(model)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        with torch.no_grad():
            for start in range(0, len(data), batch_size):
                logits, labels = forward_batch(model, data[start : start + batch_size], pad, device)
                total += float(loss_sum(logits, labels))
                count += int((labels[:, 1:] != IGNORE_INDEX).sum())
    finally:
        model.train(was_training)
    if count == 0:
        raise TrainingError("the examples have no labelled tokens, so there is no response loss to measure")
    return total / count
