"""Fill in a trait set's missing responses by generating them, optionally keeping only vetted ones."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Sequence

from tqdm.auto import tqdm

from tl_traits.core.generation import generate
from tl_traits.core.trait_sets import TraitDataset, TraitExample, load_trait
from tl_traits.judging.judges import make_judge

Judge = Callable[[Sequence[str], Sequence[str]], Sequence[float | None]]


def generate_responses(
    model: Any,
    trait: Any,
    *,
    max_new_tokens: int = 32,
    greedy: bool = True,
    seed: int | None = 0,
    overwrite: bool = False,
    judge: str | Judge | Any | None = None,
    keep: tuple[float, float] = (60.0, 40.0),
    progress: bool = True,
) -> TraitDataset:
    """A copy of `trait` whose examples without a response get the model's own answer.

    Each example is generated from its own system prompt (which may elicit the trait) and
    prompt. With `judge` (a registered judge name, a judge object with `.score`, or a
    function `(questions, responses) -> scores` on 0-100), positives scoring below
    `keep[0]` and negatives above `keep[1]` are dropped.
    """
    dataset = load_trait(trait)
    todo = [ex for ex in dataset.examples if overwrite or ex.response is None]
    answers: dict[int, str] = {}
    for ex in tqdm(todo, desc="responses", unit="ex", disable=not progress or len(todo) < 2, leave=False):
        answers[id(ex)] = generate(model, [ex.messages()], max_new_tokens=max_new_tokens, greedy=greedy, seed=seed)[
            0
        ].strip()

    def filled(examples: tuple[TraitExample, ...]) -> tuple[TraitExample, ...]:
        return tuple(replace(ex, response=answers[id(ex)]) if id(ex) in answers else ex for ex in examples)

    result = replace(dataset, positive=filled(dataset.positive), negative=filled(dataset.negative))
    if judge is None:
        return result
    score = _as_scorer(judge, model, dataset)
    pos_scores = score([e.prompt for e in result.positive], [e.response or "" for e in result.positive])
    neg_scores = score([e.prompt for e in result.negative], [e.response or "" for e in result.negative])
    high, low = keep
    return replace(
        result,
        positive=tuple(e for e, s in zip(result.positive, pos_scores) if s is not None and s >= high),
        negative=tuple(e for e, s in zip(result.negative, neg_scores) if s is not None and s <= low),
        extra={
            **result.extra,
            "vetted": {
                "judge": str(judge),
                "keep": list(keep),
                "kept": [
                    sum(s is not None and s >= high for s in pos_scores),
                    sum(s is not None and s <= low for s in neg_scores),
                ],
                "of": [len(pos_scores), len(neg_scores)],
            },
        },
    )


def _as_scorer(judge: Any, model: Any, trait: TraitDataset) -> Judge:
    return make_judge(judge, model=model, trait=trait).score
