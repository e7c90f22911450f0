"""evaluate_steering: the dev/test protocol end to end, the split never leaking, the log, the results model."""

from __future__ import annotations

import json

import pytest

import tl_traits as tt
from tl_traits.steering import runner
from tl_traits.steering.evaluation import EvaluationError, evaluate_steering, load_evaluation
from tl_traits.steering.protocol import SteeringProtocol

QUESTIONS = ["How was your day?", "What do you think about Mondays?", "Describe your street.", "Tell me about rain."]
QUICK = SteeringProtocol(search="grid", strengths=(0.05, 0.4), max_new_tokens=6, resamples=200)


@pytest.fixture(scope="module")
def joy(bridge_model):
    trait = tt.load_trait("emotion/joy").limit(24)
    return tt.extract(bridge_model, trait, "mean_diff", layers=[8, 10], progress=False)["mean_diff"]


def exclaim_trait(questions, responses):
    return [min(100.0, 25.0 * r.count("!")) for r in responses]


def length_coherence(questions, responses):  # a cheap stand-in: long enough answers pass
    return [100.0 if len(r.split()) >= 3 else 0.0 for r in responses]


def word_overlap(questions, responses):
    return [
        100.0 * len(set(q.lower().split()) & set(r.lower().split())) / max(1, len(set(q.lower().split())))
        for q, r in zip(questions, responses)
    ]


JUDGES = [tt.FunctionJudge(exclaim_trait), tt.FunctionJudge(length_coherence, kind="coherence")]
RELEVANCE = tt.FunctionJudge(word_overlap, kind="relevance", name="overlap")


def test_choose_on_dev_report_on_test(bridge_model, joy, tmp_path):
    log = tmp_path / "eval.jsonl"
    res = evaluate_steering(
        bridge_model,
        joy,
        "emotion/joy",
        layers=[8, 10],
        judges=JUDGES,
        relevance=RELEVANCE,
        questions=QUESTIONS,
        protocol=QUICK,
        log=log,
        progress=False,
    )
    dev, test = QUESTIONS[0::2], QUESTIONS[1::2]
    assert all(r.split == "dev" and r.answers.questions == dev for r in res.runs)
    assert res.baseline["dev"].questions == dev and res.baseline["test"].questions == test
    outcome = res.outcomes["mean_diff"]
    assert outcome.chosen is res.best(res.runs)  # the winner on dev ...
    assert outcome.test.answers.questions == test  # ... scored on the test questions
    assert (outcome.test.candidate, outcome.test.strength) == (outcome.chosen.candidate, outcome.chosen.strength)
    gain = outcome.gain()
    diffs = [a - b for a, b in zip(outcome.test.answers.scores["score"], outcome.baseline.scores["score"])]
    assert gain[0] == pytest.approx(sum(diffs) / len(diffs)) and gain[1] <= gain[0] <= gain[2]
    for run in res.runs:  # every answer has every part and its steering score
        assert set(run.answers.scores) == {"trait", "coherence", "relevance", "score"}
        assert all(len(v) == len(dev) for v in run.answers.scores.values())
    head = res.headline()
    assert head["test_score"] == outcome.score and head["unsteered_test_score"] == res.baseline["test"].score
    assert head["layers"] == list(outcome.chosen.candidate.layers) and head["strength"] == outcome.chosen.strength
    table = res.table()
    assert [row["setting"] for row in table] == ["mean_diff, layer 8", "mean_diff, layer 10"]
    text = str(table)
    assert "dev score" in text.splitlines()[1] and "unsteered" in text
    assert len({len(line) for line in text.splitlines()[1:3]}) == 1  # header and rule line up
    again, header = load_evaluation(log)  # the report reads it back without a model
    assert (
        header["dev"] == dev
        and header["test"] == test
        and header["judges"] == ["exclaim_trait", "length_coherence", "overlap"]
    )
    assert again.outcomes["mean_diff"].test.answers.scores == outcome.test.answers.scores
    assert [r.strength for r in again.runs] == [r.strength for r in res.runs]


