"""Mean-centred steering vectors (Jorgensen et al. 2023): the trait side's mean activation minus a neutral corpus's.

The neutral corpus here is the model's own unsteered answers to the dev questions, read at the
vector's hook and position, so centring removes what every answer of this model shares and keeps
what the trait's examples add to it.
"""

from __future__ import annotations

from typing import Any, Sequence

from tl_traits.core.capture import capture
from tl_traits.core.trait_sets import TraitDataset
from tl_traits.core.vectors import TraitVector
from tl_traits.steering.errors import SteeringError


def mean_centred(
    model: Any,
    vector: TraitVector,
    trait: TraitDataset,
    neutral_prompts: Sequence[str],
    neutral_responses: Sequence[str],
    direction: int = 1,
) -> TraitVector:
    """At each of `vector`'s layers: mean(trait side) - mean(neutral answers), unit length, in `vector`'s units.

    The trait side is the positive examples when steering toward (+1), the negative ones away (-1);
    the result points so that steering it with `direction` adds that difference (so away it is
    negated). Its recorded norms are `vector`'s, so a strength means the same for both.
    """
    if direction not in (1, -1):
        raise SteeringError(f"direction must be +1 or -1, not {direction!r}")
    side = trait.positive if direction > 0 else trait.negative
    if not side or not trait.has_responses:
        raise SteeringError(
            f"mean-centring needs the trait's {'positive' if direction > 0 else 'negative'} examples with responses"
        )
    if not neutral_prompts or len(neutral_prompts) != len(neutral_responses):
        raise SteeringError("mean-centring needs neutral prompts with one unsteered answer each")
    hook = vector.hook
    position = vector.metadata.get("position", "response[:]")
    options = dict(layers=list(vector.layers), hook=hook, position=position, progress=False)
    trait_mean = capture(model, list(side), **options).acts.mean(dim=0)
    neutral_mean = capture(model, list(zip(neutral_prompts, neutral_responses)), **options).acts.mean(dim=0)
    difference = (trait_mean - neutral_mean) * direction
    norms = difference.norm(dim=-1, keepdim=True)
    if bool((norms == 0).any()):
        raise SteeringError(
            "the trait side and the neutral answers have the same mean at some layer; nothing to centre"
        )
    meta = {k: v for k, v in vector.metadata.items() if k in ("model", "prompt_settings", "position", "dataset")}
    return TraitVector(
        "mean_centred",
        (difference / norms).float(),
        list(vector.layers),
        vector.act_norm.clone(),
        {},
        {
            **meta,
            "method": "mean_centred",
            "centred_from": vector.method,
            "neutral": f"{len(neutral_prompts)} unsteered dev answers",
        },
        hook=hook,
        units=vector.units,
    )
