"""compare_steering: methods searched in lockstep, each chosen on dev; prompting chosen on dev among its templates."""

from __future__ import annotations

import pytest

import tl_traits as tt
from tl_traits.steering.evaluation import EvaluationError, evaluate_steering
from tl_traits.steering.method_comparison import PROMPTING, compare_steering
from tl_traits.steering.protocol import SteeringProtocol
from tl_traits.steering.runner import PROMPT_TEMPLATES

QUESTIONS = ["How was your weekend?", "Describe your street.", "What did you eat today?", "Tell me about rain."]
QUICK = SteeringProtocol(search="grid", strengths=(0.1, 0.5), max_new_tokens=8, resamples=200)


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
    trait = tt.TraitDataset(
        "joy",
        tt.load_trait("emotion/joy").positive,
        tt.load_trait("emotion/joy").negative,
        tt.load_trait("emotion/joy").definition,
        tuple(QUESTIONS),
    )
    found = compare_steering(
        bridge_model, joy_vectors, trait, 10, judges=JUDGES, relevance=RELEVANCE, protocol=QUICK, progress=False
    )
    assert list(found.outcomes) == ["mean_diff", "random_baseline", PROMPTING]
    alone = evaluate_steering(
        bridge_model,
        joy_vectors["mean_diff"],
        trait,
        layers=[10],
        judges=JUDGES,
        relevance=RELEVANCE,
        protocol=QUICK,
        progress=False,
    )
    mine = [r for r in found.runs if r.group == "mean_diff"]
    assert [r.answers.responses for r in mine] == [r.answers.responses for r in alone.runs]  # same text in one batch
    assert found.outcomes["mean_diff"].score == alone.outcomes["mean_diff"].score
    prompting = found.outcomes[PROMPTING]
    assert prompting.chosen.prompt in PROMPT_TEMPLATES and prompting.chosen.candidate is None
    assert len([r for r in found.runs if r.group == PROMPTING]) == len(PROMPT_TEMPLATES)  # every template tried on dev
    assert prompting.test.answers.responses != found.baseline["test"].responses  # the system prompt changed the answers
    summary = found.summary()
    assert [row["method"] for row in summary] == ["mean_diff", "random_baseline", PROMPTING]
    gap = found.outcomes["mean_diff"].gap_to(prompting)
    assert summary[0]["vs prompting"] == pytest.approx(gap[0])
    assert "vs prompting" in str(summary).splitlines()[1]


def test_away_and_bad_arguments(bridge_model, joy_vectors):
    away = compare_steering(
        bridge_model,
        {"mean_diff": joy_vectors["mean_diff"]},
        "emotion/joy",
        10,
        judges=JUDGES,
        relevance=RELEVANCE,
        direction=-1,
        protocol=QUICK.with_(dev_questions=2, test_questions=2),
        prompting=False,
        progress=False,
    )
    assert list(away.outcomes) == ["mean_diff"] and away.direction == -1
    assert "away from the trait" in str(away.summary())
    with pytest.raises(EvaluationError, match="kind 'relevance'"):
        compare_steering(
            bridge_model, joy_vectors, "emotion/joy", 10, judges=JUDGES, relevance=JUDGES[0], progress=False
        )
    with pytest.raises(EvaluationError, match="direction must be"):
        compare_steering(bridge_model, joy_vectors, "emotion/joy", 10, judges=JUDGES, direction=2, progress=False)
    with pytest.raises(EvaluationError, match="at least one vector"):
        compare_steering(bridge_model, {}, "emotion/joy", 10, judges=JUDGES, progress=False)
