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


def test_resume_after_a_cut_inside_a_multibyte_character(bridge_model, joy, tmp_path, monkeypatch):
    log = tmp_path / "eval.jsonl"
    judges = [exclaim_trait, tt.FunctionJudge(length_coherence, kind="coherence")]
    kwargs = dict(layers=[10], questions=QUESTIONS[:1], coefficients=[0.3], judges=judges, max_new_tokens=6, log=log)
    first = evaluate_steering(bridge_model, joy, "emotion/joy", **kwargs)
    whole = log.read_bytes()
    with log.open("ab") as fh:
        fh.write('{"type": "run", "responses": ["café 😀'.encode()[:-2])  # a crash between an emoji's bytes
    monkeypatch.setattr(evaluation, "sweep_generate", lambda *a, **k: pytest.fail("generated again"))
    monkeypatch.setattr(evaluation, "generate", lambda *a, **k: pytest.fail("baseline generated again"))
    again = evaluate_steering(bridge_model, joy, "emotion/joy", **kwargs)
    assert [r.trait_mean for r in again.runs] == [r.trait_mean for r in first.runs]
    assert log.read_bytes() == whole  # the fragment is gone, the whole lines kept


def test_a_log_with_a_broken_line_names_the_file_and_line(bridge_model, joy, tmp_path):
    log = tmp_path / "eval.jsonl"
    log.write_text('{"type": "header"}\n{"type": run}\n', encoding="utf-8")
    with pytest.raises(EvaluationError, match=r"eval.jsonl line 2 is not valid JSON"):
        evaluate_steering(bridge_model, joy, "emotion/joy", layers=[10], questions=QUESTIONS[:1], coefficients=[0.3],
                          judges=[exclaim_trait, tt.FunctionJudge(length_coherence, kind="coherence")], log=log)


def test_evaluation_errors(bridge_model, joy):
    with pytest.raises(EvaluationError, match="needs a trait judge and a coherence judge"):
        evaluate_steering(bridge_model, joy, "emotion/joy", judges=[exclaim_trait], questions=QUESTIONS)
    with pytest.raises(EvaluationError, match="direction must be"):
        evaluate_steering(bridge_model, joy, "emotion/joy", direction=2)


# -- the steering score: trait x coherence x relevance ------------------------------------------------
def test_combined_score_is_the_harmonic_mean_in_the_asked_direction():
    from tl_traits.steering.search import combined_score

    assert combined_score(90, 90, 90) == pytest.approx(90)
    assert combined_score(100, 100, 25) == pytest.approx(3 / (1 / 100 + 1 / 100 + 1 / 25))  # 50: one poor part drags it down
    assert combined_score(10, 80, 80, direction=-1) == pytest.approx(combined_score(90, 80, 80))
    assert combined_score(100, 0, 100) == 0.0
    assert combined_score(None, 80, 80) is None


def word_overlap(questions, responses):
    return [100.0 * len(set(q.lower().split()) & set(r.lower().split())) / max(1, len(set(q.lower().split())))
            for q, r in zip(questions, responses)]


def test_the_steering_score_counts_relevance_and_records_every_response(bridge_model, joy, tmp_path):
    judges = [tt.FunctionJudge(exclaim_trait), tt.FunctionJudge(length_coherence, kind="coherence"),
              tt.FunctionJudge(word_overlap, kind="relevance", name="overlap")]
    res = evaluate_steering(bridge_model, joy, "emotion/joy", layers=[10], questions=QUESTIONS, coefficients=[0.0, 0.6],
                            judges=judges, max_new_tokens=12, log=tmp_path / "eval.jsonl")
    for run in res.runs:
        assert set(run.scores) == {"trait", "coherence", "relevance", "combined"}
        assert all(len(v) == len(QUESTIONS) for v in run.scores.values())
        expected = [tt_score for tt_score in run.scores["combined"] if tt_score is not None]
        assert run.combined_mean == pytest.approx(sum(expected) / len(expected))
    row = res.table()[0]
    assert row["steering_score"] == max(r.combined_mean for r in res.runs)
    assert res.best_run(10).combined_mean == row["steering_score"]
    assert res.baseline_combined == pytest.approx(res.runs[0].combined_mean)  # strength 0 is the baseline
    again, header = evaluation.load_evaluation(tmp_path / "eval.jsonl")  # the report reads it back without a model
    assert header["judges"] == ["exclaim_trait", "length_coherence", "overlap"] and header["objective"] == "combined"
    assert again.runs[1].scores == res.runs[1].scores and again.baseline_scores == res.baseline_scores


def test_objective_and_relevance_are_checked(bridge_model, joy):
    judges = [tt.FunctionJudge(exclaim_trait), tt.FunctionJudge(length_coherence, kind="coherence")]
    with pytest.raises(EvaluationError, match="objective must be one of combined, coherent_delta"):
        evaluate_steering(bridge_model, joy, "emotion/joy", layers=[10], questions=QUESTIONS, judges=judges, objective="best")
    with pytest.raises(EvaluationError, match="needs a relevance judge"):
        evaluate_steering(bridge_model, joy, "emotion/joy", layers=[10], questions=QUESTIONS, judges=judges, relevance=None)
    old = evaluate_steering(bridge_model, joy, "emotion/joy", layers=[10], questions=QUESTIONS, judges=judges, relevance=None,
                            objective="coherent_delta", coefficients=[0.0, 0.5], max_new_tokens=8)
    assert old.table()[0]["steering_score"] is None and old.runs[0].relevance_mean is None
