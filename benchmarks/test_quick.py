"""The quick subset CI runs: the harness itself (sanity layer, detection and steering tables) on small inputs."""

from __future__ import annotations

import math

import pytest
from sanity import SanityError, check_detection, check_finite
from test_extraction import detection_rows
from test_steering import comparison_rows, steering_summary
from test_trained_vectors import _run_name, _Setting

import tl_traits as tt
from tl_traits.steering.method_comparison import PROMPTING, compare_steering
from tl_traits.training.vector_training import VectorTraining


def table(random_auroc: float = 0.5, real_auroc: float = 0.9) -> list[dict]:
    return [
        {"trait": t, "position": "response[:]", "method": m, "AUROC": a, "mean AUROC (all layers)": mean}
        for t in ("a/x", "b/y")
        for m, a, mean in (("mean_diff", real_auroc, 0.8), ("random_baseline", 0.6, random_auroc))
    ]


@pytest.mark.quick
def test_sanity_layer_fails_clearly_wrong_numbers():
    check_detection(table())
    with pytest.raises(SanityError, match="random_baseline's mean AUROC is 0.900"):
        check_detection(table(random_auroc=0.9))
    with pytest.raises(SanityError, match="mean_diff does not beat random_baseline on a/x"):
        check_detection(table(real_auroc=0.55))  # below random's best layer
    with pytest.raises(SanityError, match="mean_diff does not beat random_baseline on a/x"):
        check_detection(table(random_auroc=0.62, real_auroc=0.61))  # not even above random's mean
    ceiling = table(real_auroc=1.0)
    for row in ceiling:
        row["AUROC"] = 1.0  # an easy trait: random's best layer also separates perfectly
    check_detection(ceiling)
    with pytest.raises(SanityError, match="NaN or infinite"):
        check_detection(table(real_auroc=math.nan))
    with pytest.raises(SanityError, match="steering / row 0 / coherence"):
        check_finite({"steering": [{"coherence": float("inf")}]})


@pytest.mark.quick
def test_detection_table_on_a_small_set(bench_model):
    trait = tt.load_trait("emotion/joy").limit(40)
    vecs = tt.extract(
        bench_model, trait, ["mean_diff", "probe", "random_baseline"], position="response[:]", seed=0, progress=False
    )
    rows = detection_rows(vecs, "emotion/joy", "response[:]")
    assert [r["method"] for r in rows] == ["mean_diff", "probe", "random_baseline"]
    check_detection(rows)


@pytest.mark.quick
def test_steering_table_on_a_small_set(bench_model):
    trait = tt.load_trait("emotion/joy")
    vecs = tt.extract(bench_model, trait.limit(24), ["mean_diff", "random_baseline"], layers=[12], progress=False)
    found = compare_steering(
        bench_model,
        vecs,
        trait,
        12,
        judges=["vader", "perplexity"],
        dev_questions=2,
        test_questions=2,
        max_new_tokens=8,
        kl_targets=(0.1, 1.0),
        extend=0,
        refine=False,
        resamples=100,
        progress=False,
    )
    rows = comparison_rows("emotion/joy", found)
    assert [r["method"] for r in rows] == ["mean_diff", "random_baseline", PROMPTING]
    check_finite({"steering": rows})
    assert all(r["relevance"] is None or 0 <= r["relevance"] <= 100 for r in rows)
    assert all(r["gain 95% low"] <= r["gain"] <= r["gain 95% high"] for r in rows)
    assert len(steering_summary(rows)) == 3


@pytest.mark.quick
def test_out_of_distribution_tasks_are_labelled_and_new():
    """Every task set loads, every row has a label, each class has >= 5 examples, and no text is a bundled one."""
    from test_detection_ood import TASKS

    bundled = {ex.response for trait in tt.list_traits() for ex in tt.load_trait(trait).examples}
    bundled |= {ex.prompt for trait in tt.list_traits() for ex in tt.load_trait(trait).examples}
    for trait, (build, _) in TASKS.items():
        task = build()
        assert len(task.positive) >= 5 and len(task.negative) >= 5, (trait, len(task.positive), len(task.negative))
        texts = {ex.response or ex.prompt for ex in task.examples}
        assert not texts & bundled, f"{trait}: task texts copied from the bundled set"


