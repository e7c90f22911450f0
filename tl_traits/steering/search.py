"""The adaptive coefficient search: its settings, its step rule and the per-setting state it keeps.

`evaluate_steering` (one vector, several layers) and `compare_steering` (several vectors, one
layer) both run it, so a strength means the same thing in both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Hashable, Iterable, Sequence


@dataclass(frozen=True)
class SearchSettings:
    """Start at `start` x the base coefficient; multiply by `up` while mean coherence >= threshold, else by `down`."""

    start: float = 0.7
    up: float = 1.3
    down: float = 0.85
    momentum: float = 0.0
    threshold: float = 70.0


DEFAULT_SEARCH = SearchSettings()


def next_strength(
    strength: float, velocity: float, coherent: bool, *, up: float, down: float, momentum: float = 0.0
) -> tuple[float, float]:
    """One step of the adaptive search: grow the strength while the answers stay coherent, else shrink it."""
    velocity = momentum * velocity + (1 - momentum) * (up if coherent else down)
    return strength * velocity, velocity


def is_coherent(run: Any, threshold: float) -> bool:
    """Whether a run's mean coherence reaches the gate (a run with no coherence score does not)."""
    return run.coherence_mean is not None and run.coherence_mean >= threshold


def mean_score(scores: Sequence[float | None]) -> float | None:
    """The mean of the scores a judge gave (None where it could not score); None when there are none."""
    values = [s for s in scores if s is not None]
    return sum(values) / len(values) if values else None


class StrengthSearch:
    """One search per key (a layer, a method): the current strength and velocity of each."""

    def __init__(self, keys: Iterable[Hashable], settings: SearchSettings) -> None:
        self.settings = settings
        self.strength = {key: settings.start for key in keys}
        self._velocity = {key: 1.0 for key in self.strength}

    def update(self, key: Hashable, run: Any) -> None:
        """Move `key`'s strength after a run judged at it."""
        s = self.settings
        self.strength[key], self._velocity[key] = next_strength(
            self.strength[key], self._velocity[key], is_coherent(run, s.threshold), up=s.up, down=s.down, momentum=s.momentum
        )


OBJECTIVES = ("combined", "coherent_delta")


def combined_score(trait: float | None, coherence: float | None, relevance: float | None, direction: int = 1) -> float | None:
    """One response's steering score, 0-100: the harmonic mean of the trait (in the asked direction), coherence and relevance.

    As in AxBench, a response scores well only when all three do: steered text that shows the trait
    but no longer answers the question, or answers in broken English, scores near 0. None when a
    judge could not score it.
    """
    if trait is None or coherence is None or relevance is None:
        return None
    parts = (trait if direction > 0 else 100.0 - trait, coherence, relevance)
    if min(parts) <= 0:
        return 0.0
    return 3.0 / sum(1.0 / p for p in parts)
