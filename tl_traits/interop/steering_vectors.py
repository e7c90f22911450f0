"""steering-vectors' `SteeringVector` to and from a TraitVector (the package steers Hugging Face models).

steering-vectors keeps `{layer: tensor}` in residual units plus a `layer_type`; a
`decoder_block` k tensor is added to block k's output (TransformerLens resid_post k), `self_attn`
to the attention output (attn_out) and `mlp` to the MLP output (mlp_out), each times `multiplier`.
"""

from __future__ import annotations

from typing import Any

from tl_traits.core.errors import MissingExtraError
from tl_traits.core.vectors import TraitVector
from tl_traits.interop.block_outputs import InteropError, block_output_index

LAYER_TYPES = {"decoder_block": "resid_post", "self_attn": "attn_out", "mlp": "mlp_out"}


def to_steering_vector(vector: TraitVector, *, strength: float = 1.0, layers: list[int] | None = None) -> Any:
    """A `steering_vectors.SteeringVector` that adds what `steer(model, vector, layers, strength=strength)`
    adds, for `SteeringVector.apply(hf_model, multiplier=1)` (the multiplier then scales the strength).
    layers: as in `steer` (-1 is the last layer; default all the vector's layers)."""
    SteeringVector = _steering_vector_class()
    hook = vector.hook
    tensors = vector.layer_tensors(strength, layers)
    if hook in ("resid_post", "resid_pre"):
        activations = {block_output_index(layer, hook, "steering-vectors"): t for layer, t in tensors.items()}
        return SteeringVector(activations, "decoder_block")
    layer_type = {v: k for k, v in LAYER_TYPES.items()}.get(hook)
    if layer_type is None:
        raise InteropError(
            f"steering-vectors has no layer type for hook {hook}; it steers {', '.join(LAYER_TYPES.values())}"
        )
    return SteeringVector(tensors, layer_type)


def from_steering_vector(steering_vector: Any, model: Any, *, name: str = "steering-vectors") -> TraitVector:
    """A TraitVector in absolute units for `model`: strength s steers as `apply(multiplier=s)` does."""
    layer_type = getattr(steering_vector, "layer_type", None)
    activations = getattr(steering_vector, "layer_activations", None)
    if not isinstance(activations, dict):
        raise InteropError(f"expected a steering_vectors.SteeringVector, got {type(steering_vector).__name__}")
    if layer_type not in LAYER_TYPES:
        raise InteropError(
            f"steering-vectors layer type {layer_type!r} has no TransformerLens hook here; "
            f"supported: {', '.join(LAYER_TYPES)}"
        )
    # steering-vectors counts negative layers from the end and adds two keys for one layer ({-1: a, 29: b})
    # both: from_layer_tensors reads the keys the same way and sums them
    return TraitVector.from_layer_tensors(
        model, activations, hook=LAYER_TYPES[layer_type], name=name, source="steering-vectors"
    )


def _steering_vector_class() -> Any:
    try:
        from steering_vectors import SteeringVector
    except ImportError as exc:
        raise MissingExtraError(
            "steering-vectors",
            install="pip install --no-deps steering-vectors "
            "(it pins transformers<5, which tl_traits cannot use; its code runs on 5)",
        ) from exc
    return SteeringVector