@pytest.mark.quick
def test_a_merged_results_file_keeps_the_command_of_each_section(tmp_path):
    import json

    from results_table import Results

    first = Results("m")
    first.add("A", {"x": 1.0})
    first.write(tmp_path, "pytest a")
    second = Results("m")
    second.add("B", {"x": 2.0})
    json_path, md_path = second.write(tmp_path, "pytest b")
    data = json.loads(json_path.read_text())
    assert set(data["sections"]) == {"A", "B"} and data["commands"] == {"A": "pytest a", "B": "pytest b"}
    assert "Command: `pytest a`" in md_path.read_text()  # the section another run measured names its own command


@pytest.mark.quick
def test_a_rerun_of_one_trait_carries_the_newest_earlier_rows_of_the_others(tmp_path):
    import json

    from results_table import Results

    def earlier(name: str, x: float, command: str) -> None:
        rows = [{"trait": "joy", "x": x}, {"trait": "refusal", "x": x}]
        (tmp_path / name).write_text(json.dumps({"command": command, "sections": {"T": rows}}))

    earlier("2026-01-01-m.json", 1.0, "pytest old")
    earlier("2026-02-01-m.json", 2.0, "pytest newer")
    (tmp_path / "2026-03-01-m.json").write_text(json.dumps({"command": "pytest other", "sections": {"U": []}}))
    rerun = Results("m")
    rows = rerun.carry_earlier(tmp_path, "T", [{"trait": "refusal", "x": 9.0}])
    assert rows == [{"trait": "joy", "x": 2.0}, {"trait": "refusal", "x": 9.0}]  # the newest file holding T
    assert rerun.carry_earlier(tmp_path, "absent", [{"trait": "joy"}]) == [{"trait": "joy"}]
    rerun.add("T", rows)
    json_path, md_path = rerun.write(tmp_path, "pytest --traits refusal")
    written = json.loads(json_path.read_text())
    command = written["commands"]["T"]
    assert (
        command
        == "pytest --traits refusal (rows carried from earlier runs: joy from: pytest newer [2026-02-01-m.json])"
    )
    assert f"Command: `{command}`" in md_path.read_text()
    # a second rerun names each carried trait's own command, not the nested chain of reruns
    later = Results("m")
    rows = later.carry_earlier(tmp_path, "T", [{"trait": "joy", "x": 7.0}])
    assert rows == [{"trait": "refusal", "x": 9.0}, {"trait": "joy", "x": 7.0}]
    later.add("T", rows)
    later.write(tmp_path, "pytest --traits joy")
    carried = f"refusal from: pytest --traits refusal [{json_path.name}]"
    assert (
        json.loads(json_path.read_text())["commands"]["T"]
        == f"pytest --traits joy (rows carried from earlier runs: {carried})"
    )


@pytest.mark.quick
def test_trained_vector_files_keep_their_names_at_the_default_budget():
    """Runs at the library's default budget resume from the files earlier runs wrote (named by layers only);
    another budget gets files of its own, so neither is mistaken for the other."""
    default = VectorTraining().epochs
    assert _run_name([14], default) == "14"
    assert _run_name([9, 14], default) == "9-14"
    assert _run_name([14], default + 8) == f"14-e{default + 8}"
    assert _run_name([14], default + 8) != _run_name([14], default)
    assert _run_name([10, 11, 12], default, band=True) == "10-11-12-band"
    assert _run_name([10, 11, 12], default + 8, band=True) == f"10-11-12-band-e{default + 8}"
    assert _run_name([14], default + 8, direction="away") == f"14-e{default + 8}-away"


@pytest.mark.quick
def test_one_sided_vectors_get_their_own_files_and_steer_only_their_way():
    """A vector trained for one direction alone is named apart from the one trained both ways at the same setting
    (so neither resumes from the other's file) and is offered only when steering that way."""
    default = VectorTraining().epochs
    both, away = _Setting((14,), default), _Setting((14,), default, direction="away")
    assert both.name == "14" and away.name == "14-away"
    assert both.steers("toward") and both.steers("away")
    assert away.steers("away") and not away.steers("toward")
    assert both.one_side() == {} and away.one_side() == {"trained for": "away"}