def test_the_test_split_never_decides(bridge_model, joy):
    """A trait judge that rewards strength on dev questions only: the test half cannot change the choice."""
    dev = set(QUESTIONS[0::2])

    def dev_loves_strength(questions, responses):
        return [100.0 if q in dev else 0.0 for q in questions]

    def both_halves(strengths):
        return evaluate_steering(
            bridge_model,
            joy,
            "emotion/joy",
            layers=[10],
            judges=[tt.FunctionJudge(dev_loves_strength), tt.FunctionJudge(length_coherence, kind="coherence")],
            relevance=RELEVANCE,
            questions=QUESTIONS,
            protocol=QUICK.with_(strengths=strengths),
            progress=False,
        )

    res = both_halves((0.05, 0.4))
    assert res.outcomes["mean_diff"].test.answers.trait == 0.0  # the test half saw its own (bad) scores ...
    assert res.outcomes["mean_diff"].chosen.answers.trait == 100.0  # ... but the choice was made on dev


def test_resume_generates_nothing_and_a_changed_setting_is_refused(bridge_model, joy, tmp_path, monkeypatch):
    log = tmp_path / "eval.jsonl"
    kwargs = dict(
        layers=[10],
        judges=JUDGES,
        relevance=RELEVANCE,
        questions=QUESTIONS[:2],
        protocol=QUICK,
        log=log,
        progress=False,
    )
    first = evaluate_steering(bridge_model, joy, "emotion/joy", **kwargs)
    with log.open("ab") as fh:
        fh.write('{"type": "run", "answers": ["café 😀'.encode()[:-2])  # a crash inside an emoji's bytes
    monkeypatch.setattr(runner, "sweep_generate", lambda *a, **k: pytest.fail("generated again"))
    monkeypatch.setattr(runner, "generate", lambda *a, **k: pytest.fail("unsteered answers generated again"))
    again = evaluate_steering(bridge_model, joy, "emotion/joy", **kwargs)
    assert [r.answers.scores for r in again.runs] == [r.answers.scores for r in first.runs]
    assert log.read_text(encoding="utf-8").endswith("\n")
    with pytest.raises(EvaluationError, match="records another evaluation.*protocol"):
        evaluate_steering(bridge_model, joy, "emotion/joy", **{**kwargs, "protocol": QUICK.with_(max_new_tokens=7)})


def test_a_refitted_judge_is_never_mixed_into_a_log_and_rejudging_generates_nothing(
    bridge_model, joy, tmp_path, monkeypatch
):
    from tl_traits.steering.rejudge import rejudge_log

    def versioned(fn, version):
        judge = tt.FunctionJudge(fn, name="exclaim_trait")
        judge.version = version  # a fitted judge's calibration hash
        return judge

    def question_marks(questions, responses):  # the "refitted" trait judge: another score under the same name
        return [min(100.0, 50.0 * r.count("?")) for r in responses]

    log = tmp_path / "eval.jsonl"
    kwargs = dict(layers=[10], relevance=RELEVANCE, questions=QUESTIONS[:2], protocol=QUICK, log=log, progress=False)
    old = [versioned(exclaim_trait, "v1"), JUDGES[1]]
    first = evaluate_steering(bridge_model, joy, "emotion/joy", judges=old, **kwargs)
    assert load_evaluation(log)[1]["judge_versions"] == {"trait": "v1"}
    new = [versioned(question_marks, "v2"), JUDGES[1]]
    with pytest.raises(EvaluationError, match="another version of its judges.*rejudge_log"):
        evaluate_steering(bridge_model, joy, "emotion/joy", judges=new, **kwargs)
    with pytest.raises(EvaluationError, match="was judged by"):
        rejudge_log(
            log, bridge_model, judges=[tt.FunctionJudge(question_marks), JUDGES[1]], relevance=RELEVANCE, progress=False
        )
    rejudge_log(log, bridge_model, judges=new, relevance=RELEVANCE, progress=False)
    monkeypatch.setattr(runner, "sweep_generate", lambda *a, **k: pytest.fail("generated again"))
    monkeypatch.setattr(runner, "generate", lambda *a, **k: pytest.fail("unsteered answers generated again"))
    again = evaluate_steering(bridge_model, joy, "emotion/joy", judges=new, **kwargs)
    assert [r.answers.responses for r in again.runs] == [r.answers.responses for r in first.runs]
    for run in again.runs:
        assert run.answers.scores["trait"] == question_marks(None, run.answers.responses)
    assert load_evaluation(log)[1]["judge_versions"] == {"trait": "v2"}


