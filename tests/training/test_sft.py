"""Label-masked SFT encodings: properties on SmolLM2's chat tokenizer and a BPE tokenizer without a template."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.core.test_prompts import PROPERTY, decode, leading_bos, user_text
from tl_traits.training.sft import (
    IGNORE_INDEX,
    SFTDataset,
    SFTError,
    collate,
    encode_example,
)

responses = user_text.filter(lambda s: s.strip() != "")


def check_masking(tok, ex, response: str) -> None:
    labelled = [i for i, label in enumerate(ex.labels) if label != IGNORE_INDEX]
    # masked positions are exactly the prompt (and what the template puts after the end-of-turn)
    assert labelled == list(range(ex.n_prompt, ex.n_prompt + len(labelled)))
    assert all(label == IGNORE_INDEX for label in ex.labels[: ex.n_prompt])
    assert [ex.labels[i] for i in labelled] == [ex.input_ids[i] for i in labelled]
    # unmasked labels decode to the response, then the end-of-turn token that closes it
    assert decode(tok, [ex.labels[i] for i in labelled[:-1]]) == response
    assert ex.labels[labelled[-1]] == tok.eos_token_id
    assert leading_bos(ex.input_ids, tok.bos_token_id) <= 1  # one BOS (SmolLM2's BOS also opens each turn)


@PROPERTY
@given(user_text, responses)
def test_smollm2_chat_labels_are_exactly_the_response(smol_tokenizer, prompt, response):
    ex = encode_example(smol_tokenizer, prompt, response)
    check_masking(smol_tokenizer, ex, response)
    assert ex.input_ids[0] == smol_tokenizer.bos_token_id


@PROPERTY
@given(user_text, responses)
def test_bpe_without_template_labels_are_exactly_the_response(gpt2_tokenizer, prompt, response):
    ex = encode_example(gpt2_tokenizer, prompt, response)
    check_masking(gpt2_tokenizer, ex, response)


@PROPERTY
@given(st.lists(st.tuples(user_text, responses), min_size=1, max_size=5), st.sampled_from(["right", "left"]))
def test_collate_keeps_every_label(smol_tokenizer, pairs, side):
    examples = [encode_example(smol_tokenizer, p, r) for p, r in pairs]
    batch = collate(examples, smol_tokenizer.pad_token_id, padding_side=side)
    width = batch["input_ids"].shape[1]
    for row, ex in enumerate(examples):
        cols = slice(0, len(ex)) if side == "right" else slice(width - len(ex), width)
        assert batch["labels"][row, cols].tolist() == ex.labels
        assert batch["input_ids"][row, cols].tolist() == ex.input_ids
        assert int(batch["attention_mask"][row].sum()) == len(ex)
        pad = batch["attention_mask"][row] == 0
        assert (batch["labels"][row][pad] == IGNORE_INDEX).all()


def test_truncation_cutting_the_whole_response_names_the_example(smol_tokenizer):
    long_prompt = "Tell me everything about the history of the world. " * 20
    with pytest.raises(SFTError, match=r"example 'ex7'.*max_length=40.*truncation='drop'"):
        encode_example(smol_tokenizer, long_prompt, "Sure.", max_length=40, name="ex7")
    assert encode_example(smol_tokenizer, long_prompt, "Sure.", max_length=40, truncation="drop") is None
    kept = encode_example(smol_tokenizer, "Hi", "A fairly long answer that will not fit at all. " * 5, max_length=40)
    assert len(kept) == 40 and kept.labels[-1] != IGNORE_INDEX  # a partial response is kept


def test_dataset_encodes_from_text_and_counts_drops(smol_tokenizer):
    rows = [
        {"prompt": "Hi", "response": "Hello!"},
        {"prompt": "word " * 200, "response": "ok", "id": "long"},
        {"prompt": [{"role": "user", "content": "2+2?"}], "response": "4"},
    ]
    data = SFTDataset(rows, smol_tokenizer, max_length=64, truncation="drop")
    assert data.dropped == [1] and len(data) == 2
    data.rows[2]["response"] = "four"  # always re-encoded from the text, never from cached tokens
    assert decode(smol_tokenizer, [t for t in data[1].labels if t != IGNORE_INDEX][:-1]) == "four"
    with pytest.raises(SFTError, match="'long'"):
        SFTDataset(rows, smol_tokenizer, max_length=64)
    with pytest.raises(SFTError, match="no \\['response'\\]"):
        SFTDataset([{"prompt": "x"}], smol_tokenizer)
