"""The dashboard's token stream: TL's KV-cached `generate_stream`, greedy, under optional steering hooks, with each
token's residual projected onto the monitored vectors as the model computes it; every hook comes off when it ends."""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import Tensor

from tl_traits.app.serve.catalog import ServeError
from tl_traits.core.generation import decode_new_text
from tl_traits.core.hook_names import hook_name
from tl_traits.core.hook_points import forward_hooks
from tl_traits.core.models import model_device
from tl_traits.core.prompts import PromptInput, context_length, prepare_inputs
from tl_traits.core.vectors import TraitVector
from tl_traits.steering.steer import Steering


@dataclass(frozen=True)
class Monitor:
    """One vector read at one layer. Its value for a token is `(h . v - baseline) / unit`: the projection of the
    token's residual on the unit direction, minus the neutral baseline, in units of the layer's mean residual norm."""

    id: str
    vector: TraitVector
    layer: int
    baseline: float
    unit: float

    @property
    def hook(self) -> str:
        return hook_name(self.layer, self.vector.hook)

    def value(self, raw: float) -> float:
        return (raw - self.baseline) / self.unit


@dataclass
class Answer:
    """What one stream produced: token ids (EOS kept, as `generate_tokens` keeps it), their display pieces, each
    token's monitor values, the decoded text and why it stopped."""

    tokens: list[int] = field(default_factory=list)
    pieces: list[str] = field(default_factory=list)
    values: list[dict[str, float]] = field(default_factory=list)
    text: str = ""
    stopped: str = ""
    prompt_tokens: int = 0


def token_piece(model: Any, token: int) -> str:
    """How one token reads on its own (byte-level pieces of a multi-byte character show as U+FFFD)."""
    tok = model.tokenizer
    return str(tok.convert_tokens_to_string([tok.convert_ids_to_tokens(int(token))]))


def stream_answer(
    model: Any,
    prompt: PromptInput,
    monitors: Sequence[Monitor],
    *,
    max_new_tokens: int,
    steering: Steering | None = None,
    which: str = "chat",
    record: Answer | None = None,
) -> Iterator[dict[str, Any]]:
    """Events of one greedy answer: `start`, then per token `token` (as soon as it is sampled) and `values` (once the
    next forward has read its residual), then `done` with the decoded text.

    The stream asks TL for one token more than `max_new_tokens` when something is monitored: that last forward
    reads the last token's residual, and its own token is dropped, so the text equals `generate`'s. Hooks (the
    steering first, then the readers, which so see the steered residual) are attached for the stream only.
    """
    batch = prepare_inputs(model, [prompt], padding_side="left")
    width = int(batch.input_ids.shape[1])
    extra = 1 if monitors else 0
    context = context_length(getattr(model, "cfg", None))
    if context is not None and width + max_new_tokens + extra > context:
        raise ServeError(
            f"the conversation is {width} tokens; with {max_new_tokens} new tokens it passes the model's "
            f"context of {context}: shorten it or ask for at most {max(context - width - extra, 0)} "
            "new tokens"
        )
    answer = record if record is not None else Answer()
    answer.prompt_tokens = width
    rows: dict[str, list[Tensor]] = {}
    readers = [
        (name, _reader(rows.setdefault(name, []), torch.stack([m.vector.direction(m.layer).float() for m in group])))
        for name, group in _by_hook(monitors).items()
    ]
    eos = model.tokenizer.eos_token_id
    started = time.perf_counter()
    yield {
        "type": "start",
        "which": which,
        "prompt_tokens": width,
        "monitors": [{"id": m.id, "layer": m.layer} for m in monitors],
    }
    with steering if steering is not None else nullcontext(), forward_hooks(model, readers):
        stream = model.generate_stream(
            batch.input_ids.to(model_device(model)),
            max_new_tokens=max_new_tokens + extra,
            max_tokens_per_yield=1,
            stop_at_eos=eos is not None,
            eos_token_id=eos,
            do_sample=False,
            verbose=False,
            return_type="tokens",
            padding_side="left",  # as `generate` asks: a HookedTransformer then masks nothing in one unpadded row
        )
        try:
            for token in _new_tokens(stream, width):
                if answer.tokens:  # this step's forward read the previous token's residual
                    answer.values.append(_values(monitors, rows, len(answer.tokens)))
                    if monitors:
                        yield {
                            "type": "values",
                            "which": which,
                            "i": len(answer.tokens) - 1,
                            "values": answer.values[-1],
                        }
                if len(answer.tokens) >= max_new_tokens:
                    break
                answer.tokens.append(token)
                if token == eos:
                    break
                answer.pieces.append(token_piece(model, token))
                yield {"type": "token", "which": which, "i": len(answer.tokens) - 1, "text": answer.pieces[-1]}
        finally:
            stream.close()
    answer.stopped = "eos" if answer.tokens and answer.tokens[-1] == eos else "length"
    answer.text = decode_new_text(model, [answer.tokens])[0]
    yield {
        "type": "done",
        "which": which,
        "text": answer.text,
        "tokens": len(answer.pieces),
        "stopped": answer.stopped,
        "seconds": round(time.perf_counter() - started, 3),
    }


def replay(answer: Answer, monitors: Sequence[Monitor], which: str) -> Iterator[dict[str, Any]]:
    """The events of an answer streamed before (the unsteered answer the steering view reuses)."""
    yield {
        "type": "start",
        "which": which,
        "prompt_tokens": answer.prompt_tokens,
        "cached": True,
        "monitors": [{"id": m.id, "layer": m.layer} for m in monitors],
    }
    for i, piece in enumerate(answer.pieces):
        yield {"type": "token", "which": which, "i": i, "text": piece}
        if i < len(answer.values) and monitors:
            yield {"type": "values", "which": which, "i": i, "values": answer.values[i]}
    yield {
        "type": "done",
        "which": which,
        "text": answer.text,
        "tokens": len(answer.pieces),
        "stopped": answer.stopped,
        "seconds": 0.0,
        "cached": True,
    }


def _new_tokens(stream: Iterator[Tensor], width: int) -> Iterator[int]:
    """The new token ids of a `generate_stream`, one at a time (its first chunk starts with the prompt)."""
    first = True
    for chunk in stream:
        yield from chunk[0, width:].tolist() if first else chunk[0].tolist()
        first = False


def _by_hook(monitors: Sequence[Monitor]) -> dict[str, list[Monitor]]:
    groups: dict[str, list[Monitor]] = {}
    for m in monitors:
        groups.setdefault(m.hook, []).append(m)
    return groups


def _reader(rows: list[Tensor], directions: Tensor) -> Callable:
    """A hook that keeps `h . v` for every position of each forward (the prompt, then one token per cached step)."""

    def fn(act: Tensor, hook: Any) -> None:
        rows.append(act[0].detach().float().cpu() @ directions.T)

    return fn


def _values(monitors: Sequence[Monitor], rows: dict[str, list[Tensor]], n_tokens: int) -> dict[str, float]:
    """Each monitor's value for generated token `n_tokens - 1`: read by forward `n_tokens` (forward 0 is the prompt)."""
    out = {}
    for name, group in _by_hook(monitors).items():
        forwards = rows[name]
        if len(forwards) <= n_tokens:
            raise ServeError(
                f"the stream read {len(forwards)} forwards at {name} for {n_tokens} tokens; this model's "
                "generate_stream does not run one token per step",
                500,
            )
        raw = forwards[n_tokens][-1]
        for j, m in enumerate(group):
            out[m.id] = round(m.value(float(raw[j])), 5)
    return out
