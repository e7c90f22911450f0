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
from tl_traits.judging.judges import make_judge
from tl_traits.steering.evaluation import EvaluationError, Run, pick_judges
from tl_traits.steering.search import (
    DEFAULT_SEARCH,
    SearchSettings,
    StrengthSearch,
    is_coherent,
    mean_score,
)
from tl_traits.steering.steer import Setting, sweep_generate

PROMPTING = "prompting"


@dataclass
class MethodSteering:
    """One method (or the prompting baseline) steered one way: its best coherent run and the baseline."""

    method: str
    layer: int | None
    direction: int
    baseline_trait: float | None
    baseline_coherence: float | None
    baseline_relevance: float | None
    runs: list[Run]
    relevance: dict[int, float | None]  # run index -> mean relevance
    threshold: float

    def best(self) -> tuple[int, Run] | None:
        """The coherent run that moved the trait furthest in `direction` (prompting: its one run)."""
        ok = [(i, r) for i, r in enumerate(self.runs) if r.trait_mean is not None and (
            self.method == PROMPTING or is_coherent(r, self.threshold))]
        return max(ok, key=lambda item: self.direction * item[1].trait_mean) if ok else None

    def row(self) -> dict[str, Any]:
        found = self.best()
        index, run = found if found else (None, None)
        delta = None if run is None or self.baseline_trait is None else self.direction * (run.trait_mean - self.baseline_trait)
        return {
            "method": self.method, "layer": self.layer, "direction": "toward" if self.direction > 0 else "away",
            "baseline trait": self.baseline_trait, "steered trait": run.trait_mean if run else None,
            "coherent delta": delta, "coherence": run.coherence_mean if run else None,
            "relevance": self.relevance.get(index) if run else None, "baseline relevance": self.baseline_relevance,
            "strength": run.strength if run and self.method != PROMPTING else None,
            "coherent runs": sum(is_coherent(r, self.threshold) for r in self.runs), "runs": len(self.runs),
        }


def compare_steering(
    model: Any,
    vectors: TraitVectors | Mapping[str, TraitVector],
    trait: Any,
    layer: int,
    *,
    judges: Sequence[Any] = ("vader", "perplexity"),
    relevance: Any = "embedding:relevance",
    direction: int = 1,
    subset: int | None = 8,
    steps: int = 4,
    start: float = DEFAULT_SEARCH.start,
    up: float = DEFAULT_SEARCH.up,
    down: float = DEFAULT_SEARCH.down,
    threshold: float = DEFAULT_SEARCH.threshold,
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
    trait_judge, coherence_judge = pick_judges(judges, model, dataset)
    relevance_judge = make_judge(relevance, model=model, trait=dataset)
    if relevance_judge.kind != "relevance":
        raise EvaluationError(f"relevance= needs a judge of kind 'relevance', got {relevance_judge.kind!r}; e.g. 'embedding:relevance'")
    qs = list(dataset.questions)[:subset]
    if not qs:
        raise EvaluationError(f"trait '{dataset.name}' has no steering questions")
    for vec in named.values():
        vec.check_model(model)

    def judge(answers: list[str]) -> tuple[float | None, float | None, float | None]:
        return tuple(mean_score(j.score(qs, answers)) for j in (trait_judge, coherence_judge, relevance_judge))

    total = 1 + steps + (1 if prompting else 0)
    base_t, base_c, base_r = judge(generate(model, qs, max_new_tokens=max_new_tokens))
    results = {m: MethodSteering(m, layer, direction, base_t, base_c, base_r, [], {}, threshold) for m in named}
    if on_step:
        on_step(1, total)
    search = StrengthSearch(named, SearchSettings(start, up, down, threshold=threshold))
    for step in range(steps):
        settings = [Setting(layer, coef=direction * search.strength[m] * vec.norm(layer), vector=vec) for m, vec in named.items()]
        texts = sweep_generate(model, None, settings, qs, max_new_tokens=max_new_tokens)
        for (m, vec), setting, answers in zip(named.items(), settings, texts):
            t, c, r = judge(answers)
            run = Run(layer, setting.coef, search.strength[m], t, c, len(qs), step, answers)
            results[m].relevance[len(results[m].runs)] = r
            results[m].runs.append(run)
            search.update(m, run)
        if on_step:
            on_step(step + 2, total)
    out = list(results.values())
    if prompting:
        system = f"Answer in this way: {dataset.description('HIGH' if direction > 0 else 'LOW')} Still answer the user's question."
        answers = generate(model, qs, system=system, max_new_tokens=max_new_tokens)
        t, c, r = judge(answers)
        out.append(MethodSteering(PROMPTING, None, direction, base_t, base_c, base_r,
                                  [Run(-1, 0.0, 0.0, t, c, len(qs), 0, answers)], {0: r}, threshold))
        if on_step:
            on_step(total, total)
    return out
