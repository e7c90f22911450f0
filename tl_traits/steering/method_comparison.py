"""Steer with every method's vector side by side, plus a prompting baseline, judged the same way.

All methods run the adaptive coefficient search in lockstep at one layer: each search step is
ONE batched generate over every method's current setting. The prompting baseline (as in
AxBench) asks for the trait, or its opposite, in a system prompt instead of steering.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from tl_traits.core.generation import generate
from tl_traits.core.trait_sets import load_trait
from tl_traits.core.vectors import TraitVector, TraitVectors
from tl_traits.steering.evaluation import (
    EvaluationError,
    Run,
    means,
    pick_judges,
    score_responses,
)
from tl_traits.steering.search import (
    DEFAULT_SEARCH,
    OBJECTIVES,
    SearchSettings,
    StrengthSearch,
    is_coherent,
)
from tl_traits.steering.steer import Setting, sweep_generate

PROMPTING = "prompting"


@dataclass
class MethodSteering:
    """One method (or the prompting baseline) steered one way: its runs, its best run and the baseline."""

    method: str
    layer: int | None
    direction: int
    baseline_trait: float | None
    baseline_coherence: float | None
    baseline_relevance: float | None
    runs: list[Run]
    threshold: float
    baseline_combined: float | None = None
    objective: str = "combined"

    def best(self) -> Run | None:
        """The best run: highest steering score ("combined"), or the coherent run that moved the trait
        furthest in `direction` ("coherent_delta"); prompting has one run."""
        if self.objective == "combined":
            scored = [r for r in self.runs if r.combined_mean is not None]
            return max(scored, key=lambda r: r.combined_mean) if scored else None
        ok = [r for r in self.runs if r.trait_mean is not None and (self.method == PROMPTING or is_coherent(r, self.threshold))]
        return max(ok, key=lambda r: self.direction * r.trait_mean) if ok else None

    def coherent_delta(self) -> float | None:
        ok = [r for r in self.runs if r.trait_mean is not None and (self.method == PROMPTING or is_coherent(r, self.threshold))]
        if not ok or self.baseline_trait is None:
            return None
        return max(self.direction * (r.trait_mean - self.baseline_trait) for r in ok)

    def row(self) -> dict[str, Any]:
        run = self.best()
        scored = [r.combined_mean for r in self.runs if r.combined_mean is not None]
        return {
            "method": self.method, "layer": self.layer, "direction": "toward" if self.direction > 0 else "away",
            "steering score": max(scored) if scored else None, "baseline score": self.baseline_combined,
            "baseline trait": self.baseline_trait, "steered trait": run.trait_mean if run else None,
            "coherent delta": self.coherent_delta(), "coherence": run.coherence_mean if run else None,
            "relevance": run.relevance_mean if run else None, "baseline relevance": self.baseline_relevance,
            "strength": run.strength if run and self.method != PROMPTING else None,
            "coherent runs": sum(is_coherent(r, self.threshold) for r in self.runs), "runs": len(self.runs),
        }


def compare_steering(
    model: Any,
    vectors: TraitVectors | Mapping[str, TraitVector],
    trait: Any,
    layer: int,
    *,
    judges: Sequence[Any] = ("vader", "coherence"),
    relevance: Any = "embedding:relevance",
    direction: int = 1,
    subset: int | None = 8,
    steps: int = 4,
    start: float = DEFAULT_SEARCH.start,
    up: float = DEFAULT_SEARCH.up,
    down: float = DEFAULT_SEARCH.down,
    threshold: float = DEFAULT_SEARCH.threshold,
    objective: str = "combined",
    max_new_tokens: int = 32,
    prompting: bool = True,
    on_step: Callable[[int, int], None] | None = None,
) -> list[MethodSteering]:
    """For each method, the adaptive search at `layer` in `direction`; then the prompting baseline.

    Scores: the trait judge, a coherence judge (a run counts when its mean coherence >= threshold)
    and a relevance judge (does the answer address the question), on the trait's steering questions.
    """
    if direction not in (1, -1):
        raise EvaluationError(f"direction must be +1 or -1, not {direction!r}")
    dataset = load_trait(trait)
    named = {m: vectors[m] for m in vectors.methods} if isinstance(vectors, TraitVectors) else dict(vectors)
    if not named:
        raise EvaluationError("compare_steering needs at least one vector")
    if objective not in OBJECTIVES:
        raise EvaluationError(f"objective must be one of {', '.join(OBJECTIVES)}, not {objective!r}")
    chosen = pick_judges(judges, model, dataset, relevance)
    if chosen[2] is None:
        raise EvaluationError("compare_steering needs a relevance judge; pass relevance='embedding:relevance'")
    qs = list(dataset.questions)[:subset]
    if not qs:
        raise EvaluationError(f"trait '{dataset.name}' has no steering questions")
    for vec in named.values():
        vec.check_model(model)

    def judged_run(layer_: int, coef: float, strength: float, step: int, answers: list[str]) -> Run:
        scores = score_responses(chosen, qs, answers, direction)
        t, c, r, combined = means(scores)
        return Run(layer_, coef, strength, t, c, len(qs), step, answers, r, combined, scores)

    total = 1 + steps + (1 if prompting else 0)
    base = judged_run(-1, 0.0, 0.0, 0, generate(model, qs, max_new_tokens=max_new_tokens))
    results = {m: MethodSteering(m, layer, direction, base.trait_mean, base.coherence_mean, base.relevance_mean, [],
                                 threshold, base.combined_mean, objective) for m in named}
    if on_step:
        on_step(1, total)
    search = StrengthSearch(named, SearchSettings(start, up, down, threshold=threshold))
    for step in range(steps):
        settings = [Setting(layer, coef=direction * search.strength[m] * vec.norm(layer), vector=vec) for m, vec in named.items()]
        texts = sweep_generate(model, None, settings, qs, max_new_tokens=max_new_tokens)
        for (m, vec), setting, answers in zip(named.items(), settings, texts):
            run = judged_run(layer, setting.coef, search.strength[m], step, answers)
            results[m].runs.append(run)
            search.update(m, run)
        if on_step:
            on_step(step + 2, total)
    out = list(results.values())
    if prompting:
        system = f"Answer in this way: {dataset.description('HIGH' if direction > 0 else 'LOW')} Still answer the user's question."
        answers = generate(model, qs, system=system, max_new_tokens=max_new_tokens)
        out.append(MethodSteering(PROMPTING, None, direction, base.trait_mean, base.coherence_mean, base.relevance_mean,
                                  [judged_run(-1, 0.0, 0.0, 0, answers)], threshold, base.combined_mean, objective))
        if on_step:
            on_step(total, total)
    return out
