"""The checks a vectors artifact goes through: the model it is applied to (identity, weights, prompt settings), and
the integrity of its file (checksums of header and tensors, one row per layer)."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from tl_traits.core.errors import VectorError
from tl_traits.core.models import model_identity
from tl_traits.core.prompts import prepare_inputs


def check_model(metadata: dict[str, Any], model: Any, *, strict: bool = True) -> None:
    """Compare an artifact's recorded model identity with `model`."""

    made = metadata.get("model") or {}
    here = model_identity(model)
    if int(made.get("d_model", -1)) != here.d_model or int(made.get("n_layers", -1)) != here.n_layers:
        raise VectorError(
            f"vector from another model: made on {made.get('name')} (n_layers {made.get('n_layers')}, d_model "
            f"{made.get('d_model')}), this model is {here.name} (n_layers {here.n_layers}, d_model {here.d_model}). "
            "Extract vectors on this model with tl_traits.extraction.extract(model, trait)."
        )
    if made.get("name") != here.name:
        message = (
            f"vector made on '{made.get('name')}' applied to '{here.name}' (same shape). "
            "Pass strict=False if that is intended (e.g. a fine-tune of the same model)."
        )
        if strict:
            raise VectorError(message)
        warnings.warn(message, stacklevel=3)
    elif made.get("fingerprint") not in (None, here.fingerprint) and made.get("kind") == here.kind:
        warnings.warn(
            f"the weights of '{here.name}' differ from those the vector was made on (fingerprint "
            f"{made.get('fingerprint')} vs {here.fingerprint}): a fine-tune or quantized copy?",
            stacklevel=3,
        )
    _check_prompt_settings(metadata.get("prompt_settings"), model)


def _check_prompt_settings(recorded: dict[str, Any] | None, model: Any) -> None:
    """Warn when this model's prompts would be tokenized differently from the artifact's."""
    if not recorded:
        return

    now = prepare_inputs(model, "x", chat=recorded.get("chat")).settings.to_dict()
    changed = [k for k in ("chat_template_sha256", "bos", "bos_token_id") if recorded.get(k) != now.get(k)]
    if changed:
        warnings.warn(
            "this model prepares prompts differently from the run that made the vector ("
            + ", ".join(f"{k}: {recorded.get(k)!r} then, {now.get(k)!r} now" for k in changed)
            + "); activations are not comparable: re-extract, or load the model with the same tokenizer and template",
            stacklevel=3,
        )


def header_digest(header: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(header, sort_keys=True).encode()).hexdigest()


def check_rows(path: Path, layers: Any, methods: Any, tensors: dict[str, Tensor]) -> None:
    """Every method's tensors hold one row per listed layer, so `direction(layer)` reads that layer's row."""
    if not isinstance(layers, list) or not all(isinstance(x, int) for x in layers) or len(set(layers)) != len(layers):
        raise VectorError(f"{path} is corrupt: its layer list {layers!r} is not distinct integers")
    for name in methods:
        rows = {key: t.shape[0] for key, t in tensors.items() if key.startswith(f"{name}/")}
        if f"{name}/directions" not in rows:
            raise VectorError(f"{path} is corrupt: method '{name}' has no directions tensor")
        wrong = sorted({n for n in rows.values() if n != len(layers)})
        if wrong:
            raise VectorError(
                f"{path} is corrupt: it lists {len(layers)} layers but method '{name}' holds "
                f"{' or '.join(map(str, wrong))} rows per tensor"
            )


def tensor_digest(tensors: dict[str, Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name].contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
