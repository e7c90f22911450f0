"""compare_steering: every method's vector and the prompting baseline, each chosen on dev and scored on test.

All methods search in lockstep (each step is one batched generate over every method's settings);
the prompting baseline (as in AxBench) asks for the trait, or its opposite, in a system prompt
instead of steering, its prompt chosen on dev among a few templates.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Sequence

from tl_traits.core.vectors import TraitVector, TraitVectors
from tl_traits.steering.errors import EvaluationError
from tl_traits.steering.protocol import SteeringProtocol
from tl_traits.steering.results import PROMPTING, SteeringResult
from tl_traits.steering.runner import run_protocol

__all__ = ["PROMPTING", "compare_steering"]


def compare_steering(
    model: Any,
    vectors: TraitVectors | Mapping[str, TraitVector],
    trait: Any,
    layers: Sequence[int] | int | None = None,
    *,
    judges: Sequence[Any] | None = None,
    relevance: Any = "embedding:relevance",
    direction: int = 1,
    protocol: SteeringProtocol | None = None,
    prompting: bool = True,
    log: str | os.PathLike[str] | None = None,
    progress: bool = True,
    on_step: Callable[[int, int], None] | None = None,
    **settings: Any,
) -> SteeringResult:
    """Each method (and prompting) gets its own setting chosen on the dev questions and its test-half score.

    `result.summary()` has a row per method: the chosen setting, the test score with its 95% interval,
    the unsteered test score, the gain over it and the gap to prompting (both paired, with intervals).
    Other arguments as in `evaluate_steering`.
    """
    named = {m: vectors[m] for m in vectors.methods} if isinstance(vectors, TraitVectors) else dict(vectors)
    if not named:
        raise EvaluationError("compare_steering needs at least one vector")
    if PROMPTING in named:
        raise EvaluationError(f"'{PROMPTING}' names the prompting baseline; give that vector another name")
    chosen = (protocol or SteeringProtocol()).with_(**settings) if settings else protocol
    return run_protocol(
        model,
        named,
        trait,
        direction=direction,
        layers=layers,
        judges=judges,
        relevance=relevance,
        protocol=chosen,
        prompting=prompting,
        log=log,
        progress=progress,
        on_step=on_step,
    )
