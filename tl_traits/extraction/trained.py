"""Trained extractors (declared `kinds=("trained",)`): vectors optimised through the model on the trait set, not
fitted to cached activations; how `extract` calls them and checks what they return."""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from tl_traits.core.errors import TlTraitsError
from tl_traits.core.plugin_info import legacy_info
from tl_traits.core.registry import extractors

TRAINED = "trained"
MANY_LAYERS = 4  # training each layer costs minutes on a CPU: more than this many gets a warning


class TrainedExtractionError(TlTraitsError):
    """A trained extractor that failed or returned something other than `[layers, d_model]` finite vectors."""


def is_trained(spec: Any, plugin: Any) -> bool:
    """Whether an extractor (`spec` as given: a registered name or the plugin; `plugin`: its object) is declared
    trained, read from its record."""
    record = extractors.info(spec) if isinstance(spec, str) else extractors.declared(plugin) or legacy_info(plugin)
    return TRAINED in record.kinds


def train_directions(
    name: str,
    plugin: Any,
    model: Any,
    train: Any,
    *,
    layers: Sequence[int],
    hook: str,
    seed: int = 0,
    options: dict[str, Any] | None = None,
    progress: bool = True,
) -> tuple[Float[Tensor, "layer d_model"], Float[Tensor, " layer"], dict[str, Any]]:
    """(unit directions, their trained norms, the JSON record) of a trained extractor on the train split `train`."""
    if model is None:
        raise TrainedExtractionError(
            f"'{name}' trains through the model: extract needs the model, not only activations"
        )
    if len(layers) > MANY_LAYERS:
        warnings.warn(
            f"'{name}' trains one vector per layer ({len(layers)} layers here, minutes each on a CPU); "
            f"pass layers=[...] to extract to train only those you will steer with",
            stacklevel=3,
        )
    record: dict[str, Any] = {}
    fit = extractors.resolve(
        plugin,
        options=options,
        error=TrainedExtractionError,
        layers=list(layers),
        hook=hook,
        record=record,
        progress=progress,
    )
    raw = fit(model, train, seed=seed)
    want = (len(layers), int(model.cfg.d_model))
    if not isinstance(raw, Tensor) or tuple(raw.shape) != want:
        got = tuple(raw.shape) if isinstance(raw, Tensor) else type(raw).__name__
        raise TrainedExtractionError(
            f"trained extractor '{name}' returned {got}; it must return a [layers, d_model] "
            f"= {want} tensor of vectors in residual units"
        )
    vectors = raw.detach().float().cpu()
    norms = vectors.norm(dim=-1)
    if not torch.isfinite(vectors).all() or bool((norms == 0).any()):
        raise TrainedExtractionError(f"trained extractor '{name}' returned a zero or non-finite vector")
    return vectors / norms[:, None], norms, record
