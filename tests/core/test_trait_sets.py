"""Trait sets: bundled sets, folder / JSONL / HF dataset loaders, splits, validation errors."""

from __future__ import annotations

import json

import pytest

import tl_traits as tt
from tl_traits.core.trait_sets import TraitDataError, TraitDataset, TraitExample

BUNDLED = ["alignment/refusal", "alignment/sycophancy", "emotion/joy", "style/formality"]


def test_bundled_sets_are_complete():
    assert tt.list_traits() == BUNDLED
    for name in BUNDLED:
        trait = tt.load_trait(name)
        assert len(trait.positive) >= 40 and len(trait.negative) >= 40, name
        assert len(trait.questions) >= 20, name
        assert trait.has_responses and trait.paired, name
        assert trait.description("high") and trait.description("low"), name
        assert not set(trait.questions) & {e.prompt for e in trait.examples}, name
        trait.validate()


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_folder_jsonl_and_hf_dataset_loaders(tmp_path):
    folder = tmp_path / "kindness"
    folder.mkdir()
    write_jsonl(folder / "positive.jsonl", [{"prompt": "p1", "response": "kind"}, {"prompt": "p2", "system": "s"}])
    write_jsonl(folder / "negative.jsonl", [{"prompt": "p1", "response": "cruel"}, {"prompt": "p2", "system": "s"}])
    (folder / "definition.txt").write_text("Kindness.\nHIGH: warm\nLOW: cold\n")
    (folder / "steering.json").write_text(json.dumps({"questions": ["q1"], "eval_prompt": "Rate {answer}"}))
    trait = tt.load_trait(folder)
    assert trait.name == "kindness" and trait.paired and not trait.has_responses
    assert trait.positive[1] == TraitExample("p2", None, "s")
    assert (trait.questions, trait.eval_prompt, trait.description("LOW")) == (("q1",), "Rate {answer}", "cold")

    rows = [
        {"prompt": "a", "label": 1},
        {"prompt": "b", "label": "negative"},
        {"prompt": "c", "response": "r", "label": True},
    ]
    write_jsonl(tmp_path / "set.jsonl", rows)
    from_file = tt.load_trait(tmp_path / "set.jsonl")
    assert [e.prompt for e in from_file.positive] == ["a", "c"] and [e.prompt for e in from_file.negative] == ["b"]

    import datasets

    hf_rows = [
        {"prompt": r["prompt"], "response": r.get("response"), "label": int(r["label"] in (1, True))} for r in rows
    ]
    from_hf = tt.load_trait(datasets.Dataset.from_list(hf_rows), name="hf-set")
    assert from_hf.examples == from_file.examples and from_hf.name == "hf-set"
    dict_ds = datasets.DatasetDict({"train": datasets.Dataset.from_list(hf_rows)})
    assert tt.load_trait(dict_ds).examples == from_file.examples


