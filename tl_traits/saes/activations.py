"""The activations an SAE trains on: real-token rows at one hook, streamed from a TransformerLens model over a
corpus of texts and chat turns, in shuffled batches (`activation_batches`)."""

from __future__ import annotations

import random
from typing import Any, Generator, Iterator, Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from tl_traits.core.hook_names import HOOKS, hook_name
from tl_traits.core.prompts import prepare_inputs
from tl_traits.saes.sae import SAEError


class SAETrainingError(SAEError):
    """Bad SAE-training arguments: layer out of range, empty corpus, k > d_sae, too few tokens."""


def check_layer_hook(model: Any, layer: int, hook: str) -> str:
    """The TL hook name of `hook` at `layer`; a layer out of range or an unknown hook is an SAETrainingError."""
    n_layers = int(model.cfg.n_layers)
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < n_layers:
        raise SAETrainingError(f"layer {layer!r} is out of range: this model has {n_layers} layers (0..{n_layers - 1})")
    if hook not in HOOKS:
        raise SAETrainingError(f"unknown hook {hook!r}; use one of {', '.join(HOOKS)}")
    return hook_name(layer, hook)


def _is_chat(item: Any) -> bool:
    return isinstance(item, dict) and isinstance(item.get("prompt"), str) and isinstance(item.get("response"), str)


def check_corpus(corpus: Any) -> list[Any]:
    """The corpus's non-empty items (text strings and chat turns); anything else, or nothing left, is an error."""
    if isinstance(corpus, (str, dict)):
        corpus = [corpus]
    corpus = list(corpus or [])
    bad = [i for i, t in enumerate(corpus) if not (isinstance(t, str) or _is_chat(t))]
    if bad:
        raise SAETrainingError(
            f"corpus item {bad[0]} is a {type(corpus[bad[0]]).__name__}; the corpus must hold text strings or "
            "chat turns {'prompt': str, 'response': str}"
        )
    texts = [t for t in corpus if (t.strip() if isinstance(t, str) else (t["prompt"] + t["response"]).strip())]
    if not texts:
        raise SAETrainingError("the corpus is empty: give a non-empty list of text strings to train the SAE on")
    return texts


def _groups(items: Sequence[Any], size: int) -> Iterator[list[Any]]:
    """Groups of `size` items of one kind (plain texts, chat turns), in the order the items come."""
    pending: dict[bool, list[Any]] = {False: [], True: []}
    for item in items:
        bucket = pending[_is_chat(item)]
        bucket.append(item)
        if len(bucket) == size:
            yield list(bucket)
            bucket.clear()
    for bucket in pending.values():
        if bucket:
            yield bucket


@torch.no_grad()
def text_activations(
    model: Any, texts: Sequence[Any], name: str, layer: int, seq_batch: int, max_length: int
) -> Iterator[Float[Tensor, "n d_model"]]:
    """Per group of `seq_batch` items, the real-token activations at hook `name` as float32 CPU rows."""
    max_length = min(int(max_length), int(model.cfg.n_ctx))
    device = getattr(model.cfg, "device", None) or "cpu"
    for group in _groups(texts, seq_batch):
        if _is_chat(group[0]):
            batch = prepare_inputs(
                model, [g["prompt"] for g in group], [g["response"] for g in group], chat=True, padding_side="right"
            )
        else:
            batch = prepare_inputs(model, group, chat=False, padding_side="right")
        ids = batch.input_ids[:, :max_length]
        mask = batch.attention_mask[:, :max_length].bool()
        mask[:, 0] = False  # BOS or the template's first token: the attention sink (see activation_batches)
        if not mask.any():
            continue
        _, cache = model.run_with_cache(
            ids.to(device),
            attention_mask=batch.attention_mask[:, :max_length].to(device),
            names_filter=lambda n: n == name,
            stop_at_layer=layer + 1,
        )
        yield cache[name].float().cpu()[mask]


