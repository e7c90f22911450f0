"""extract(): capture a trait set once, fit every requested method on all layers, score on held-out data."""

from __future__ import annotations

import warnings
from typing import Any, Callable, Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from tl_traits.core import stats
from tl_traits.core.capture import ActivationSet, capture
from tl_traits.core.errors import TlTraitsError
from tl_traits.core.positions import parse_position
from tl_traits.core.plugin_info import plugin_name
from tl_traits.core.registry import extractors
from tl_traits.core.trait_sets import TraitDataError, load_trait
from tl_traits.core.vector_arithmetic import Units
from tl_traits.core.vectors import TraitVector, TraitVectors
from tl_traits.extraction.trained import is_trained, train_directions
from tl_traits.core.version import package_version


MIN_PER_CLASS_FOR_D = 5


class ExtractionError(TlTraitsError):
    """An extractor that returned something other than `[layers, d_model]` finite directions."""


def extract(
    model: Any,
    trait: Any,
    methods: str | Callable[..., Any] | Sequence[str | Callable[..., Any]] = ("mean_diff",),
    *,
    layers: int | Sequence[int] | str = "all",
    position: str | None = None,
    hook: str = "resid_post",
    val_split: float = 0.2,
    seed: int = 0,
    batch_size: int | str = 16,
    method_options: dict[str, dict[str, Any]] | None = None,
    progress: bool = True,
    activations: ActivationSet | None = None,
) -> TraitVectors:
    """Trait vectors for every method and layer, with held-out AUROC, accuracy and Cohen's d.

    trait: a TraitDataset or anything `load_trait` reads ('emotion/joy', a folder, ...).
    position: which tokens to average (docs/extraction.md); default `response[:]`, or `prompt[-1]`
        for a plain-text set without responses (`TraitDataset.from_pairs` of strings).
    methods: registered extractor names (`tl_traits.extractors.names()`), or fit functions
        `fit(pos, neg, *, seed) -> [layers, d_model]` (or a class building one, or an instance), used under their
        PluginInfo's name, `name` or `__name__`; each gets the context it declares (see `fit_directions`).
    activations: reuse a capture of this very dataset (skips the forward passes).
    """
    dataset = load_trait(trait).validate()
    if position is None:  # the response's tokens; plain-text pairs (from_pairs) have none: their last token
        position = "prompt[-1]" if dataset.chat is False and not dataset.has_responses else "response[:]"
    specs = [methods] if isinstance(methods, str) or callable(methods) else list(methods)
    if not specs:
        raise ExtractionError("methods is empty; pass at least one of " + ", ".join(extractors.names()))
    resolved = [resolve_extractor(spec) for spec in specs]  # unknown names fail before any work
    method_list = [name for name, _ in resolved]
    if len(set(method_list)) != len(method_list):
        raise ExtractionError(f"methods name one extractor twice: {method_list}")
    fits = dict(zip(method_list, specs))  # name -> the spec as given: a registered one keeps its registered name
    plugins = dict(resolved)
    trained = {name for name, spec in fits.items() if is_trained(spec, plugins[name])}
    options = method_options or {}
    unknown_options = set(options) - set(method_list)
    if unknown_options:
        raise ExtractionError(
            f"method_options for {sorted(unknown_options)}, which are not among methods {method_list}"
        )
    for name in fits:  # an option the extractor does not take fails before any work
        if name in trained and not dataset.has_responses:
            raise ExtractionError(
                f"'{name}' trains on responses, and trait '{dataset.name}' has examples without "
                "them; fill them with tl_traits.generate_responses(model, trait)"
            )
        extractors.check_options(plugins[name], options.get(name, {}), name, error=ExtractionError)
    if parse_position(position).needs_response() and not dataset.has_responses:
        raise TraitDataError(
            f"position '{position}' reads response tokens but trait '{dataset.name}' has examples without "
            "responses; fill them with tl_traits.generate_responses(model, trait) or use a prompt position"
        )

    acts = activations or capture(
        model, dataset, layers=layers, hook=hook, position=position, batch_size=batch_size, progress=progress
    )
    if len(acts) != len(dataset.examples):
        raise ExtractionError(f"activations hold {len(acts)} examples but the trait has {len(dataset.examples)}")
    train, val, train_idx, val_idx = _split(acts, dataset, val_split, seed)
    train_pos, train_neg = train.by_label(1), train.by_label(0)
    act_norm = train.token_norms.mean(dim=0)

    vectors: dict[str, TraitVector] = {}
    units: Units
    for name in fits:
        norms, units = act_norm.clone(), "relative"
        if name in trained:  # optimised through the model on the same train split: its scale is its own
            directions, norms, record = train_directions(
                name,
                plugins[name],
                model,
                dataset.split(val_split, seed)[0],
                layers=list(acts.layers),
                hook=acts.hook,
                seed=seed,
                options=options.get(name, {}),
                progress=progress,
            )
            units = "absolute"
        else:
            directions, record = fit_directions(
                fits[name],
                train_pos,
                train_neg,
                layers=list(acts.layers),
                hook=acts.hook,
                seed=seed,
                options=options.get(name, {}),
                model_name=(acts.metadata.get("model") or {}).get("name"),
            )
        metrics = score_directions(directions, train_pos, train_neg, val.by_label(1), val.by_label(0))
        vectors[name] = TraitVector(
            name,
            directions,
            list(acts.layers),
            norms,
            metrics,
            {"method": name, "options": options.get(name, {}), **record},
            hook=acts.hook,
            units=units,
        )
    meta = {
        "model": acts.metadata.get("model"),
        "prompt_settings": acts.metadata.get("prompt_settings"),
        "hook": acts.hook,
        "position": acts.position,
        "dataset": {
            "name": dataset.name,
            "source": dataset.source,
            "sha256": dataset.content_hash(),
            "n_train": len(train_idx),
            "n_val": len(val_idx),
            "held_out": bool(val_idx),
        },
        "val_split": val_split,
        "seed": seed,
        "library_version": package_version(),
    }
    for vec in vectors.values():  # the set's hook is each vector's typed field already
        vec.metadata = {**{k: v for k, v in meta.items() if k != "hook"}, **vec.metadata}
    return TraitVectors(vectors, meta)


