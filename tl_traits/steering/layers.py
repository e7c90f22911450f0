"""Where to steer by default: a few layers at 25-55% of the model's depth, where steering works best."""

from __future__ import annotations

from typing import Sequence

from tl_traits.core.vectors import MID_DEPTH, nearest_layer
from tl_traits.steering.errors import SteeringError

STEERING_DEPTHS = (0.25, MID_DEPTH, 0.55)  # fractions of depth searched by default: mid layers steer best
DEFAULT_DEPTH = MID_DEPTH  # one layer, when only one is used (the CLI's steer and evaluate)


def steering_layers(
    n_layers: int,
    extracted: Sequence[int],
    chosen: Sequence[int] | None = None,
    depths: Sequence[float] = STEERING_DEPTHS,
) -> list[int]:
    """The layers a steering search tries: `chosen` (each must be extracted), or the
    extracted layers nearest `depths`."""
    if chosen:
        missing = [layer for layer in chosen if layer not in extracted]
        if missing:
            raise SteeringError(f"steering layers {missing} were not extracted (model has layers 0-{n_layers - 1})")
        return sorted(set(chosen))
    return sorted({nearest_layer(n_layers, extracted, depth) for depth in depths})


def default_steering_layer(n_layers: int, extracted: Sequence[int]) -> int:
    """The extracted layer nearest 40% depth. Not the best detection layer: on small trait sets every
    layer ties at AUROC 1.0 and the tie-break can pick layer 1, which steers into repetition."""
    return nearest_layer(n_layers, extracted, DEFAULT_DEPTH)