def activation_batches(
    model: Any,
    texts: Sequence[Any],
    layer: int,
    *,
    hook: str = "resid_post",
    batch_tokens: int = 1024,
    seq_batch: int = 8,
    max_length: int = 128,
    shuffle_seed: int | None = 0,
    repeat: bool = True,
    memory_tokens: int = 0,
) -> Generator[Float[Tensor, "batch_tokens d_model"], None, None]:
    """Stream `[batch_tokens, d_model]` float32 CPU batches of activations at `blocks.{layer}.hook_{hook}`.

    texts: plain strings, tokenized as plain text (`prepare_inputs(..., chat=False)`, no chat template,
    BOS as the model is configured), and chat turns `{"prompt": ..., "response": ...}`, rendered with
    the chat template. Items of one kind go `seq_batch` at a time, right-padded and cut at `max_length`
    tokens (and the model's n_ctx); the forward stops after `layer`, only that hook is kept, and
    nothing is cached beyond the current group. Only real text tokens become rows:

    - pad positions (attention mask 0) are dropped: they are not text;
    - the first position (BOS, or the template's first token) is dropped: its residual is the same
      for every text and is usually an "attention sink" with a norm far above the rest, which would
      dominate an SAE's squared error and waste features on one constant vector.

    memory_tokens: when one pass over the corpus gives at most this many rows, keep them (float32,
    rows x d_model x 4 bytes) and serve later passes from memory, reshuffled, instead of running the
    model again; a larger corpus is streamed every pass (0, the default: always stream).

    Rows are shuffled (with `shuffle_seed`; None keeps corpus order) in two ways: the text order is
    reshuffled every pass over the corpus, and tokens are mixed inside a buffer of about four batches,
    so a batch holds tokens from many texts rather than runs of neighbours. With `repeat` the corpus
    is cycled forever (as sae-lens's trainer wants a never-ending `DataProvider`); without it the
    iterator stops after one pass, and the last batch may be smaller than `batch_tokens`.
    """
    name = check_layer_hook(model, layer, hook)
    texts = check_corpus(texts)
    if batch_tokens < 1 or seq_batch < 1 or max_length < 1:
        raise SAETrainingError("batch_tokens, seq_batch and max_length must be positive")
    rng = random.Random(shuffle_seed)
    gen = torch.Generator().manual_seed(0 if shuffle_seed is None else int(shuffle_seed))
    buffer_size = 4 * batch_tokens
    pending: list[Tensor] = []
    n_pending = 0
    stored: list[Tensor] | None = [] if memory_tokens > 0 and repeat else None
    first_pass = True
    while True:
        if first_pass or stored is None:
            order = list(texts)
            if shuffle_seed is not None:
                rng.shuffle(order)
            source: Iterator[Tensor] = text_activations(model, order, name, layer, seq_batch, max_length)
        else:
            kept = stored[0]
            if shuffle_seed is not None:
                kept = kept[torch.randperm(kept.shape[0], generator=gen)]
            source = iter(kept.split(buffer_size))
        produced = 0
        for rows in source:
            produced += rows.shape[0]
            if first_pass and stored is not None:
                if produced <= memory_tokens:
                    stored.append(rows)
                else:  # one pass is bigger than asked for: stream every pass
                    stored = None
            pending.append(rows)
            n_pending += rows.shape[0]
            if n_pending >= buffer_size:
                buf = torch.cat(pending)
                if shuffle_seed is not None:
                    buf = buf[torch.randperm(buf.shape[0], generator=gen)]
                n_full = buf.shape[0] // batch_tokens
                for i in range(n_full):
                    yield buf[i * batch_tokens : (i + 1) * batch_tokens]
                rest = buf[n_full * batch_tokens :]
                pending, n_pending = ([rest] if rest.shape[0] else []), rest.shape[0]
        if produced == 0:
            raise SAETrainingError("the corpus gave no real tokens (every text is empty after tokenization)")
        if not repeat:
            break
        if first_pass and stored is not None:
            stored[:] = [torch.cat(stored)]
        first_pass = False
    if n_pending:
        buf = torch.cat(pending)
        if shuffle_seed is not None:
            buf = buf[torch.randperm(buf.shape[0], generator=gen)]
        for i in range(0, buf.shape[0], batch_tokens):
            yield buf[i : i + batch_tokens]
