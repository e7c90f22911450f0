"""Batched, padding-aware capture of per-layer activations, averaged over chosen positions in the hook.

No activation cache is kept: each hook reduces its `[batch, seq, d_model]` tensor to
`[batch, d_model]` at once, and the forward stops after the last layer needed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from einops import einsum
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from tl_traits.core.errors import TlTraitsError
from tl_traits.core.files import atomic_write_bytes, atomic_write_json
from tl_traits.core.foreign import layer_list
from tl_traits.core.hook_names import HOOKS, hook_name
from tl_traits.core.hook_points import forward_hooks
from tl_traits.core.models import model_device, model_identity
from tl_traits.core.positions import Position, parse_position, position_weights
from tl_traits.core.prompts import prepare_inputs
from tl_traits.core.trait_sets import TraitDataset, TraitExample


class CaptureError(TlTraitsError):
    """Bad capture arguments: layers out of range, an unknown hook, no examples."""


@dataclass
class ActivationSet:
    """Per-example activations averaged over the selected positions, with what made them."""

    acts: Float[Tensor, "n layer d_model"]
    token_norms: Float[Tensor, "n layer"]  # mean per-token |h| over the same positions
    labels: Int[Tensor, " n"] | None
    layers: list[int]
    hook: str
    position: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.acts.shape[0]

    def by_label(self, label: int) -> Float[Tensor, "k layer d_model"]:
        if self.labels is None:
            raise CaptureError("this activation set has no labels")
        return self.acts[self.labels == label]

    def subset(self, index: Sequence[int] | Tensor) -> "ActivationSet":
        index = torch.as_tensor(index, dtype=torch.long)
        return ActivationSet(
            self.acts[index],
            self.token_norms[index],
            None if self.labels is None else self.labels[index],
            list(self.layers),
            self.hook,
            self.position,
            dict(self.metadata),
        )

    # -- disk ----------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        from safetensors.torch import save

        tensors = {"acts": self.acts.contiguous(), "token_norms": self.token_norms.contiguous()}
        if self.labels is not None:
            tensors["labels"] = self.labels.contiguous()
        header = {"layers": self.layers, "hook": self.hook, "position": self.position, "metadata": self.metadata}
        return save(tensors, metadata={"tl_traits.activations": json.dumps(header)})

    def save(self, path: str | os.PathLike[str]) -> Path:
        return atomic_write_bytes(path, self.to_bytes())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "ActivationSet":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            header = json.loads(fh.metadata()["tl_traits.activations"])
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        return cls(
            tensors["acts"], tensors["token_norms"], tensors.get("labels"),
            header["layers"], header["hook"], header["position"], header["metadata"],
        )


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
            raise CaptureError(f"example {i} is a {type(ex).__name__}; give TraitExamples, strings, (prompt, "
                               "response) pairs or dicts")
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
        length and returned in input order.
    to_disk: a folder to stream shards into instead of keeping everything in memory; the
        returned set then holds no tensors until `load_shards(folder)`.
    """
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
    layer_list = resolve_layers(model, layers)
    parsed = parse_position(position)
    if parsed.needs_response():
        missing = [i for i, ex in enumerate(items) if ex.response is None]
        if missing:
            raise CaptureError(
                f"position '{parsed.spec}' needs responses, but example {missing[0]} (and {len(missing) - 1} more) "
                "has none; fill them with tl_traits.generate_responses(model, trait) or use a prompt position"
            )

    device = model_device(model)
    order = example_order(items, keep_order=bool(to_disk))
    if batch_size == "auto":
        longest = max(order, key=lambda i: len(items[i].prompt) + len(items[i].response or ""))
        n_tokens = len(prepare_inputs(model, [_as_input(items[longest], chat)], [items[longest].response],
                                      chat=chat).token_ids[0])
        batch_size = auto_batch_size(model, n_tokens)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise CaptureError(f"batch_size must be a positive int or 'auto', not {batch_size!r}")

    n_layers, d_model = len(layer_list), int(model.cfg.d_model)
    acts = None if to_disk else torch.empty(len(items), n_layers, d_model, dtype=torch.float32)
    norms = None if to_disk else torch.empty(len(items), n_layers, dtype=torch.float32)
    stop_at = max(layer_list) + 1
    names = [hook_name(layer, hook) for layer in layer_list]
    shards: list[dict[str, Any]] = []
    settings = None
    if to_disk:
        Path(to_disk).mkdir(parents=True, exist_ok=True)
        (Path(to_disk) / "index.json").unlink(missing_ok=True)  # the index is written last, as the seal

    bar = tqdm(total=len(items), unit="ex", desc=f"capture {hook}", disable=not progress or len(items) <= batch_size,
               leave=False)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        batch = prepare_inputs(model, [_as_input(items[i], chat) for i in rows], [items[i].response for i in rows],
                               padding_side="right", chat=chat)
        settings = batch.settings
        weights = position_weights(parsed, batch, [str(i) for i in rows]).to(device)
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
                stop_at_layer=stop_at,
            )
        if to_disk:
            shard = ActivationSet(
                out.cpu(), out_norm.cpu(),
                None if labels is None else torch.tensor([labels[i] for i in rows]),
                layer_list, hook, parsed.spec,
            )
            fname = f"shard_{len(shards):05d}.safetensors"
            shard.save(Path(to_disk) / fname)
            shards.append({"file": fname, "rows": rows})
        else:
            index = torch.tensor(rows)
            acts[index] = out.cpu()
            norms[index] = out_norm.cpu()
        bar.update(len(rows))
    bar.close()

    metadata = {
        "model": model_identity(model).to_dict(),
        "prompt_settings": settings.to_dict() if settings else None,
        "n_examples": len(items),
    }
    label_tensor = None if labels is None else torch.tensor(list(labels), dtype=torch.long)
    if to_disk:
        atomic_write_json(
            Path(to_disk) / "index.json",
            {"layers": layer_list, "hook": hook, "position": parsed.spec, "metadata": metadata, "shards": shards},
        )
        return ActivationSet(
            torch.empty(0, n_layers, d_model), torch.empty(0, n_layers), label_tensor,
            layer_list, hook, parsed.spec, {**metadata, "shards": str(to_disk)},
        )
    return ActivationSet(acts, norms, label_tensor, layer_list, hook, parsed.spec, metadata)


def iter_shards(folder: str | os.PathLike[str]) -> Iterator[tuple[list[int], ActivationSet]]:
    """(row indices, activations) for each shard a streamed capture wrote, one at a time."""
    folder = Path(folder)
    index_file = folder / "index.json"
    if not index_file.is_file():
        raise CaptureError(f"{folder} has no index.json: the streamed capture did not finish; run it again")
    index = json.loads(index_file.read_text())
    for shard in index["shards"]:
        yield shard["rows"], ActivationSet.load(folder / shard["file"])


def load_shards(folder: str | os.PathLike[str]) -> ActivationSet:
    """Gather a streamed capture back into one in-memory set, in input order."""
    parts = list(iter_shards(folder))
    index = json.loads((Path(folder) / "index.json").read_text())
    n = sum(len(rows) for rows, _ in parts)
    first = parts[0][1]
    acts = torch.empty(n, *first.acts.shape[1:])
    norms = torch.empty(n, first.token_norms.shape[1])
    labels = None if first.labels is None else torch.empty(n, dtype=torch.long)
    for rows, part in parts:
        acts[rows] = part.acts
        norms[rows] = part.token_norms
        if labels is not None:
            labels[rows] = part.labels
    return ActivationSet(acts, norms, labels, index["layers"], index["hook"], index["position"], index["metadata"])
