"""sae: a trait direction built from the SAE features whose activations differ most between the groups."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from jaxtyping import Float
from tl_traits.extraction.checks import check_pair, unit_rows
from tl_traits.plugins.extractors import catalogue
from torch import Tensor

from tl_traits.saes.sae import (
    SAEError,
    mean_feature_diff,
    resolve_saes,
    sae_hook,
    sae_identity,
    sae_source,
)


@catalogue.sae
def sae(
    pos: Float[Tensor, "n layer d_model"],
    neg: Float[Tensor, "m layer d_model"],
    *,
    seed: int = 0,
    saes: Any = None,
    k: int = 32,
    layers: Sequence[int] | None = None,
    hook: str | None = None,
    record: dict[str, Any] | None = None,
    model_name: str | None = None,
) -> Float[Tensor, "layer d_model"]:
    """Per layer: encode both groups with that layer's SAE, keep the `k` features with the largest
    |mean(pos) - mean(neg)| activation difference, and return their decoder image
    `diff_topk @ W_dec` at unit norm. Deterministic; `seed` is ignored.

    saes: {layer: sae-lens SAE, folder or (release, sae_id)} (one SAE alone when there is one layer);
        None takes the SAEs stored for this model by `tl-traits train-sae` (`make sae`).
    layers / hook / record / model_name: filled by `extract` (the model layer of each activation
        slice, the hook captured, a dict that receives the SAEs' identities and kept features for the
        vector's metadata, the model's name). Called directly without `layers`, slice i is layer i.
    """
    pos, neg = check_pair(pos, neg, "sae")
    n_slices, d_model = pos.shape[1], pos.shape[2]
    layer_list = list(range(n_slices)) if layers is None else [int(layer) for layer in layers]
    if len(layer_list) != n_slices:
        raise SAEError(f"sae: layers {layer_list} name {len(layer_list)} layers but the activations hold {n_slices}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise SAEError(f"sae: k must be a positive integer (features kept per layer), got {k!r}")
    by_layer = resolve_saes(saes, layer_list, model_name=model_name, hook=hook)
    missing = [layer for layer in layer_list if layer not in by_layer]
    if missing:
        have = sorted(by_layer)
        raise SAEError(
            f"sae: no SAE for layers {missing}; SAEs are given for layers {have}. Extract only those layers "
            f"(extract(..., layers={have})) or add SAEs for the others to saes={{layer: sae}}"
        )
    rows, kept = [], {}
    for i, layer in enumerate(layer_list):
        model_sae = by_layer[layer]
        _check_fits(model_sae, layer, hook, d_model)
        diff = mean_feature_diff(model_sae, pos[:, i], neg[:, i])
        top = diff.abs().argsort(descending=True, stable=True)[: min(k, diff.numel())]
        top = top[diff[top] != 0]  # fewer than k features may differ at all
        sparse = torch.zeros_like(diff)
        sparse[top] = diff[top]
        rows.append(sparse @ model_sae.W_dec.detach().float().cpu())
        kept[str(layer)] = {
            **sae_identity(model_sae),
            "features": top.tolist(),
            "feature_diffs": [round(float(v), 6) for v in diff[top]],
        }
    if record is not None:
        record["options"] = {"k": k, "saes": {layer: sae_source(by_layer[int(layer)]) or "object" for layer in kept}}
        record["sae"] = kept
    return unit_rows(torch.stack(rows), "sae")


def _check_fits(model_sae: Any, layer: int, hook: str | None, d_model: int) -> None:
    d_in = int(model_sae.cfg.d_in)
    if d_in != d_model:
        raise SAEError(f"sae: the SAE for layer {layer} reads d_in = {d_in} but the activations have d_model {d_model}")
    trained = sae_hook(model_sae)
    if trained is None:
        return
    if trained[0] != layer or (hook is not None and trained[1] != hook):
        made = f"blocks.{trained[0]}.hook_{trained[1]}"
        raise SAEError(
            f"sae: the SAE given for layer {layer} was trained on {made}, but these activations are layer {layer}"
            f"{'' if hook is None else f' at {hook}'}; give it under layer {trained[0]} (and capture "
            f"hook='{trained[1]}')"
        )
