"""evaluate_steering: baseline, coherent delta, search moves, manual grid, JSONL resume."""

from __future__ import annotations

import json

import pytest

import tl_traits as tt
from tl_traits.steering import evaluation
from tl_traits.steering.evaluation import EvaluationError, evaluate_steering

QUESTIONS = ["How was your day?", "What do you think about Mondays?"]


@pytest.fixture(scope="module")
def joy(bridge_model):
    trait = tt.load_trait("emotion/joy").limit(24)
    return tt.extract(bridge_model, trait, "mean_diff", layers=[10], progress=False)["mean_diff"]


def exclaim_trait(questions, responses):
    return [min(100.0, 25.0 * r.count("!")) for r in responses]


def length_coherence(questions, responses):  # a cheap stand-in: long enough answers pass
    return [100.0 if len(r.split()) >= 3 else 0.0 for r in responses]


def test_grid_and_coherent_delta(bridge_model, joy, tmp_path):
    res = evaluate_steering(
        bridge_model, joy, "emotion/joy", layers=[10], questions=QUESTIONS, coefficients=[0.0, 0.5],
        judges=[tt.FunctionJudge(exclaim_trait), tt.FunctionJudge(length_coherence, kind="coherence")],
        max_new_tokens=12, log=tmp_path / "eval.jsonl",
    )
    assert [r.strength for r in res.runs] == [0.0, 0.5]
    assert res.runs[0].trait_mean == res.baseline_trait  # strength 0 reproduces the baseline
    row = res.table()[0]
    assert row["layer"] == 10 and row["runs"] == 2
    passing = [r for r in res.runs if r.coherence_mean >= 70]
    assert row["coherent_delta"] == max(r.trait_mean - res.baseline_trait for r in passing)
    lines = [json.loads(x) for x in (tmp_path / "eval.jsonl").read_text().splitlines()]
    assert [x["type"] for x in lines] == ["header", "baseline", "run", "run"]


def test_search_moves_up_when_coherent_and_down_when_not(bridge_model, joy):
    always = lambda q, r: [100.0] * len(r)  # noqa: E731
    never = lambda q, r: [0.0] * len(r)  # noqa: E731
    kwargs = dict(layers=[10], questions=QUESTIONS[:1], steps=3, max_new_tokens=4)
    up = evaluate_steering(bridge_model, joy, "emotion/joy", judges=[exclaim_trait, tt.FunctionJudge(always, kind="coherence")], **kwargs)
    assert [round(r.strength, 4) for r in up.runs] == [0.7, round(0.7 * 1.3, 4), round(0.7 * 1.3**2, 4)]
    down = evaluate_steering(bridge_model, joy, "emotion/joy", judges=[exclaim_trait, tt.FunctionJudge(never, kind="coherence")], direction=-1, **kwargs)
    assert [round(r.strength, 4) for r in down.runs] == [0.7, round(0.7 * 0.85, 4), round(0.7 * 0.85**2, 4)]
    assert all(r.coef < 0 for r in down.runs)  # direction -1 steers away
    assert down.coherent_delta(10) is None and down.table()[0]["best_coherence_seen"] == 0.0


def test_resume_skips_recorded_settings(bridge_model, joy, tmp_path, monkeypatch):
    log = tmp_path / "eval.jsonl"
    judges = [exclaim_trait, tt.FunctionJudge(length_coherence, kind="coherence")]
    kwargs = dict(layers=[10], questions=QUESTIONS[:1], coefficients=[0.3, 0.6], judges=judges, max_new_tokens=6, log=log)
    first = evaluate_steering(bridge_model, joy, "emotion/joy", **kwargs)
    with log.open("a") as fh:
        fh.write('{"type": "run", "layer": 10, "co')  # a crash mid-line
    monkeypatch.setattr(evaluation, "sweep_generate", lambda *a, **k: pytest.fail("generated again"))
    monkeypatch.setattr(evaluation, "generate", lambda *a, **k: pytest.fail("baseline generated again"))
    again = evaluate_steering(bridge_model, joy, "emotion/joy", **kwargs)
    assert [(r.layer, r.coef, r.trait_mean) for r in again.runs] == [(r.layer, r.coef, r.trait_mean) for r in first.runs]
    assert log.read_text().endswith("\n")
    with pytest.raises(EvaluationError, match="records another evaluation.*max_new_tokens"):
        evaluate_steering(bridge_model, joy, "emotion/joy", **{**kwargs, "max_new_tokens": 7})


def test_evaluation_errors(bridge_model, joy):
    with pytest.raises(EvaluationError, match="needs a trait judge and a coherence judge"):
        evaluate_steering(bridge_model, joy, "emotion/joy", judges=[exclaim_trait], questions=QUESTIONS)
    with pytest.raises(EvaluationError, match="direction must be"):
        evaluate_steering(bridge_model, joy, "emotion/joy", direction=2)