def resolve_extractor(spec: str | Callable[..., Any]) -> tuple[str, Callable[..., Any]]:
    """(name, plugin) for a registered extractor's name, or a fit function, class or instance of one's own (named
    by its PluginInfo, its `name` or its `__name__`)."""
    if isinstance(spec, str):
        return spec, extractors.get(spec)
    if callable(spec):
        return plugin_name(spec), spec
    raise ExtractionError(
        f"an extraction method is a registered name or a fit function, not {type(spec).__name__}; "
        f"registered: {', '.join(extractors.names())}"
    )


def fit_directions(
    method: str | Callable[..., Any],
    train_pos: Float[Tensor, "n layer d_model"],
    train_neg: Float[Tensor, "m layer d_model"],
    *,
    layers: Sequence[int],
    hook: str,
    seed: int = 0,
    options: dict[str, Any] | None = None,
    model_name: str | None = None,
) -> tuple[Float[Tensor, "layer d_model"], dict[str, Any]]:
    """One extractor (a registered name, or a fit function, class or instance) fitted on captured activations: unit
    directions per layer, and the JSON record the extractor wrote (when it takes `record`).

    The extractor gets the context keywords it declares (`layers`, `hook`, `record`, `model_name`) and `options`.
    """
    name, plugin = resolve_extractor(method)
    record: dict[str, Any] = {}
    fit = extractors.resolve(
        plugin,
        options=options,
        error=ExtractionError,
        layers=list(layers),
        hook=hook,
        record=record,
        model_name=model_name,
    )
    raw = fit(train_pos, train_neg, seed=seed)
    return _checked(name, raw, train_pos.shape[1:]), record