def test_an_old_log_is_refused_with_the_fix(bridge_model, joy, tmp_path):
    log = tmp_path / "eval.jsonl"
    log.write_text(json.dumps({"type": "header", "model": {}, "questions": ["q"]}) + "\n", encoding="utf-8")
    with pytest.raises(EvaluationError, match="earlier tl_traits.*new log path"):
        evaluate_steering(
            bridge_model,
            joy,
            "emotion/joy",
            judges=JUDGES,
            relevance=RELEVANCE,
            questions=QUESTIONS,
            protocol=QUICK,
            log=log,
            progress=False,
        )
    with pytest.raises(EvaluationError, match="earlier tl_traits"):
        load_evaluation(log)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"type": "header"}\n{"type": run}\n', encoding="utf-8")
    with pytest.raises(EvaluationError, match=r"broken.jsonl line 2 is not valid JSON"):
        load_evaluation(broken)


def test_bad_arguments_are_refused(bridge_model, joy):
    with pytest.raises(EvaluationError, match="needs a trait judge and a coherence judge"):
        evaluate_steering(bridge_model, joy, "emotion/joy", judges=[exclaim_trait], questions=QUESTIONS, progress=False)
    with pytest.raises(EvaluationError, match="direction must be"):
        evaluate_steering(bridge_model, joy, "emotion/joy", judges=JUDGES, direction=2, progress=False)
    with pytest.raises(EvaluationError, match="needs a relevance judge"):
        evaluate_steering(
            bridge_model, joy, "emotion/joy", judges=JUDGES, relevance=None, questions=QUESTIONS, progress=False
        )
    with pytest.raises(EvaluationError, match="both halves need at least one"):
        evaluate_steering(
            bridge_model,
            joy,
            "emotion/joy",
            judges=JUDGES,
            relevance=RELEVANCE,
            questions=QUESTIONS[:1],
            progress=False,
        )
    with pytest.raises(EvaluationError, match=r"layers \[3\] are not among the vectors' layers"):
        evaluate_steering(
            bridge_model, joy, "emotion/joy", layers=[3], judges=JUDGES, relevance=RELEVANCE, progress=False
        )
    with pytest.raises(tt.TlTraitsError, match="no setting"):
        evaluate_steering(bridge_model, joy, "emotion/joy", judges=JUDGES, subset=3, progress=False)


def test_refusal_toward_scores_trait_and_coherence_only(bridge_model):
    """An induced refusal does not answer the request by design: its score leaves relevance out."""
    plan = tt.load_trait("alignment/refusal").steering_questions(1)
    assert plan.parts == ("trait", "coherence") and "refusing plainly benign requests" in plan.measures
    away = tt.load_trait("alignment/refusal").steering_questions(-1)
    assert away.parts == ("trait", "coherence", "relevance") and set(away.dev).isdisjoint(plan.dev)
    from tl_traits.steering.scoring import steering_score

    assert steering_score({"trait": 90, "coherence": 90, "relevance": 5}, plan.parts) == pytest.approx(90)
    assert steering_score({"trait": 10, "coherence": 80, "relevance": 80}, away.parts, -1) == pytest.approx(
        steering_score({"trait": 90, "coherence": 80, "relevance": 80}, away.parts, 1)
    )


def test_steering_score_is_the_harmonic_mean_in_the_asked_direction():
    from tl_traits.steering.scoring import combined_score

    assert combined_score(90, 90, 90) == pytest.approx(90)
    # one poor part drags it down
    assert combined_score(100, 100, 25) == pytest.approx(3 / (1 / 100 + 1 / 100 + 1 / 25))
    assert combined_score(10, 80, 80, direction=-1) == pytest.approx(combined_score(90, 80, 80))
    assert combined_score(100, 0, 100) == 0.0
    assert combined_score(None, 80, 80) is None
