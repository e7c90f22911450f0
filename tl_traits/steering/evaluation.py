"""evaluate_steering: where and how strongly one vector steers best, chosen on dev, scored on test.

Each answer's steering score is the harmonic mean of the trait (in the asked direction), coherence
and relevance (`scoring.steering_score`); `SteeringProtocol` says how the search runs. Results go
to a resumable JSONL log (`log.SteeringLog`).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

from tl_traits.core.vectors import TraitVector, TraitVectors
from tl_traits.steering.errors import EvaluationError
from tl_traits.steering.protocol import SteeringProtocol
from tl_traits.steering.results import SteeringResult
from tl_traits.steering.runner import load_steering_log, run_protocol

__all__ = ["EvaluationError", "evaluate_steering", "load_evaluation"]


def evaluate_steering(
    model: Any,
    vector: TraitVector | TraitVectors,
    trait: Any,
    *,
    layers: Sequence[int] | int | None = None,
    judges: Sequence[Any] | None = None,
    relevance: Any = "embedding:relevance",
    direction: int = 1,
    protocol: SteeringProtocol | None = None,
    method: str | None = None,
    questions: Sequence[str] | None = None,
    log: str | os.PathLike[str] | None = None,
    progress: bool = True,
    on_step: Callable[[int, int], None] | None = None,
    **settings: Any,
) -> SteeringResult:
    """Search layers and strengths for one vector on the trait's dev questions; score the best on its test questions.

    judges: a trait judge and a coherence judge (names, "name:kind" specs, objects, functions);
        default: the trait's own (`tl_traits.judging.defaults.default_judges`).
    relevance: the relevance judge (does the answer address the question), needed when the trait's
        steering score counts relevance (every bundled trait but refusal toward).
    direction: +1 to push toward the trait, -1 away from it.
    protocol: a `SteeringProtocol`; keyword `settings` change single fields of it, e.g.
        `dev_questions=8, test_questions=8, max_new_tokens=32` for a quick look.
    log: a JSONL file to append to and resume from.
    progress: a progress bar over the batches (one per search step); `on_step(done, total)` too.

    Returns a `SteeringResult`: `.table()` the dev search per layer, `.summary()` the chosen setting's
    test-half score beside the unsteered answers', with 95% intervals.
    """
    vec = _one_vector(vector, method)
    chosen = (protocol or SteeringProtocol()).with_(**settings) if settings else protocol
    return run_protocol(
        model,
        {vec.method: vec},
        trait,
        direction=direction,
        layers=layers,
        judges=judges,
        relevance=relevance,
        protocol=chosen,
        questions=questions,
        log=log,
        progress=progress,
        on_step=on_step,
    )


def load_evaluation(log: str | os.PathLike[str]) -> tuple[SteeringResult, dict[str, Any]]:
    """Read an evaluation log back without a model: the result and the log's header (questions, judges, ...)."""
    return load_steering_log(log)


def _one_vector(vector: TraitVector | TraitVectors, method: str | None) -> TraitVector:
    if isinstance(vector, TraitVector):
        return vector
    if not isinstance(vector, TraitVectors):
        raise EvaluationError(
            f"evaluate_steering takes a TraitVector or TraitVectors, not {type(vector).__name__}; "
            "a raw tensor can be wrapped with TraitVector.from_layer_tensors(model, {layer: tensor})"
        )
    if method is None:
        if len(vector) != 1:
            raise EvaluationError(f"these TraitVectors hold {vector.methods}; pass method=... or vectors['name']")
        method = vector.methods[0]
    return vector[method]
