"""Judge calibration: agreement statistics, the bundled rated set, calibrate() on any judge, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import tl_traits as tt
from tl_traits.app.cli import EXIT_BAD_INPUT, EXIT_OK, main
from tl_traits.core.stats import StatsError, fit_logistic
from tl_traits.judging.calibration import (
    LABEL_CUT,
    CalibrationError,
    agreement,
    calibrate,
    calibration_table,
    load_calibration_set,
)


def test_agreement_counts_the_gate_and_the_ranking():
    ratings = [90, 80, 75, 40, 20, 65]
    scores = [95, 60, 85, 80, 10, None]  # one unscored
    stats = agreement(scores, ratings, gate=70)
    assert stats["n"] == 5 and stats["unscored"] == 1 and stats["n_positive"] == 3
    assert stats["passed"] == 3  # 95, 85, 80
    assert stats["precision"] == pytest.approx(2 / 3)  # 40 passed wrongly
    assert stats["recall"] == pytest.approx(2 / 3)  # 80 failed wrongly
    # positives {95, 60, 85} vs negatives {80, 10}: 95 and 85 beat both, 60 beats only 10 -> 5 / 6
    assert stats["auroc"] == pytest.approx(5 / 6)


def test_agreement_is_undefined_rather_than_invented():
    stats = agreement([50, 60], [80, 90], gate=70)
    assert stats["auroc"] is None and stats["passed"] == 0 and stats["precision"] is None and stats["recall"] == 0


def test_the_bundled_set_is_rated_split_and_covers_every_trait():
    rows = load_calibration_set()
    assert len(rows) >= 300
    assert {r.trait for r in rows} == {"emotion/joy", "alignment/refusal", "style/formality", "alignment/sycophancy"}
    assert {r.split for r in rows} == {"fit", "heldout"}
    assert {r.source for r in rows} == {"steered", "unsteered", "written", "prompted"}
    for r in rows:
        assert set(r.ratings) == {"coherence", "relevance", "trait"}
        assert all(0 <= v <= 100 for v in r.ratings.values())
    heldout = load_calibration_set(split="heldout")
    assert 0.4 < len(heldout) / len(rows) < 0.6
    assert {r.id for r in heldout}.isdisjoint({r.id for r in load_calibration_set(split="fit")})
    # both sides of every gate are present, or no judge could be checked
    assert 0.15 < sum(r.ratings["coherence"] >= LABEL_CUT for r in rows) / len(rows) < 0.85
    with pytest.raises(CalibrationError, match="unknown split"):
        load_calibration_set(split="test")


def _rows_file(tmp_path):
    rows = [
        {
            "id": f"r{i}",
            "trait": "emotion/joy",
            "question": "How are you?",
            "response": text,
            "split": "heldout",
            "ratings": {"coherence": coh, "relevance": 80, "trait": joy},
        }
        for i, (text, coh, joy) in enumerate(
            [
                ("I am wonderful, thank you!", 95, 90),
                ("I feel sad and tired today.", 92, 10),
                ("the the the the the the", 15, 50),
                ("zzzzzzzz", 2, 50),
            ]
        )
    ]
    path = tmp_path / "rated.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_calibrate_takes_any_judge_and_keeps_the_text_behind_each_score(tmp_path):
    rows = load_calibration_set(_rows_file(tmp_path))
    letters = tt.FunctionJudge(
        lambda qs, rs: [100.0 * sum(c.isalpha() for c in set(r)) / 26 for r in rs], kind="coherence", name="letters"
    )
    result = calibrate(letters, rows=rows)
    assert result.scale == "coherence" and result.n == 4 and result.n_positive == 2
    assert {i["id"] for i in result.items} == {"r0", "r1", "r2", "r3"}
    assert all("response" in i for i in result.items)
    joy = calibrate("vader", rows=rows)  # a trait judge is checked on its own trait's ratings
    assert joy.scale == "trait" and joy.trait == "emotion/joy" and joy.auroc == 1.0
    assert "| vader | trait | emotion/joy |" in calibration_table([joy])
    with pytest.raises(CalibrationError, match="no calibration rows.*refusal"):
        calibrate("refusal", rows=rows)


def test_disagreements_put_wrongly_passed_text_first(tmp_path):
    rows = load_calibration_set(_rows_file(tmp_path))
    always = tt.FunctionJudge(lambda qs, rs: [90.0] * len(rs), kind="coherence", name="always")
    worst = calibrate(always, rows=rows).disagreements(2)
    assert [w["id"] for w in worst] == ["r3", "r2"]  # rated 2, then 15, both passed


def test_fit_logistic_separates_and_matches_a_reference_solution():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(400, 3, generator=gen)
    logits = 2.0 * x[:, 0] - 1.0 * x[:, 1] + 0.5
    y = (torch.rand(400, generator=gen) < torch.sigmoid(logits)).float()
    w, b = fit_logistic(x, y, l2=1.0)
    sklearn = pytest.importorskip("sklearn.linear_model")
    ref = sklearn.LogisticRegression(C=1.0, tol=1e-10, max_iter=1000).fit(x.numpy(), y.numpy())
    torch.testing.assert_close(w, torch.tensor(ref.coef_[0], dtype=torch.float32), atol=1e-4, rtol=1e-4)
    assert b == pytest.approx(float(ref.intercept_[0]), abs=1e-4)
    with pytest.raises(StatsError, match="both classes"):
        fit_logistic(x, torch.ones(400))


def test_cli_calibrates_a_model_free_judge(capsys):
    with pytest.raises(SystemExit) as done:
        main(["judges", "calibrate", "vader", "--json", "--examples", "1"])
    assert done.value.code == EXIT_OK
    (row,) = json.loads(capsys.readouterr().out)
    assert row["judge"] == "vader" and row["split"] == "heldout" and row["trait"] == "emotion/joy"
    assert 0 <= row["auroc"] <= 1 and row["disagreements"][0]["response"] is not None
    with pytest.raises(SystemExit) as bad:
        main(["judges", "calibrate", "vader", "--split", "test"])
    assert bad.value.code == EXIT_BAD_INPUT


class _RawJudge:
    """A judge object used as it is (make_judge does not wrap it), whose scores are not cleaned."""

    name, kind, trait = "raw", "coherence", None

    def __init__(self, scores):
        self.scores = scores

    def score(self, questions, responses):
        return list(self.scores)


@pytest.mark.parametrize("nan", [float("nan"), np.float32("nan"), np.float64("nan"), torch.tensor(float("nan"))])
def test_a_nan_score_is_unscored_never_zero_and_never_a_win(tmp_path, nan):
    """np.float32 NaN was clipped to 0 and counted as scored; a raw NaN was ranked as a win (AUROC 1.000)."""
    rows = load_calibration_set(_rows_file(tmp_path))  # coherence 95, 92, 15, 2
    half = tt.FunctionJudge(lambda qs, rs: [90.0, nan, 10.0, nan], kind="coherence", name="half")
    result = calibrate(half, rows=rows)
    assert result.unscored == 2 and result.n == 2 and result.passed == 1
    assert [i["score"] for i in result.items] == [90.0, None, 10.0, None]
    broken = calibrate(_RawJudge([nan] * 4), rows=rows)
    assert broken.unscored == 4 and broken.n == 0 and broken.auroc is None and broken.passed == 0
    assert agreement([nan, nan, 80.0], [90, 20, 85], gate=70)["unscored"] == 2


def test_the_report_says_how_many_rows_the_judge_could_not_score(tmp_path, capsys, monkeypatch):
    rows = load_calibration_set(_rows_file(tmp_path))
    result = calibrate(_RawJudge([90.0, None, 10.0, float("nan")]), rows=rows)
    table = calibration_table([result])
    assert "| n | unscored |" in table and "| raw | coherence | - | heldout | 2 | 2 |" in table
    import tl_traits.app.cli.judges as cli_judges

    monkeypatch.setattr(cli_judges, "calibrate", lambda *a, **k: result)
    with pytest.raises(SystemExit) as done:
        main(["judges", "calibrate", "vader"])
    assert done.value.code == EXIT_OK
    assert "raw could not score 2 of 4 responses (None or NaN)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "line, message",
    [
        ('"just text"', "must be a JSON object.*not str"),
        ("42", "must be a JSON object.*not int"),
        ("null", "must be a JSON object.*not NoneType"),
        (
            '{"id": "x", "trait": "t", "question": "q", "response": "r", "split": "fit", "ratings": [1, 2, 3]}',
            "ratings must be an object.*not list",
        ),
        (
            '{"id": "x", "trait": "t", "question": "q", "response": "r", "split": "fit", '
            '"ratings": {"coherence": "high"}}',
            "rating 'coherence' must be a finite number",
        ),
        (
            '{"id": "x", "trait": "t", "question": "q", "response": "r", "split": "fit", '
            '"ratings": {"coherence": 250}}',
            "rating 'coherence' is 250; ratings are 0-100",
        ),
        (
            '{"id": "x", "trait": "t", "question": "q", "response": 7, "split": "fit", "ratings": {}}',
            "response must be text",
        ),
        ('{"id": "x", "trait": "t", "question": "q", "split": "fit", "ratings": {}}', "lacks \\['response'\\]"),
    ],
)
def test_a_broken_calibration_row_names_its_file_and_line(tmp_path, line, message):
    path = _rows_file(tmp_path)
    path.write_text(path.read_text().splitlines()[0] + "\n" + line + "\n")
    with pytest.raises(CalibrationError, match=f"rated.jsonl line 2: .*{message}"):
        load_calibration_set(path)
    with pytest.raises(CalibrationError, match="cannot read the calibration set"):
        load_calibration_set(tmp_path / "missing.jsonl")


def test_a_gate_must_be_a_finite_number(tmp_path):
    rows = load_calibration_set(_rows_file(tmp_path))
    for bad in (float("nan"), float("inf")):
        with pytest.raises(CalibrationError, match="gate must be a finite number"):
            calibrate("vader", rows=rows, gate=bad)
    assert calibrate("vader", rows=rows, gate=np.float32(50)).gate == 50.0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["vader", "--gate", "nan"], "--gate"),
        (["vader", "--gate", "1e39"], "--gate"),
        (["vader", "--examples", "-1"], "--examples"),
        ([","], "no judge named"),
        ([" , "], "no judge named"),
    ],
)
def test_cli_calibrate_refuses_what_it_cannot_calibrate(capsys, argv, message):
    """`--gate nan` and `--examples -1` were accepted; `calibrate ,` printed an empty table with exit 0."""
    with pytest.raises(SystemExit) as done:
        main(["judges", "calibrate", *argv])
    out, err = capsys.readouterr()
    assert done.value.code == EXIT_BAD_INPUT and message in err and "| judge |" not in out
