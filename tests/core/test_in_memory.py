"""Data and models already in memory: TraitDataset.from_pairs and load_model(hf_model, tokenizer=...)."""

from __future__ import annotations

import pytest
import torch

import tl_traits as tt
from tl_traits.core.models import ModelLoadError
from tl_traits.core.trait_sets import TraitDataError

HAPPY = ["I feel wonderful today", "What a delightful surprise", "This is the best news ever", "I am so glad you came"]
SAD = ["I feel miserable today", "What a dreadful surprise", "This is the worst news ever", "I am so sorry you came"]


@pytest.mark.filterwarnings("ignore:held-out classes have")
def test_plain_text_pairs_are_tokenized_as_given_and_read_at_the_last_token(bridge_model):
    trait = tt.TraitDataset.from_pairs(list(zip(HAPPY, SAD)), name="happy")
    assert trait.chat is False and not trait.has_responses and trait.paired
    assert repr(trait) == "TraitDataset('happy': 4 positive, 4 negative, no steering questions)"
    vecs = tt.extract(bridge_model, trait, "mean_diff", layers=[4, 10], val_split=0.5, progress=False)
    assert vecs.metadata["position"] == "prompt[-1]"
    assert vecs.metadata["prompt_settings"]["chat"] is False  # no chat template around the text
    # the same strings through the chat template give different activations
    chat = tt.TraitDataset.from_pairs([((h, "Yes."), (s, "Yes.")) for h, s in zip(HAPPY, SAD)])
    assert chat.chat is None and chat.has_responses
    chat_vecs = tt.extract(
        bridge_model, chat, "mean_diff", layers=[4, 10], position="prompt[-1]", val_split=0.5, progress=False
    )
    assert chat_vecs.metadata["prompt_settings"]["chat"] is True
    assert not torch.allclose(vecs["mean_diff"].direction(10), chat_vecs["mean_diff"].direction(10))


def test_from_pairs_refuses_what_it_cannot_use():
    with pytest.raises(TraitDataError, match="non-empty list"):
        tt.TraitDataset.from_pairs([])
    with pytest.raises(TraitDataError, match="pair 1 is not a"):
        tt.TraitDataset.from_pairs([("a", "b"), ("c",)])
    with pytest.raises(TraitDataError, match="mixed"):
        tt.TraitDataset.from_pairs([("a", "b"), ({"prompt": "c", "response": "d"}, {"prompt": "c", "response": "e"})])
    with pytest.raises(TraitDataError, match="pair 0: each side"):
        tt.TraitDataset.from_pairs([("", "b")])


def test_a_loaded_hugging_face_model_is_wrapped_as_it_is(embedded_folder, bridge_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf = AutoModelForCausalLM.from_pretrained(embedded_folder, torch_dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(embedded_folder)
    tokens = tt.prepare_inputs(bridge_model, "How was your day?").input_ids
    with torch.no_grad():
        before = hf(tokens).logits[0, -1].log_softmax(-1)
        model = tt.load_model(hf, tokenizer=tokenizer)
        wrapped = model(tokens)[0, -1].log_softmax(-1)
        after = hf(tokens).logits[0, -1].log_softmax(-1)
        reference = bridge_model(tokens)[0, -1].log_softmax(-1)
    # the user's model keeps its weights (the bridge switches attention to eager: float32 noise only)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(wrapped, reference, rtol=1e-4, atol=1e-4)
    assert model.cfg.model_name == embedded_folder.name and tt.model_identity(model).n_layers == 30
    with pytest.raises(ModelLoadError, match="pass tokenizer="):
        tt.load_model(hf)
    with pytest.raises(ModelLoadError, match="kind='bridge'"):
        tt.load_model(hf, tokenizer=tokenizer, kind="hooked")
    with pytest.raises(ModelLoadError, match="not a Hugging Face model"):
        tt.load_model(torch.nn.Linear(2, 2), tokenizer=tokenizer)


def test_repeated_pairs_never_put_a_copy_of_a_training_pair_in_the_held_out_split():
    """Repeated pairs were split one by one: 4 of 4 held-out examples were copies of training ones (AUROC 1.0)."""
    pairs = list(zip(HAPPY, SAD)) * 3
    with pytest.warns(UserWarning, match="8 of the 12 pairs repeat an earlier pair"):
        trait = tt.TraitDataset.from_pairs(pairs)
    for seed in range(10):
        train, val = trait.split_indices(0.25, seed=seed)
        assert val and sorted(train + val) == list(range(24))
        assert not {trait.examples[i] for i in train} & {trait.examples[i] for i in val}
    # pairs that share one side are one unit too: the shared text never sits on both sides of the split
    shared = tt.TraitDataset.from_pairs(
        [(HAPPY[0], SAD[0]), (HAPPY[0], SAD[1]), (HAPPY[2], SAD[2]), (HAPPY[3], SAD[3])]
    )
    for seed in range(10):
        train, val = shared.split_indices(0.5, seed=seed)
        assert not {shared.examples[i] for i in train} & {shared.examples[i] for i in val}


def test_from_pairs_errors_speak_of_pairs_and_name_no_layer():
    with pytest.raises(
        TraitDataError, match="at least 2 different \\(positive, negative\\) pairs to from_pairs"
    ) as one:
        tt.TraitDataset.from_pairs([(HAPPY[0], SAD[0])]).validate()
    assert "positive.jsonl" not in str(one.value)  # the pairs were given in memory: there is no file to edit
    with pytest.warns(UserWarning, match="repeat"):
        copies = tt.TraitDataset.from_pairs([(HAPPY[0], SAD[0])] * 5)
    with pytest.raises(TraitDataError, match="1 distinct positive and 1 distinct negative"):
        copies.validate()
    same = tt.TraitDataset.from_pairs([(h, h) for h in HAPPY])
    with pytest.raises(TraitDataError, match="the same 4 texts, so there is no difference to extract") as identical:
        tt.extract(object(), same, "mean_diff", layers=[4, 10], progress=False)  # refused before any model work
    assert "layer" not in str(identical.value)


@pytest.mark.parametrize(
    "pair, where",
    [
        (("I am happy \ud800", "I am sad"), "pair 0 \\(positive side\\): the prompt"),
        (("I am happy", ("Hi", "sad \udfff")), "pair 0 \\(negative side\\): the response"),
        (({"prompt": "a", "system": "\ud83d"}, {"prompt": "b"}), "pair 0 \\(positive side\\): the system"),
    ],
)
def test_a_lone_surrogate_is_a_clear_error_not_a_unicode_crash(pair, where):
    with pytest.raises(TraitDataError, match=f"{where} holds a lone surrogate"):
        tt.TraitDataset.from_pairs([pair, ("fine", "also fine")])


def test_a_lone_surrogate_in_a_trait_file_names_file_and_line(tmp_path):
    (tmp_path / "positive.jsonl").write_text('{"prompt": "ok"}\n{"prompt": "bad \\ud800"}\n')
    (tmp_path / "negative.jsonl").write_text('{"prompt": "no"}\n')
    with pytest.raises(TraitDataError, match="positive.jsonl line 2: the prompt holds a lone surrogate"):
        tt.load_trait(tmp_path)