def default_methods() -> list[str]:
    """The registered extractors run when no methods are named: all but those whose record says `by_default=False`
    (such as `sae`, which needs an SAE per layer). Reads the records: an extractor declared by one is not imported."""
    return [name for name in extractors.names() if extractors.info(name).by_default]  # a broken one raises


def score_directions(
    directions: Float[Tensor, "layer d_model"],
    train_pos: Float[Tensor, "n layer d_model"],
    train_neg: Float[Tensor, "m layer d_model"],
    val_pos: Float[Tensor, "p layer d_model"],
    val_neg: Float[Tensor, "q layer d_model"],
) -> dict[str, Float[Tensor, " layer"]]:
    """Baseline (train midpoint) and held-out AUROC, accuracy at the midpoint, Cohen's d, polarity."""

    def project(x: Tensor) -> Tensor:  # [k, layer, d] -> [layer, k]
        return torch.einsum("kld,ld->lk", x, directions)

    baseline = stats.midpoint(project(train_pos), project(train_neg))
    vp, vn = project(val_pos), project(val_neg)
    d = stats.cohens_d(vp, vn)
    # a spread from 1-4 examples makes d meaningless (e.g. 7e12)
    if min(vp.shape[1], vn.shape[1]) < MIN_PER_CLASS_FOR_D:
        warnings.warn(
            f"held-out classes have {vp.shape[1]} and {vn.shape[1]} examples; Cohen's d needs at least "
            f"{MIN_PER_CLASS_FOR_D} per class and is reported as NaN (AUROC and accuracy are anecdotal)",
            stacklevel=2,
        )
        d = torch.full_like(d, float("nan"))
    return {
        "auroc": stats.auroc(vp, vn),
        "accuracy": stats.accuracy_at_threshold(vp, vn, baseline),
        "cohens_d": d,
        "polarity": (vp.mean(dim=1) > vn.mean(dim=1)).float(),
        "baseline": baseline,
    }


def heldout_metrics(
    directions: Float[Tensor, "layer d_model"],
    acts: ActivationSet,
    trait: Any,
    *,
    val_split: float = 0.2,
    seed: int = 0,
) -> dict[str, Float[Tensor, " layer"]]:
    """`score_directions` of given directions on `acts`, with the train/validation split `extract` uses.

    E.g. read a float32 model's vectors from a quantized or fine-tuned model's activations.
    """
    dataset = load_trait(trait)
    if len(acts) != len(dataset.examples):
        raise ExtractionError(f"activations hold {len(acts)} examples but the trait has {len(dataset.examples)}")
    train, val, _, _ = _split(acts, dataset, val_split, seed)
    return score_directions(directions, train.by_label(1), train.by_label(0), val.by_label(1), val.by_label(0))


def _split(
    acts: ActivationSet, dataset: Any, val_split: float, seed: int
) -> tuple[ActivationSet, ActivationSet, list[int], list[int]]:
    """Train and validation activations (validation = train when val_split leaves none out)."""
    train_idx, val_idx = dataset.split_indices(val_split, seed)
    train = acts.subset(train_idx)
    return train, acts.subset(val_idx) if val_idx else train, train_idx, val_idx


def _checked(name: str, directions: Any, shape: torch.Size) -> Float[Tensor, "layer d_model"]:
    if not isinstance(directions, Tensor) or tuple(directions.shape) != tuple(shape):
        got = tuple(directions.shape) if isinstance(directions, Tensor) else type(directions).__name__
        raise ExtractionError(
            f"extractor '{name}' returned {got}; it must return a [layers, d_model] = {tuple(shape)} tensor"
        )
    directions = directions.detach().float().cpu()
    if not torch.isfinite(directions).all():
        raise ExtractionError(f"extractor '{name}' returned non-finite values")
    norms = directions.norm(dim=-1, keepdim=True)
    if (norms == 0).any():
        raise ExtractionError(f"extractor '{name}' returned a zero direction for some layer")
    return directions / norms