def test_loader_errors_say_what_is_wrong(tmp_path):
    with pytest.raises(TraitDataError, match="no trait set 'emotion/joyy'.*emotion/joy"):
        tt.load_trait("emotion/joyy")
    (tmp_path / "bad.jsonl").write_text('{"prompt": "a", "label": 1}\n{oops\n')
    with pytest.raises(TraitDataError, match="line 2 is not valid JSON"):
        tt.load_trait(tmp_path / "bad.jsonl")
    write_jsonl(tmp_path / "nolabel.jsonl", [{"prompt": "a"}])
    with pytest.raises(TraitDataError, match="no 'label'"):
        tt.load_trait(tmp_path / "nolabel.jsonl")
    write_jsonl(tmp_path / "badlabel.jsonl", [{"prompt": "a", "label": "maybe"}])
    with pytest.raises(TraitDataError, match="'maybe' is not 1/0"):
        tt.load_trait(tmp_path / "badlabel.jsonl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TraitDataError, match="needs positive.jsonl and negative.jsonl"):
        tt.load_trait(tmp_path / "empty")


def test_validate_refuses_empty_and_unbalanced():
    pos = [TraitExample(f"p{i}", "r") for i in range(10)]
    neg = [TraitExample(f"n{i}", "r") for i in range(4)]
    with pytest.raises(TraitDataError, match="0 negative.*at least 2"):
        TraitDataset("t", pos[:5], []).validate()
    with pytest.raises(TraitDataError, match="unbalanced \\(10 positive vs 2 negative"):
        TraitDataset("t", pos, neg[:2]).validate()
    TraitDataset("t", pos, neg).validate()


def test_validate_counts_copies_once_and_refuses_identical_sides():
    ex = TraitExample("p", "r")
    with pytest.raises(TraitDataError, match="1 distinct positive and 1 distinct negative"):
        TraitDataset("t", [ex] * 5, [TraitExample("n", "r")] * 5).validate()
    same = [TraitExample(f"x{i}") for i in range(4)]
    with pytest.raises(TraitDataError, match="the same 4 texts, so there is no difference to extract") as err:
        TraitDataset("t", same, list(reversed(same))).validate()
    assert "layer" not in str(err.value)


def test_split_is_stratified_seeded_and_keeps_pairs():
    joy = tt.load_trait("emotion/joy")
    train, val = joy.split_indices(0.25, seed=3)
    assert sorted(train + val) == list(range(len(joy.examples))) and not set(train) & set(val)
    n = len(joy.positive)
    assert {i for i in val if i < n} == {i - n for i in val if i >= n}  # pairs on the same side
    assert abs(len(val) - 0.25 * len(joy.examples)) <= 2
    assert joy.split_indices(0.25, seed=3) == (train, val) and joy.split_indices(0.25, seed=4) != (train, val)
    tr, va = joy.split(0.25, seed=3)
    assert len(tr.positive) + len(va.positive) == n and va.paired
    with pytest.raises(TraitDataError, match="val_split must be in"):
        joy.split_indices(1.0)


@pytest.mark.parametrize(
    "text, message",
    [
        ("{questions: []}", r"steering.json is not valid JSON: Expecting property name .* line 1, column 2"),
        ('["a question"]', "steering.json must hold a JSON object"),
        ('{"questions": "one string"}', "'questions' must be a list of strings"),
    ],
)
def test_a_broken_steering_json_names_the_file(tmp_path, text, message):
    from tl_traits.core.trait_sets import TraitDataError

    for side in ("positive", "negative"):
        (tmp_path / f"{side}.jsonl").write_text('{"prompt": "p", "response": "r"}\n' * 2, encoding="utf-8")
    (tmp_path / "steering.json").write_text(text, encoding="utf-8")
    with pytest.raises(TraitDataError, match=message):
        tt.load_trait(tmp_path)


def test_a_dataset_and_a_vector_print_in_one_short_line():
    import torch

    joy = tt.load_trait("emotion/joy")
    assert repr(joy) == "TraitDataset('emotion/joy': 50 positive, 50 negative, steering questions 28 dev + 100 test)"
    vec = tt.TraitVector(
        "mean_diff",
        torch.ones(30, 576),
        list(range(30)),
        torch.ones(30),
        {},
        {"dataset": {"name": "emotion/joy"}, "model": {"name": "SmolLM2-135M-Instruct"}},
    )
    assert repr(vec) == (
        "TraitVector('mean_diff', layers=0..29, d_model=576, trait='emotion/joy', model='SmolLM2-135M-Instruct')"
    )


def test_bundled_steering_questions_are_split_once_into_dev_and_test():
    for name in tt.list_traits():
        trait = tt.load_trait(name)
        for direction in (1, -1):
            plan = trait.steering_questions(direction)
            assert len(plan.dev) >= 24 and len(plan.test) >= 24, (name, direction)
            assert not set(plan.dev) & set(plan.test), (name, direction)  # nothing leaks between the halves
        assert trait.questions == trait.steering_questions(1).dev + trait.steering_questions(1).test
    limited = tt.load_trait("alignment/refusal").limit(3)
    assert len(limited.steering_questions(1).dev) == 3 and len(limited.steering_questions(-1).test) == 3


def test_steering_json_forms(tmp_path):
    def folder(steering):
        path = tmp_path / f"t{len(list(tmp_path.iterdir()))}"
        path.mkdir()
        for side in ("positive", "negative"):
            (path / f"{side}.jsonl").write_text('{"prompt": "a", "response": "b"}\n{"prompt": "c", "response": "d"}\n')
        (path / "steering.json").write_text(json.dumps(steering))
        return tt.load_trait(path)

    flat = folder({"questions": ["q1", "q2", "q3", "q4", "q5"]})
    assert flat.steering_questions(1).dev == ("q1", "q3", "q5") and flat.steering_questions(1).test == ("q2", "q4")
    split = folder(
        {
            "questions": {"dev": ["a"], "test": ["b"]},
            "toward": {"parts": ["trait", "coherence"]},
            "away": {"questions": {"dev": ["x"], "test": ["y"]}, "measures": "less of it"},
        }
    )
    assert split.steering_questions(1).parts == ("trait", "coherence")
    assert split.steering_questions(-1).dev == ("x",) and split.steering_questions(-1).measures == "less of it"
    in_code = TraitDataset("c", flat.positive, flat.negative, questions=("u", "v"))
    assert in_code.steering_questions(-1).dev == ("u",)  # no steering.json: the questions alternate
    with pytest.raises(TraitDataError, match="parts"):
        folder({"questions": ["a", "b"], "toward": {"parts": ["coherence"]}})
    with pytest.raises(TraitDataError, match="list of strings or"):
        folder({"questions": {"dev": ["a"]}})
    with pytest.raises(TraitDataError, match="direction must be"):
        flat.steering_questions(0)


def test_adding_steering_questions_keeps_the_examples_hash():
    """A judge fitted on the examples stays valid when questions are added; the full content hash does not."""
    joy = tt.load_trait("emotion/joy")
    more = TraitDataset(
        joy.name,
        joy.positive,
        joy.negative,
        questions=joy.questions + ("One more question?",),
        definition=joy.definition,
    )
    assert more.examples_hash() == joy.examples_hash() and more.content_hash() != joy.content_hash()
    fewer = TraitDataset(
        joy.name, joy.positive[1:], joy.negative[1:], questions=joy.questions, definition=joy.definition
    )
    assert fewer.examples_hash() != joy.examples_hash()
