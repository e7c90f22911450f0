"""Judging steered answers: the trait, coherence and relevance judges, and the steering score that combines them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from tl_traits.core.trait_sets import STEERING_PARTS, TraitDataset
from tl_traits.judging.judges import make_judge
from tl_traits.steering.errors import EvaluationError
from tl_traits.steering.results import JudgedSet


def steering_score(
    values: Mapping[str, float | None], parts: Sequence[str] = STEERING_PARTS, direction: int = 1
) -> float | None:
    """One answer's steering score, 0-100: the harmonic mean of `parts` (the trait in the asked direction).

    As in AxBench, an answer scores well only when every part does: steered text that shows the
    trait but no longer answers the question, or answers in broken English, scores near 0.
    None when a judge could not score one of the parts.
    """
    chosen = []
    for part in parts:
        value = values.get(part)
        if value is None:
            return None
        chosen.append(100.0 - value if part == "trait" and direction < 0 else value)
    if min(chosen) <= 0:
        return 0.0
    return len(chosen) / sum(1.0 / v for v in chosen)


def combined_score(
    trait: float | None, coherence: float | None, relevance: float | None, direction: int = 1
) -> float | None:
    """The steering score of trait, coherence and relevance (`steering_score` with the three parts)."""
    return steering_score({"trait": trait, "coherence": coherence, "relevance": relevance}, STEERING_PARTS, direction)


@dataclass
class Judges:
    """The judges one evaluation scores with (`relevance` may be None when no part of the score needs it)."""

    trait: Any
    coherence: Any
    relevance: Any = None

    @property
    def names(self) -> list[str]:
        return [j.name for j in (self.trait, self.coherence, self.relevance) if j is not None]

    @property
    def versions(self) -> dict[str, str]:
        """Each fitted judge's version (its calibration's hash) by kind; fixed-rule judges are left out."""
        found = {
            kind: getattr(j, "version", "")
            for kind, j in (("trait", self.trait), ("coherence", self.coherence), ("relevance", self.relevance))
            if j is not None
        }
        return {kind: v for kind, v in found.items() if v}

    def judge(
        self, questions: Sequence[str], responses: Sequence[str], direction: int, parts: Sequence[str]
    ) -> JudgedSet:
        """Every answer's trait, coherence, relevance (None without a relevance judge) and steering score."""
        qs, rs = list(questions), list(responses)
        scores: dict[str, list[float | None]] = {
            "trait": list(self.trait.score(qs, rs)),
            "coherence": list(self.coherence.score(qs, rs)),
            "relevance": list(self.relevance.score(qs, rs)) if self.relevance is not None else [None] * len(rs),
        }
        scores["score"] = [
            steering_score({k: scores[k][i] for k in STEERING_PARTS}, parts, direction) for i in range(len(rs))
        ]
        return JudgedSet(qs, rs, scores)


def pick_judges(
    specs: Sequence[Any], model: Any, trait: TraitDataset, relevance: Any = None, parts: Sequence[str] = STEERING_PARTS
) -> Judges:
    """The trait, coherence and (when a part needs it) relevance judges from judge specs; a relevance judge among
    `specs` wins over `relevance`."""
    built = [make_judge(s, model=model, trait=trait) for s in specs]
    by_kind = {j.kind: j for j in built}
    if "trait" not in by_kind or "coherence" not in by_kind:
        raise EvaluationError(
            f"steering evaluation needs a trait judge and a coherence judge; got kinds {[j.kind for j in built]}. "
            "For example judges=['classifier', 'coherence'] (tl_traits.judging.defaults.default_judges(trait) gives a "
            "trait's own)."
        )
    if "relevance" not in by_kind and relevance is not None:
        by_kind["relevance"] = make_judge(relevance, model=model, trait=trait)
        if by_kind["relevance"].kind != "relevance":
            raise EvaluationError(
                f"relevance= needs a judge of kind 'relevance', got {by_kind['relevance'].kind!r}; "
                "e.g. 'embedding:relevance'"
            )
    if "relevance" in parts and "relevance" not in by_kind:
        raise EvaluationError(
            "this steering score counts relevance, so it needs a relevance judge: pass relevance='embedding:relevance'"
        )
    # shown even where the score leaves it out
    return Judges(by_kind["trait"], by_kind["coherence"], by_kind.get("relevance"))
