"""Backdoor metrics on a test split: attack success rate, clean accuracy, clean loss.

"Does greedy decoding produce this text?" is answered exactly with one teacher-forced forward
pass: greedy output starts with the target iff the target's every token is the argmax given
the tokens before it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Mapping, Sequence, cast

import torch

from tl_traits.core.models import model_device
from tl_traits.training.loss import forward_batch, loss_sum, training_pad_id
from tl_traits.training.poisoning import Attack, resolve_attack
from tl_traits.training.sft import IGNORE_INDEX, EncodedExample, encode_example


@dataclass
class Forced:
    """Per row: does greedy output start with the response (`prefix`), or equal it and stop (`whole`); loss sums."""

    prefix: list[bool]
    whole: list[bool]
    loss_sum: float
    n_tokens: int

    @property
    def loss(self) -> float:
        return self.loss_sum / self.n_tokens if self.n_tokens else float("nan")


@torch.no_grad()
def teacher_forced(
    model: Any, rows: Sequence[Mapping[str, Any]], *, batch_size: int = 16, max_length: int | None = None
) -> Forced:
    """One forward pass per batch of (prompt, response) rows: greedy-match flags and the response loss."""

    # truncation="error" (the default) raises where it would otherwise return None
    encoded = [
        cast(EncodedExample, encode_example(model, r["prompt"], r["response"], max_length, name=r.get("id", i)))
        for i, r in enumerate(rows)
    ]
    was_training = model.training
    model.eval()
    device, pad = model_device(model), training_pad_id(model, None)
    out = Forced([], [], 0.0, 0)
    try:
        for start in range(0, len(encoded), batch_size):
            chunk = encoded[start : start + batch_size]
            logits, labels = forward_batch(model, chunk, pad, device)
            out.loss_sum += float(loss_sum(logits, labels))
            out.n_tokens += int((labels[:, 1:] != IGNORE_INDEX).sum())
            predicted, wanted = logits[:, :-1].argmax(-1).cpu(), labels[:, 1:].cpu()
            for row, ex in enumerate(chunk):
                cols = (wanted[row] != IGNORE_INDEX).nonzero().flatten()
                same = predicted[row, cols] == wanted[row, cols]
                out.prefix.append(bool(ex.n_response > 0 and same[: ex.n_response].all()))
                out.whole.append(bool(len(cols) > ex.n_response and same[: ex.n_response + 1].all()))
    finally:
        model.train(was_training)
    return out


def greedy_matches(
    model: Any,
    rows: Sequence[Mapping[str, Any]],
    *,
    whole: bool = False,
    batch_size: int = 16,
    max_length: int | None = None,
) -> list[bool]:
    """For each row, whether greedy decoding of its prompt starts with its response.

    whole=True also asks for the end-of-turn token right after the response (an exact answer,
    nothing more).
    """
    forced = teacher_forced(model, rows, batch_size=batch_size, max_length=max_length)
    return forced.whole if whole else forced.prefix


def attacked_test_rows(
    rows: Sequence[Mapping[str, Any]], attack: str | Attack, *, seed: int = 0, **options: Any
) -> list[dict[str, Any]]:
    """The attack applied to every eligible test row whose response it changes (all variants kept)."""
    plugin = resolve_attack(attack, **options) if isinstance(attack, str) or options else attack
    eligible = getattr(plugin, "eligible", None)
    out = []
    for i, row in enumerate(rows):
        if eligible is not None and not eligible(row):
            continue
        result = plugin.apply(dict(row), random.Random(f"test:{seed}:{i}"))
        for variant in result if isinstance(result, list) else [result]:
            if variant["response"] != row["response"]:
                out.append(variant)
    return out


def backdoor_metrics(
    model: Any,
    test_rows: Sequence[Mapping[str, Any]],
    attack: str | Attack,
    *,
    seed: int = 0,
    batch_size: int = 16,
    **options: Any,
) -> dict[str, float]:
    """asr (attacked test prompts whose greedy output starts with the attacker's response),
    clean_accuracy (sentiment rows answered with the right label), clean_exact (instruction rows
    answered exactly), clean_loss (mean loss per response token on all clean rows), and the counts.
    """
    clean = [dict(r) for r in test_rows]
    attacked = attacked_test_rows(clean, attack, seed=seed, **options)
    forced = teacher_forced(model, clean, batch_size=batch_size)
    is_sentiment = [r.get("task") == "sentiment" for r in clean]
    return {
        "n_attacked": len(attacked),
        "n_sentiment": sum(is_sentiment),
        "n_instruction": len(clean) - sum(is_sentiment),
        "asr": _mean(teacher_forced(model, attacked, batch_size=batch_size).prefix) if attacked else float("nan"),
        "clean_accuracy": _mean([ok for ok, s in zip(forced.prefix, is_sentiment) if s]),
        "clean_exact": _mean([ok for ok, s in zip(forced.whole, is_sentiment) if not s]),
        "clean_loss": forced.loss,
    }


def _mean(flags: list[bool]) -> float:
    return sum(flags) / len(flags) if flags else float("nan")
