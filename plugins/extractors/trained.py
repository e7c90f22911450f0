"""bipo and reps: steering vectors trained through the frozen model on the trait set's (prompt, positive,
negative) triples, one per layer (each alone, or together as a band), in residual units."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from jaxtyping import Float
from tl_traits.plugins.extractors import catalogue
from torch import Tensor

from tl_traits.training.vector_training import VectorTraining, train_vectors


_DEFAULT = VectorTraining()


def _train(
    objective: str,
    model: Any,
    dataset: Any,
    seed: int,
    layers: Sequence[int] | None,
    hook: str,
    record: dict[str, Any] | None,
    progress: bool,
    **options: Any,
) -> Float[Tensor, "layer d_model"]:
    settings = VectorTraining(objective=objective, seed=seed, **{**options, "factors": tuple(options["factors"])})
    chosen = list(layers) if layers is not None else list(range(int(model.cfg.n_layers)))
    trained = train_vectors(model, dataset, chosen, settings, hook=hook, progress=progress)
    if record is not None:
        record["training"] = {str(t.layer): t.record for t in trained}
    return torch.stack([t.vector for t in trained])


@catalogue.bipo
def bipo(
    model: Any,
    dataset: Any,
    *,
    seed: int = 0,
    layers: Sequence[int] | None = None,
    hook: str = "resid_post",
    record: dict[str, Any] | None = None,
    progress: bool = True,
    epochs: int = _DEFAULT.epochs,
    batch_size: int = _DEFAULT.batch_size,
    lr: float = _DEFAULT.lr,
    beta: float = _DEFAULT.beta,
    factors: Sequence[float] = _DEFAULT.factors,
    max_length: int = _DEFAULT.max_length,
    band: bool = _DEFAULT.band,
    direction: str = _DEFAULT.direction,
) -> Float[Tensor, "layer d_model"]:
    """BiPO (Cao et al. 2024): per layer, a vector v trained so that adding d x v (d = +1 or -1 at random each step,
    or only one of them with `direction`) raises the likelihood ratio (against the unsteered model) of the positive
    response over the negative one when d = +1 and the reverse when d = -1. Options as in `VectorTraining`."""
    return _train(
        "bipo",
        model,
        dataset,
        seed,
        layers,
        hook,
        record,
        progress,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        beta=beta,
        factors=factors,
        max_length=max_length,
        band=band,
        direction=direction,
    )


@catalogue.reps
def reps(
    model: Any,
    dataset: Any,
    *,
    seed: int = 0,
    layers: Sequence[int] | None = None,
    hook: str = "resid_post",
    record: dict[str, Any] | None = None,
    progress: bool = True,
    epochs: int = _DEFAULT.epochs,
    batch_size: int = _DEFAULT.batch_size,
    lr: float = _DEFAULT.lr,
    beta: float = _DEFAULT.beta,
    factors: Sequence[float] = _DEFAULT.factors,
    max_length: int = _DEFAULT.max_length,
    band: bool = _DEFAULT.band,
    direction: str = _DEFAULT.direction,
) -> Float[Tensor, "layer d_model"]:
    """RePS-style (after Wu et al. 2025): reference-free, length-normalised likelihoods; at +v the positive response
    must beat the negative one, at -v the reverse, each pair weighted by how far the unsteered model prefers the
    wrong side. Options as in `VectorTraining` (`beta` is BiPO's and unused here)."""
    return _train(
        "reps",
        model,
        dataset,
        seed,
        layers,
        hook,
        record,
        progress,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        beta=beta,
        factors=factors,
        max_length=max_length,
        band=band,
        direction=direction,
    )
