"""Train one steering vector per layer through the frozen model on (prompt, positive, negative) triples: the loop
behind the `bipo` and `reps` extractors."""

from __future__ import annotations

import contextlib
import random
import time
from dataclasses import asdict, dataclass
from typing import Any, Iterator, Sequence

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from tl_traits.core.hook_names import hook_name
from tl_traits.core.hook_points import forward_hooks
from tl_traits.core.models import model_device, model_kind
from tl_traits.core.trait_sets import TraitDataset
from tl_traits.training.config import TrainingError
from tl_traits.training.loss import training_pad_id
from tl_traits.training.preference import OBJECTIVES, preference_accuracy, preference_loss, response_logprobs
from tl_traits.training.sft import EncodedExample, collate, encode_example


DIRECTIONS = {"both": (1.0, -1.0), "toward": (1.0,), "away": (-1.0,)}  # the signs each training step draws from


@dataclass(frozen=True)
class VectorTraining:
    """How a vector is trained. `factors`: the steering factors sampled at each step, each with a sign drawn as
    `direction` says (the vector is trained to steer at every one of them); `lr` is Adam's, in residual units.
    `band`: train the layers together as one band (a vector per layer, all added at once and optimised jointly)
    instead of each layer on its own. `direction`: "both" (the papers' sign sampled at each step) or one side only,
    "toward" (+v must favour the positive response) or "away" (-v must favour the negative one), for a vector meant
    to steer one way; it still points toward the trait, so "away" is used at a negative strength."""

    objective: str = "bipo"
    epochs: int = 4
    batch_size: int = 8
    lr: float = 0.02
    beta: float = 0.1  # BiPO's DPO temperature
    factors: tuple[float, ...] = (1.0,)
    max_length: int = 256
    seed: int = 0
    band: bool = False
    direction: str = "both"

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise TrainingError(f"unknown objective {self.objective!r}; use one of {', '.join(OBJECTIVES)}")
        for name in ("epochs", "batch_size", "max_length"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise TrainingError(f"{name} must be a positive integer, not {getattr(self, name)!r}")
        if self.direction not in DIRECTIONS:
            raise TrainingError(f"unknown direction {self.direction!r}; use one of {', '.join(DIRECTIONS)}")
        if not isinstance(self.band, bool):
            raise TrainingError(f"band must be True or False, not {self.band!r}")
        if not (self.lr > 0 and self.beta > 0 and self.factors and all(f > 0 for f in self.factors)):
            raise TrainingError(
                f"lr, beta and every factor must be > 0 (got lr={self.lr}, beta={self.beta}, factors={self.factors})"
            )


@dataclass(frozen=True)
class Triple:
    """One prompt with a response that shows the trait and one that does not."""

    prompt: str
    positive: str
    negative: str


def preference_triples(dataset: TraitDataset) -> list[Triple]:
    """The trait set's positive and negative responses paired by prompt (in order; a prompt without both sides is
    left out). System prompts are dropped: the vector must produce the trait without being asked for it."""
    negatives: dict[str, list[str]] = {}
    for ex in dataset.negative:
        if ex.response:
            negatives.setdefault(ex.prompt, []).append(ex.response)
    triples = []
    for ex in dataset.positive:
        waiting = negatives.get(ex.prompt)
        if ex.response and waiting:
            triples.append(Triple(ex.prompt, ex.response, waiting.pop(0)))
    if len(triples) < 2:
        raise TrainingError(
            f"trait '{dataset.name}' has {len(triples)} prompts with both a positive and a negative "
            "response; a trained vector needs at least 2 such pairs (fill responses with "
            "tt.generate_responses, and give both sides the same prompts)"
        )
    return triples


@dataclass(frozen=True)
class _Pair:
    pos: EncodedExample
    neg: EncodedExample


@dataclass
class TrainedLayer:
    """A trained vector (residual units: steering at strength 1 adds it as it is) and how its training went."""

    layer: int
    vector: Float[Tensor, " d_model"]
    record: dict[str, Any]


def train_vectors(
    model: Any,
    dataset: TraitDataset,
    layers: Sequence[int],
    settings: VectorTraining | None = None,
    *,
    hook: str = "resid_post",
    progress: bool = True,
) -> list[TrainedLayer]:
    """One vector per layer, trained with the model frozen (its weights and mode are restored afterwards): each
    layer on its own, or all of them together with `settings.band`."""
    settings = settings or VectorTraining()
    n_layers = int(model.cfg.n_layers)
    bad = [layer for layer in layers if not 0 <= int(layer) < n_layers]
    if bad or not layers:
        raise TrainingError(
            f"layers {bad or '[]'} are not layers of this {n_layers}-layer model; name 0..{n_layers - 1}"
        )
    pairs = _encode(model, preference_triples(dataset), settings.max_length)
    pad, device = training_pad_id(model, None), model_device(model)
    chosen = [int(layer) for layer in layers]
    groups = [sorted(set(chosen))] if settings.band else [[layer] for layer in chosen]
    with _frozen(model):
        reference = _reference(model, pairs, pad, device, settings.batch_size)
        trained = {
            t.layer: t
            for group in groups
            for t in _train_group(model, pairs, reference, group, hook, settings, pad, device, progress)
        }
    return [trained[layer] for layer in chosen]


def _encode(model: Any, triples: list[Triple], max_length: int) -> list[_Pair]:
    pairs = []
    for i, t in enumerate(triples):
        pos = encode_example(model, t.prompt, t.positive, max_length, truncation="drop", name=i)
        neg = encode_example(model, t.prompt, t.negative, max_length, truncation="drop", name=i)
        if pos is not None and neg is not None:
            pairs.append(_Pair(pos, neg))
    if len(pairs) < 2:
        raise TrainingError(f"only {len(pairs)} pairs fit max_length={max_length}; raise it")
    return pairs


@contextlib.contextmanager
def _frozen(model: Any) -> Iterator[None]:
    """Eval mode and no weight gradients (only the vector learns); both restored on exit."""
    params = list(model.parameters())
    wanted = [p.requires_grad for p in params]
    was_training = model.training
    model.eval()
    for p in params:
        p.requires_grad_(False)
    try:
        with torch.inference_mode(False), torch.enable_grad():
            yield
    finally:
        for p, flag in zip(params, wanted):
            p.requires_grad_(flag)
        model.train(was_training)


def _batch(model: Any, pairs: Sequence[_Pair], pad: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Positives then negatives, right-padded (no mask needed: real tokens never attend to later pads)."""
    batch = collate([p.pos for p in pairs] + [p.neg for p in pairs], pad, padding_side="right")
    return batch["input_ids"].to(device), batch["labels"].to(device)


def _reference(model: Any, pairs: list[_Pair], pad: int, device: torch.device, size: int) -> tuple[Tensor, Tensor]:
    """The unsteered model's summed log-prob of each positive and negative response (computed once)."""
    pos, neg = [], []
    with torch.no_grad():
        for start in range(0, len(pairs), size):
            chunk = pairs[start : start + size]
            ids, labels = _batch(model, chunk, pad, device)
            logp, _ = response_logprobs(model(ids), labels)
            pos.append(logp[: len(chunk)].cpu())
            neg.append(logp[len(chunk) :].cpu())
    return torch.cat(pos), torch.cat(neg)


def _train_group(
    model: Any,
    pairs: list[_Pair],
    reference: tuple[Tensor, Tensor],
    layers: list[int],
    hook: str,
    settings: VectorTraining,
    pad: int,
    device: torch.device,
    progress: bool,
) -> list[TrainedLayer]:
    """The vectors of `layers` (ascending) trained together: one layer alone, or a band added all at once."""
    rng = random.Random(f"{settings.seed}:{'-'.join(map(str, layers))}")
    vectors = torch.nn.Parameter(torch.zeros(len(layers), int(model.cfg.d_model), device=device))
    optimiser = torch.optim.Adam([vectors], lr=settings.lr)
    forward = _Forward(model, layers, hook, pad, device)
    steps = settings.epochs * -(-len(pairs) // settings.batch_size)
    losses: list[float] = []
    started = time.perf_counter()
    where = f"layer {layers[0]}" if len(layers) == 1 else f"band {layers[0]}-{layers[-1]}"
    bar = tqdm(total=steps, desc=f"{settings.objective} {where}", unit="step", disable=not progress)
    try:
        for _ in range(settings.epochs):
            order = list(range(len(pairs)))
            rng.shuffle(order)
            for start in range(0, len(order), settings.batch_size):
                index = order[start : start + settings.batch_size]
                sign = rng.choice(DIRECTIONS[settings.direction])
                factor = rng.choice(settings.factors)
                steered, counts = forward.logprobs([pairs[i] for i in index], sign * factor * vectors)
                n = len(index)
                ref = (reference[0][index].to(device), reference[1][index].to(device))
                loss = preference_loss(
                    settings.objective, (steered[:n], steered[n:]), ref, (counts[:n], counts[n:]), sign, settings.beta
                )
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                losses.append(float(loss.detach()))
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.3f}", norm=f"{float(vectors.detach().norm()):.2f}")
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    trained = vectors.detach().float().cpu()
    norms = trained.norm(dim=-1)
    if not torch.isfinite(trained).all() or bool((norms == 0).any()):
        raise TrainingError(f"training at {where} gave a zero or non-finite vector; lower lr (now {settings.lr})")
    per_epoch = -(-len(pairs) // settings.batch_size)
    shared = {
        **asdict(settings),
        "factors": list(settings.factors),
        "hook": hook,
        "pairs": len(pairs),
        "seconds": round(seconds, 2),  # of the whole band when trained as one
        "loss_by_epoch": [
            round(sum(losses[i : i + per_epoch]) / len(losses[i : i + per_epoch]), 4)
            for i in range(0, len(losses), per_epoch)
        ],
        "reuses_lower_layers": forward.reuses,
        "accuracy": _accuracy(forward, pairs, trained.to(device), settings.batch_size),
    }
    if len(layers) > 1:
        shared["band_layers"] = list(layers)
    return [
        TrainedLayer(layer, trained[i], {**shared, "layer": layer, "norm": round(float(norms[i]), 4)})
        for i, layer in enumerate(layers)
    ]


def _accuracy(
    forward: "_Forward", pairs: list[_Pair], vectors: Float[Tensor, "layer d_model"], size: int
) -> dict[str, float]:
    """On the training pairs: the share whose wanted side wins, steered at +1 and at -1 (unsteered for scale)."""
    out = {}
    with torch.no_grad():
        for label, sign in (("toward", 1.0), ("away", -1.0), ("unsteered", 0.0)):
            hits = 0.0
            for start in range(0, len(pairs), size):
                chunk = pairs[start : start + size]
                lp, counts = forward.logprobs(chunk, sign * vectors)
                n = len(chunk)
                hits += n * preference_accuracy(lp[:n], lp[n:], counts[:n], counts[n:], sign or 1.0)
            out[label] = round(hits / len(pairs), 4)
    return out


class _Forward:
    """The steered forward pass, a vector added at each of `layers` (ascending). A HookedTransformer starts at the
    layer above the lowest one from a cached residual (the layers below run once per example); a TransformerBridge
    cannot start mid-model (TransformerLens raises), so there the lower layers run at every step, without a graph
    since nothing below the vectors needs one."""

    def __init__(self, model: Any, layers: Sequence[int], hook: str, pad: int, device: torch.device) -> None:
        self.model, self.layers, self.pad, self.device = model, list(layers), pad, device
        self.names = [hook_name(layer, hook) for layer in self.layers]
        self.reuses = model_kind(model) == "hooked" and all(n.endswith("hook_resid_post") for n in self.names)
        self._cache: dict[int, Tensor] = {}

    def logprobs(self, pairs: Sequence[_Pair], added: Float[Tensor, "layer d_model"]) -> tuple[Tensor, Tensor]:
        ids, labels = _batch(self.model, pairs, self.pad, self.device)
        hooks = [(name, _adding(added[i])) for i, name in enumerate(self.names)]
        if self.reuses:
            residual = self._residual(pairs, ids)
            with forward_hooks(self.model, hooks[1:]):
                logits = self.model(residual + added[0], start_at_layer=self.layers[0] + 1)
        else:
            with forward_hooks(self.model, hooks):
                logits = self.model(ids)
        return response_logprobs(logits, labels)

    def _residual(self, pairs: Sequence[_Pair], ids: Tensor) -> Tensor:
        name = self.names[0]
        keys = [id(p.pos) for p in pairs] + [id(p.neg) for p in pairs]
        missing = [k for k in keys if k not in self._cache]
        if missing:
            with torch.no_grad():
                _, cache = self.model.run_with_cache(ids, names_filter=name, return_type=None)
            for row, key in enumerate(keys):
                self._cache.setdefault(key, cache[name][row].detach())
        width = ids.shape[1]
        return torch.stack(
            [
                self._cache[k][:width]
                if self._cache[k].shape[0] >= width
                else torch.nn.functional.pad(self._cache[k], (0, 0, 0, width - self._cache[k].shape[0]))
                for k in keys
            ]
        )


def _adding(vector: Float[Tensor, " d_model"]) -> Any:
    return lambda act, hook: act + vector.to(act.dtype)
