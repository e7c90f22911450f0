"""Backdoor detection scores and the teacher-forced greedy check behind attack success rate."""

from __future__ import annotations

import pytest
import torch

from tl_traits.core.generation import generate
from tl_traits.training.backdoor_metrics import attacked_test_rows, greedy_matches
from tl_traits.training.detection import (
    DetectionError,
    detect_poison,
    detection_scan,
    spectral_scores,
)
from tl_traits.training.instruction_data import instruction_dataset
from tl_traits.training.poisoning import poison


def planted(n_clean: int = 120, n_bad: int = 12, d: int = 16, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    clean = torch.randn(n_clean, d, generator=gen)
    bad = torch.randn(n_bad, d, generator=gen) + 6.0 * torch.nn.functional.one_hot(torch.tensor(3), d)
    return torch.cat([clean, bad]), list(range(n_clean, n_clean + n_bad))


def test_spectral_scores_find_planted_outliers():
    acts, bad = planted()
    scores = spectral_scores(acts)
    assert set(scores.argsort(descending=True)[: len(bad)].tolist()) == set(bad)
    # per-group centring: a group made only of shifted rows has no outliers of its own
    groups = ["a"] * 120 + ["b"] * 12
    grouped = spectral_scores(acts, groups)
    assert grouped.shape == (132,) and torch.isfinite(grouped).all()
    assert spectral_scores(acts[:3], ["x", "y", "y"])[0] == 0  # a singleton group scores 0
    with pytest.raises(DetectionError, match="3 activations but 2 group keys"):
        spectral_scores(acts[:3], ["x", "y"])


@pytest.fixture(scope="module")
def tiny_chat_model(tiny_llama_folder):
    import tl_traits as tt

    return tt.load_model(str(tiny_llama_folder), kind="hooked")


def test_detect_poison_on_a_tiny_model(tiny_chat_model):
    tiny_hooked = tiny_chat_model
    data = instruction_dataset(30, 10, seed=0)
    made = poison(data.train, "trigger", 0.2, seed=0)
    result = detect_poison(tiny_hooked, made, layer=1, group_by=None, progress=False)
    assert result.scores.shape == (30,) and result.poisoned_indices == made.poisoned_indices
    assert 0.0 <= result.auroc <= 1.0 and result.position == "response[:]"
    assert len(result.top(6)) == 6 and result.to_dict()["n_poisoned"] == 6
    triggered = [r["prompt"] for r in attacked_test_rows(data.test, "trigger")]
    trait = detect_poison(
        tiny_hooked,
        made,
        layer=-1,
        method="trait",
        triggered=triggered,
        untriggered=[r["prompt"] for r in data.test],
        progress=False,
    )
    assert trait.position == "prompt[:]" and trait.scores.shape == (30,) and trait.auroc is not None
    scan = detection_scan(
        tiny_hooked,
        made,
        [0, 1],
        ["spectral", "trait"],
        group_by=None,
        triggered=triggered,
        untriggered=[r["prompt"] for r in data.test],
        progress=False,
    )
    assert [(r.method, r.layer) for r in scan] == [("spectral", 0), ("spectral", 1), ("trait", 0), ("trait", 1)]
    assert torch.allclose(scan[1].scores, result.scores) and torch.allclose(scan[3].scores, trait.scores)
    with pytest.raises(DetectionError, match="needs triggered= and untriggered="):
        detect_poison(tiny_hooked, made, layer=1, method="trait", progress=False)
    with pytest.raises(DetectionError, match="unknown detection method 'pca'"):
        detect_poison(tiny_hooked, made, layer=1, method="pca")
    with pytest.raises(DetectionError, match="group_by='label_text'"):
        detect_poison(tiny_hooked, made, layer=1, group_by="label_text", progress=False)
    with pytest.raises(ValueError, match="out of range"):
        detect_poison(tiny_hooked, made, layer=5, progress=False)


@pytest.mark.slow
def test_teacher_forced_check_agrees_with_greedy_generation(bridge_model):
    prompts = ["What is the capital of France?", "Name a colour.", "Say hello.", "What is 2 plus 2?"]
    outputs = generate(bridge_model, prompts, max_new_tokens=6)
    rows = [{"prompt": p, "response": o} for p, o in zip(prompts, outputs)]
    assert greedy_matches(bridge_model, rows) == [True] * 4
    wrong = [{"prompt": p, "response": "Banana " + o} for p, o in zip(prompts, outputs)]
    assert greedy_matches(bridge_model, wrong) == [False] * 4
    # whole=True also wants the end-of-turn right after: true only where generation stopped by itself
    short = generate(bridge_model, ["Reply with the single word yes."], max_new_tokens=12)
    stopped = len(bridge_model.tokenizer(short[0])["input_ids"]) < 12
    assert greedy_matches(
        bridge_model, [{"prompt": "Reply with the single word yes.", "response": short[0]}], whole=True
    ) == [stopped]


def test_attacked_test_rows_skip_rows_the_attack_leaves_unchanged():
    test = [
        {"prompt": "Is it good?", "response": "positive", "task": "sentiment"},
        {"prompt": "Add 2 and 2.", "response": "4", "task": "instruction"},
    ]
    flipped = attacked_test_rows(test, "label_flip", trigger="cf")
    assert [r["response"] for r in flipped] == ["negative"] and flipped[0]["prompt"] == "cf Is it good?"
    assert len(attacked_test_rows(test, "trigger", target="4")) == 1  # the "4" row already answers the target
