"""Instruction-tuning data: label-masked encodings made through `prepare_inputs`, and a collator that keeps labels.

Labels are -100 on every prompt, template and padding token and the token id on each response
token plus the end-of-turn token that closes the response, so the loss trains the answer and
where it stops, never the prompt. Examples are always encoded from text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import torch
from jaxtyping import Int
from torch import Tensor

from tl_traits.core.errors import TlTraitsError
from tl_traits.core.prompts import PromptInput, prepare_inputs

IGNORE_INDEX = -100  # what torch's cross_entropy skips
TRUNCATION = ("error", "drop")


class SFTError(TlTraitsError):
    """An example that cannot be encoded as asked (its whole response would be cut, ...)."""


@dataclass(frozen=True)
class EncodedExample:
    """One example's unpadded ids, mask and labels; `n_prompt` tokens precede the response.

    `n_response` counts the response's own tokens (after truncation), without the end-of-turn token.
    """

    input_ids: list[int]
    attention_mask: list[int]
    labels: list[int]
    n_prompt: int
    n_response: int

    def __len__(self) -> int:
        return len(self.input_ids)


def encode_example(
    model_or_tokenizer: Any,
    messages: PromptInput,
    response: str,
    max_length: int | None = None,
    *,
    system: str | None = None,
    truncation: str = "error",
    name: str | int | None = None,
) -> EncodedExample | None:
    """Encode one (prompt, response) pair with labels masked to the response and its end-of-turn token.

    max_length: longer encodings keep their first max_length tokens; when that would cut the
    whole response, truncation="error" raises naming the example, "drop" returns None.
    """
    if truncation not in TRUNCATION:
        raise SFTError(f"truncation must be one of {TRUNCATION}, not {truncation!r}")
    if not isinstance(response, str) or not response:
        raise SFTError(f"example {name!r}: the response must be a non-empty string")
    batch = prepare_inputs(model_or_tokenizer, [messages], [response], system=system)
    ids, spans = list(batch.token_ids[0]), batch.spans[0]
    labelled_end = spans.end[0] + 1 if spans.end[1] > spans.end[0] else spans.response[1]
    labels = [tok if spans.response[0] <= i < labelled_end else IGNORE_INDEX for i, tok in enumerate(ids)]
    if max_length is not None and len(ids) > max_length:
        if spans.response[0] >= max_length:
            if truncation == "drop":
                return None
            raise SFTError(
                f"example {name!r}: its prompt takes {spans.response[0]} tokens, so max_length={max_length} "
                "would cut the whole response; raise max_length, shorten the prompt, or pass truncation='drop'"
            )
        ids, labels = ids[:max_length], labels[:max_length]
    n_response = min(spans.response[1], len(ids)) - spans.response[0]
    return EncodedExample(ids, [1] * len(ids), labels, spans.response[0], n_response)


def collate(
    examples: Sequence[EncodedExample], pad_token_id: int, *, padding_side: str = "right"
) -> dict[str, Int[Tensor, "batch seq"]]:
    """Pad to the longest example: ids with `pad_token_id`, mask with 0, labels with -100;
    labels are never rewritten."""
    if not examples:
        raise SFTError("collate needs at least one example")
    if padding_side not in ("right", "left"):
        raise SFTError(f"padding_side must be 'right' or 'left', not {padding_side!r}")
    width = max(len(ex) for ex in examples)
    out = {
        "input_ids": torch.full((len(examples), width), pad_token_id, dtype=torch.long),
        "attention_mask": torch.zeros((len(examples), width), dtype=torch.long),
        "labels": torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long),
    }
    for row, ex in enumerate(examples):
        cols = slice(0, len(ex)) if padding_side == "right" else slice(width - len(ex), width)
        out["input_ids"][row, cols] = torch.tensor(ex.input_ids)
        out["attention_mask"][row, cols] = torch.tensor(ex.attention_mask)
        out["labels"][row, cols] = torch.tensor(ex.labels)
    return out


class SFTDataset(torch.utils.data.Dataset):
    """Rows of text (a list of dicts or a HF `datasets.Dataset`) encoded on access, always from the text.

    prompt_key may hold a string or a list of chat messages. With truncation="drop", rows whose
    whole response would be cut are left out when the dataset is built; `dropped` lists them.
    """

    def __init__(
        self,
        rows: Iterable[Mapping[str, Any]],
        model_or_tokenizer: Any,
        *,
        max_length: int | None = None,
        prompt_key: str = "prompt",
        response_key: str = "response",
        system: str | None = None,
        truncation: str = "error",
    ) -> None:
        self.rows = [dict(r) for r in rows]
        self.tokenizer = model_or_tokenizer
        self.max_length, self.system, self.truncation = max_length, system, truncation
        self.prompt_key, self.response_key = prompt_key, response_key
        for i, row in enumerate(self.rows):
            missing = [k for k in (prompt_key, response_key) if k not in row]
            if missing:
                raise SFTError(f"row {i} has no {missing}; its keys are {sorted(row)} (set prompt_key/response_key)")
        self.dropped = [i for i in range(len(self.rows)) if self._encode(i) is None]
        self._index = [i for i in range(len(self.rows)) if i not in set(self.dropped)]

    def _encode(self, i: int) -> EncodedExample | None:
        row = self.rows[i]
        return encode_example(
            self.tokenizer,
            row[self.prompt_key],
            row[self.response_key],
            self.max_length,
            system=self.system,
            truncation=self.truncation,
            name=row.get("id", i),
        )

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i: int) -> EncodedExample:
        encoded = self._encode(self._index[i])
        assert encoded is not None  # dropped rows were left out of the index
        return encoded
