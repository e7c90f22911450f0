"""Methods steered side by side in one batch per search step, and the prompting baseline."""

from __future__ import annotations

import pytest

import tl_traits as tt
from tl_traits.steering.evaluation import EvaluationError, evaluate_steering
from tl_traits.steering.method_comparison import PROMPTING, compare_steering

QUESTIONS = ["How was your weekend?", "Describe your street.", "What did you eat today?"]


@pytest.fixture(scope="module")
def joy_vectors(bridge_model):
    trait = tt.load_trait("emotion/joy").limit(24)
    return tt.extract(bridge_model, trait, ["mean_diff", "random_baseline"], layers=[10], progress=False)


def exclaim_trait(questions, responses):
    return [min(100.0, 25.0 * r.count("!")) for r in responses]


def length_coherence(questions, responses):
    return [100.0 if len(r.split()) >= 3 else 0.0 for r in responses]


def word_overlap(questions, responses):
    return [100.0 * bool(set(q.lower().split()) & set(r.lower().split())) for q, r in zip(questions, responses)]


JUDGES = [tt.FunctionJudge(exclaim_trait), tt.FunctionJudge(length_coherence, kind="coherence")]
RELEVANCE = tt.FunctionJudge(word_overlap, kind="relevance", name="overlap")


def test_lockstep_search_equals_each_method_searched_alone(bridge_model, joy_vectors):
    trait = tt.load_trait("emotion/joy")
    trait = type(trait)(trait.name, trait.positive, trait.negative, trait.definition, tuple(QUESTIONS))
    found = compare_steering(bridge_model, joy_vectors, trait, 10, judges=JUDGES, relevance=RELEVANCE,
                             subset=None, steps=2, max_new_tokens=10)
    assert [m.method for m in found] == ["mean_diff", "random_baseline", PROMPTING]
    alone = evaluate_steering(bridge_model, joy_vectors["mean_diff"], trait, layers=[10], judges=JUDGES,
                              relevance=RELEVANCE, steps=2, max_new_tokens=10)
    mine = found[0]
    assert [r.strength for r in mine.runs] == [r.strength for r in alone.runs]
    assert [r.responses for r in mine.runs] == [r.responses for r in alone.runs]  # same text as one vector at a time
    assert mine.baseline_trait == alone.baseline_trait
    row = mine.row()
    assert row["direction"] == "toward" and row["layer"] == 10 and row["runs"] == 2
    coherent = [r for r in mine.runs if r.coherence_mean >= 70]
    if coherent:
        assert row["coherent delta"] == max(r.trait_mean for r in coherent) - mine.baseline_trait
    # the same steering score as evaluate_steering's, and it is the best run's
    assert [r.combined_mean for r in mine.runs] == pytest.approx([r.combined_mean for r in alone.runs])
    assert row["steering score"] == max(r.combined_mean for r in mine.runs) == alone.table()[0]["steering_score"]
    assert row["baseline score"] == pytest.approx(alone.baseline_combined)
    prompt_row = found[-1].row()
    assert prompt_row["layer"] is None and prompt_row["strength"] is None and prompt_row["runs"] == 1
    assert found[-1].runs[0].responses != mine.runs[0].responses  # the system prompt changed the answers


def test_away_and_bad_arguments(bridge_model, joy_vectors):
    away = compare_steering(bridge_model, {"mean_diff": joy_vectors["mean_diff"]}, "emotion/joy", 10, judges=JUDGES,
                            relevance=RELEVANCE, direction=-1, subset=2, steps=1, max_new_tokens=6, prompting=False)
    assert len(away) == 1 and away[0].runs[0].coef < 0 and away[0].row()["direction"] == "away"
    with pytest.raises(EvaluationError, match="kind 'relevance'"):
        compare_steering(bridge_model, joy_vectors, "emotion/joy", 10, judges=JUDGES, relevance=JUDGES[0], steps=1)
    with pytest.raises(EvaluationError, match="direction must be"):
        compare_steering(bridge_model, joy_vectors, "emotion/joy", 10, judges=JUDGES, direction=2)
    with pytest.raises(EvaluationError, match="at least one vector"):
        compare_steering(bridge_model, {}, "emotion/joy", 10, judges=JUDGES)
