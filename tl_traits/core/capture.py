"""Batched, padding-aware capture of per-layer activations, averaged over chosen positions in the hook.

No activation cache is kept: each hook reduces its `[batch, seq, d_model]` tensor to
`[batch, d_model]` at once, and the forward stops after the last layer needed. One loop serves
`capture` (into memory) and `capture_to_disk` (into shards): only the sink differs.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from einops import einsum
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from tl_traits.core.activations import ActivationSet, CaptureError
from tl_traits.core.capture_sinks import (
    CaptureSink,
    MemorySink,
    ShardedActivations,
    ShardSink,
    iter_shards,
    load_shards,
)
from tl_traits.core.foreign import layer_list
from tl_traits.core.hook_names import HOOKS, hook_name
from tl_traits.core.hook_points import forward_hooks
from tl_traits.core.models import model_device, model_identity
from tl_traits.core.positions import Position, parse_position, position_weights
from tl_traits.core.prompts import prepare_inputs
from tl_traits.core.trait_sets import TraitDataset, TraitExample


# -- inputs ------------------------------------------------------------------------------------------
def as_examples(examples: Any) -> tuple[list[TraitExample], list[int] | None]:
    """TraitDataset, TraitExamples, strings, (prompt, response) pairs or dicts -> examples (+ labels)."""
    if isinstance(examples, TraitDataset):
        return examples.examples, examples.labels
    if isinstance(examples, (str, TraitExample)):
        examples = [examples]
    out: list[TraitExample] = []
    for i, ex in enumerate(examples):
        if isinstance(ex, TraitExample):
            out.append(ex)
        elif isinstance(ex, str):
            out.append(TraitExample(ex))
        elif isinstance(ex, dict) and isinstance(ex.get("prompt"), str):
            out.append(TraitExample(ex["prompt"], ex.get("response"), ex.get("system")))
        elif isinstance(ex, (tuple, list)) and len(ex) == 2 and all(isinstance(x, str) for x in ex):
            out.append(TraitExample(ex[0], ex[1]))
        else:
            raise CaptureError(
                f"example {i} is a {type(ex).__name__}; give TraitExamples, strings, (prompt, response) pairs or dicts"
            )
    return out, None


def _as_input(example: TraitExample, chat: bool | None) -> Any:
    """A chat conversation, or (for a plain-text set) the prompt text as given."""
    return example.prompt if chat is False else example.messages()


def resolve_layers(model: Any, layers: int | Sequence[int] | str) -> list[int]:
    """'all', an int or a list (negative counts from the end) -> sorted unique valid layers."""
    n = int(model.cfg.n_layers)
    if isinstance(layers, str):
        if layers != "all":
            raise CaptureError(f"layers must be 'all', an int or a list of ints, not {layers!r}")
        return list(range(n))
    return sorted(layer_list(layers, n, error=CaptureError))  # numpy integers too; -1 is the last layer


def auto_batch_size(model: Any, max_tokens: int, *, cap: int | None = None) -> int:
    """A batch size that fits a quarter of free memory (free CUDA memory on a GPU)."""
    device = model_device(model)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        cap = cap or 256
    else:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            free = 2 << 30
        cap = cap or 64  # CPU matmuls stop gaining from larger batches long before memory runs out
    cfg = model.cfg
    bytes_per = torch.finfo(cfg.dtype).bits // 8 if cfg.dtype.is_floating_point else 4
    d_mlp = getattr(cfg, "d_mlp", None) or 4 * cfg.d_model
    per_example = bytes_per * max_tokens * (8 * cfg.d_model + 3 * d_mlp + 2 * cfg.n_heads * max_tokens)
    return int(max(1, min(cap, (free // 4) // max(per_example, 1))))


def example_order(items: Sequence[TraitExample], *, keep_order: bool = False) -> list[int]:
    """Indices in the order capture batches them: by length, so short examples pad together."""
    if keep_order:
        return list(range(len(items)))
    return sorted(range(len(items)), key=lambda i: len(items[i].prompt) + len(items[i].response or ""))


# -- capture -----------------------------------------------------------------------------------------
def reduce_positions(
    act: Float[Tensor, "batch seq d_model"], weights: Float[Tensor, "batch seq"]
) -> tuple[Float[Tensor, "batch d_model"], Float[Tensor, " batch"]]:
    """Position-weighted mean activation and mean token norm, computed on the activation's device
    (in a model split over devices each layer's activations stay where that layer lives)."""
    a = act.float()
    w = weights.to(a.device)
    return einsum(a, w, "b s d, b s -> b d"), einsum(a.norm(dim=-1), w, "b s, b s -> b")


@torch.no_grad()
def capture(
    model: Any,
    examples: Any,
    *,
    layers: int | Sequence[int] | str = "all",
    hook: str = "resid_post",
    position: str | Position = "response[:]",
    batch_size: int | str = 16,
    labels: Sequence[int] | None = None,
    progress: bool = True,
    to_disk: str | os.PathLike[str] | None = None,
) -> ActivationSet:
    """Activations `[n, layers, d_model]` (float32, CPU) averaged over `position` in each example.

    examples: a TraitDataset (labels come with it), or TraitExamples / strings / (prompt,
        response) pairs / dicts. Right padding with an explicit mask; examples are batched by
        length and returned in input order. For sets larger than memory use `capture_to_disk`.
    to_disk: deprecated, use `capture_to_disk(model, examples, folder)`; kept for one release, it
        streams there and returns a set with no tensors, as before.
    """
    if to_disk is not None:
        warnings.warn(
            "capture(..., to_disk=folder) is deprecated and will be removed in the next release; "
            "use capture_to_disk(model, examples, folder), which returns a ShardedActivations "
            "(.load(), .shards())",
            DeprecationWarning,
            stacklevel=2,
        )
        done = capture_to_disk(
            model,
            examples,
            to_disk,
            layers=layers,
            hook=hook,
            position=position,
            batch_size=batch_size,
            labels=labels,
            progress=progress,
        )
        n_layers, d_model = len(done.layers), int(model.cfg.d_model)
        labels_seen = _label_tensor(labels if labels is not None else as_examples(examples)[1])
        return ActivationSet(
            torch.empty(0, n_layers, d_model),
            torch.empty(0, n_layers),
            labels_seen,
            done.layers,
            done.hook,
            done.position,
            {**done.metadata, "shards": str(to_disk)},
        )
    job = _CaptureJob.plan(model, examples, layers, hook, position, batch_size, labels, keep_order=False)
    sink = MemorySink(len(job.items), len(job.layers), int(model.cfg.d_model))
    metadata = job.run(model, sink, progress)
    return sink.finish(_label_tensor(job.labels), job.layers, hook, job.position.spec, metadata)


def capture_to_disk(
    model: Any,
    examples: Any,
    folder: str | os.PathLike[str],
    *,
    layers: int | Sequence[int] | str = "all",
    hook: str = "resid_post",
    position: str | Position = "response[:]",
    batch_size: int | str = 16,
    labels: Sequence[int] | None = None,
    progress: bool = True,
) -> ShardedActivations:
    """`capture`, streamed: each batch goes to a safetensors shard in `folder` as soon as it is reduced, and
    `index.json` is written last, as the seal. Memory holds one batch. Examples keep their input order
    (no batching by length), so shards cover consecutive rows. Read back with `.load()` or `.shards()`,
    or later with `ShardedActivations.open(folder)`."""
    job = _CaptureJob.plan(model, examples, layers, hook, position, batch_size, labels, keep_order=True)
    sink = ShardSink(folder, job.labels, job.layers, hook, job.position.spec)
    metadata = job.run(model, sink, progress)
    return sink.finish(_label_tensor(job.labels), job.layers, hook, job.position.spec, metadata)


def _label_tensor(labels: Sequence[int] | None) -> Tensor | None:
    return None if labels is None else torch.tensor(list(labels), dtype=torch.long)


@dataclass
class _CaptureJob:
    """Checked inputs of one capture, and the loop both sinks share."""

    items: list[TraitExample]
    chat: bool | None
    labels: Sequence[int] | None
    layers: list[int]
    hook: str
    position: Any  # a parsed Position
    order: list[int]
    batch_size: int

    @classmethod
    def plan(
        cls,
        model: Any,
        examples: Any,
        layers: int | Sequence[int] | str,
        hook: str,
        position: str | Position,
        batch_size: int | str,
        labels: Sequence[int] | None,
        *,
        keep_order: bool,
    ) -> "_CaptureJob":
        items, ds_labels = as_examples(examples)
        chat = getattr(examples, "chat", None)  # a TraitDataset of plain text (from_pairs) is not chat-formatted
        if not items:
            raise CaptureError("capture got no examples")
        if labels is None:
            labels = ds_labels
        elif len(labels) != len(items):
            raise CaptureError(f"{len(items)} examples but {len(labels)} labels")
        if hook not in HOOKS:
            raise CaptureError(f"unknown hook '{hook}'; use one of {', '.join(HOOKS)}")
        chosen = resolve_layers(model, layers)
        parsed = parse_position(position)
        if parsed.needs_response():
            missing = [i for i, ex in enumerate(items) if ex.response is None]
            if missing:
                raise CaptureError(
                    f"position '{parsed.spec}' needs responses, but example {missing[0]} (and {len(missing) - 1} "
                    "more) has none; fill them with tl_traits.generate_responses(model, trait) or use a prompt position"
                )
        order = example_order(items, keep_order=keep_order)
        if batch_size == "auto":
            longest = max(order, key=lambda i: len(items[i].prompt) + len(items[i].response or ""))
            n_tokens = len(
                prepare_inputs(
                    model, [_as_input(items[longest], chat)], [items[longest].response], chat=chat
                ).token_ids[0]
            )
            batch_size = auto_batch_size(model, n_tokens)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise CaptureError(f"batch_size must be a positive int or 'auto', not {batch_size!r}")
        return cls(items, chat, labels, chosen, hook, parsed, order, batch_size)

    @torch.no_grad()
    def run(self, model: Any, sink: CaptureSink, progress: bool) -> dict[str, Any]:
        """Forward every batch with one reducing hook per layer, hand each batch to `sink`; the run's metadata."""
        device = model_device(model)
        n_layers, d_model = len(self.layers), int(model.cfg.d_model)
        names = [hook_name(layer, self.hook) for layer in self.layers]
        settings = None
        bar = tqdm(
            total=len(self.items),
            unit="ex",
            desc=f"capture {self.hook}",
            disable=not progress or len(self.items) <= self.batch_size,
            leave=False,
        )
        for start in range(0, len(self.order), self.batch_size):
            rows = self.order[start : start + self.batch_size]
            batch = prepare_inputs(
                model,
                [_as_input(self.items[i], self.chat) for i in rows],
                [self.items[i].response for i in rows],
                padding_side="right",
                chat=self.chat,
            )
            settings = batch.settings
            weights = position_weights(self.position, batch, [str(i) for i in rows]).to(device)
            out = torch.empty(len(rows), n_layers, d_model, dtype=torch.float32, device=device)
            out_norm = torch.empty(len(rows), n_layers, dtype=torch.float32, device=device)

            def reducer(j: int):
                def fn(act: Tensor, hook: Any) -> None:
                    means, token_norms = reduce_positions(act, weights)  # noqa: B023 - run within this batch's forward
                    out[:, j] = means.to(out.device)  # noqa: B023
                    out_norm[:, j] = token_norms.to(out.device)  # noqa: B023

                return fn

            with forward_hooks(model, [(name, reducer(j)) for j, name in enumerate(names)]):
                model(
                    batch.input_ids.to(device),
                    attention_mask=batch.attention_mask.to(device),
                    stop_at_layer=max(self.layers) + 1,
                )
            sink.write(rows, out, out_norm)
            bar.update(len(rows))
        bar.close()
        return {
            "model": model_identity(model).to_dict(),
            "prompt_settings": settings.to_dict() if settings else None,
            "n_examples": len(self.items),
        }


__all__ = [
    "ActivationSet",
    "CaptureError",
    "ShardedActivations",
    "as_examples",
    "auto_batch_size",
    "capture",
    "capture_to_disk",
    "example_order",
    "iter_shards",
    "load_shards",
    "reduce_positions",
    "resolve_layers",
]
