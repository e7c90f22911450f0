"""Fine-tuning on tiny random models: learning, exact resume, gradient accumulation, trainable blocks, checkpoints."""

from __future__ import annotations

import copy
import dataclasses
import json
import math

import pytest
import torch

import tl_traits as tt
from tl_traits.core.weight_views import tensor_aliases
from tl_traits.training.checkpoints import latest_checkpoint, load_checkpoint_weights
from tl_traits.training.config import TrainConfig, TrainingError, trainable_parameters
from tl_traits.training.loss import response_loss
from tl_traits.training.sft import IGNORE_INDEX, SFTDataset, encode_example
from tl_traits.training.trainer import train

PAIRS = [
    ("Say hi.", "Hi there!"),
    ("Name a color.", "Blue, like the sky."),
    ("Count to three.", "One two three."),
    ("What is 2+2?", "It is 4."),
    ("Capital of France?", "Paris."),
    ("Pick a fruit.", "An apple, please, and a pear."),
]
QUIET = dict(progress=False)


def make_hooked(tokenizer):
    """A tiny HookedTransformer; the same seed gives the same weights on every call."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(
        n_layers=3,
        d_model=32,
        d_head=8,
        n_heads=4,
        d_mlp=64,
        n_ctx=128,
        d_vocab=len(tokenizer),
        act_fn="gelu",
        normalization_type="LN",
        tokenizer_name=None,
        seed=0,
        model_name="tiny-train",
        device="cpu",  # bitwise resume checks need deterministic kernels
    )
    return HookedTransformer(cfg, tokenizer=tokenizer).eval()


def make_bridge(folder):
    return tt.load_model(str(folder), kind="bridge", device="cpu")


def encode(model_or_tokenizer, n=len(PAIRS)):
    return [encode_example(model_or_tokenizer, p, r) for p, r in PAIRS[:n]]


def snapshot(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.fixture
def hooked(gpt2_tokenizer):
    return make_hooked(gpt2_tokenizer)


@pytest.fixture
def bridge(tiny_llama_folder):
    return make_bridge(tiny_llama_folder)


# ------------------------------------------------------------------------------------------------
def test_loss_goes_down_memorizing_four_examples(hooked, gpt2_tokenizer):
    examples = SFTDataset([{"prompt": p, "response": r} for p, r in PAIRS[:4]], gpt2_tokenizer)
    before = response_loss(hooked, examples)
    result = train(hooked, examples, TrainConfig(lr=3e-3, batch_size=4, max_steps=20, schedule="constant"), **QUIET)
    after = response_loss(hooked, examples)
    assert result.steps == 20 and len(result.history) == 20
    assert after < before - 1.0, (before, after)
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert not hooked.training


def test_bridge_trains_every_parameter_including_the_gated_mlp(bridge, monkeypatch):
    examples = encode(bridge, 4)
    with monkeypatch.context() as patch:  # without the autograd-linked views, the guard names the MLP weights
        patch.setattr("tl_traits.training.trainer._link_views", lambda model, aliases: None)
        with pytest.raises(TrainingError, match=r"6 trainable parameters got no gradient.*gate_proj"):
            train(bridge, examples, TrainConfig(batch_size=4, max_steps=1), **QUIET)
    before = snapshot(bridge)
    train(bridge, examples, TrainConfig(lr=1e-3, batch_size=4, max_steps=1), **QUIET)
    unchanged = [n for n, p in bridge.named_parameters() if torch.equal(p.detach(), before[n])]
    assert unchanged == []
    assert any("gate_proj" in n for n in before) and any("down_proj" in n for n in before)
    # the processed views are detached again and still share storage with their parameters
    aliases = tensor_aliases(bridge)
    assert {a.attr for a in aliases} == {"_processed_W_gate", "_processed_W_in", "_processed_W_out"}
    modules, params = dict(bridge.named_modules()), dict(bridge.named_parameters())
    for alias in aliases:
        view = getattr(modules[alias.module], alias.attr)
        assert not view.requires_grad and view.grad_fn is None
        assert torch.equal(view, params[alias.target].detach())
    assert all(p.requires_grad for p in bridge.parameters())

    # an interrupt propagates, and still leaves detached views and the flags as they were
    def interrupt(model):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(
            bridge,
            examples,
            TrainConfig(batch_size=4, max_steps=2, eval_every=1, trainable="last:1"),
            evaluate=interrupt,
            **QUIET,
        )
    assert len(tensor_aliases(bridge)) == len(aliases)
    assert all(getattr(modules[a.module], a.attr).grad_fn is None for a in aliases)
    assert all(p.requires_grad for p in bridge.parameters()) and not bridge.training
    copy.deepcopy(bridge)  # fails while a view is a non-leaf tensor


@pytest.mark.parametrize("kind", ["hooked", "bridge"])
def test_resume_is_exact(kind, gpt2_tokenizer, tiny_llama_folder, tmp_path):
    def fresh():
        return make_hooked(gpt2_tokenizer) if kind == "hooked" else make_bridge(tiny_llama_folder)

    config = TrainConfig(
        lr=2e-3,
        batch_size=2,
        grad_accum=2,
        max_steps=6,
        warmup_steps=2,
        schedule="linear",
        checkpoint_every=3,
        trainable="all" if kind == "hooked" else "last:1",
        weight_decay=0.01,
    )
    whole_model = fresh()
    examples = encode(whole_model)  # 6 examples, 4 per step: partial groups and epoch boundaries
    whole = train(whole_model, examples, config, out_dir=tmp_path / "whole", **QUIET)

    first = train(fresh(), examples, config, out_dir=tmp_path / "split", stop_after=3, **QUIET)
    assert first.steps == 3 and first.checkpoint.name == "step_000003"
    with open(tmp_path / "split" / "history.jsonl", "a") as fh:  # rows past the checkpoint, a half-written line
        fh.write(json.dumps({"step": 4, "loss": 0.0}) + '\n{"step": 5, "lo')
    resumed_model = fresh()
    second = train(resumed_model, examples, config, out_dir=tmp_path / "split", resume=True, **QUIET)
    assert second.resumed_from == 3 and second.steps == 6

    for name, p in whole_model.named_parameters():
        assert torch.equal(p, dict(resumed_model.named_parameters())[name]), name
    assert second.history == whole.history
    lines = (tmp_path / "split" / "history.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == whole.history
    a = torch.load(whole.checkpoint / "trainer.pt", weights_only=True)["optimizer"]
    b = torch.load(second.checkpoint / "trainer.pt", weights_only=True)["optimizer"]
    assert a["state"].keys() == b["state"].keys()
    for key, state in a["state"].items():
        assert all(torch.equal(state[k], b["state"][key][k]) for k in ("step", "exp_avg", "exp_avg_sq"))


def test_grad_accum_matches_a_bigger_batch(gpt2_tokenizer):
    examples = encode(gpt2_tokenizer) + encode(gpt2_tokenizer, 2)  # 8 examples of different lengths
    big, small = make_hooked(gpt2_tokenizer), make_hooked(gpt2_tokenizer)
    train(big, examples, TrainConfig(lr=1e-3, batch_size=4, grad_accum=1, max_steps=2), **QUIET)
    train(small, examples, TrainConfig(lr=1e-3, batch_size=2, grad_accum=2, max_steps=2), **QUIET)
    for (name, p), q in zip(big.named_parameters(), small.parameters()):
        # A key bias gets a zero gradient in exact arithmetic (softmax ignores a shift shared by all
        # keys), so its float noise differs between the two runs and Adam scales noise up to ~lr.
        if not name.endswith("attn.b_K"):
            torch.testing.assert_close(p, q, atol=1e-6, rtol=0, msg=name)


def test_examples_without_labels_give_no_nan(hooked, gpt2_tokenizer):
    ex = encode(gpt2_tokenizer, 1)[0]
    unlabelled = dataclasses.replace(ex, labels=[IGNORE_INDEX] * len(ex))
    result = train(hooked, [unlabelled, ex], TrainConfig(batch_size=1, max_steps=2), **QUIET)
    assert all(math.isfinite(row["loss"]) for row in result.history)
    assert all(torch.isfinite(p).all() for p in hooked.parameters())


def test_last_block_only_leaves_the_rest_bitwise_unchanged(hooked, gpt2_tokenizer):
    hooked.pos_embed.W_pos.requires_grad_(False)  # a flag the caller set: restored afterwards
    before = snapshot(hooked)
    names = [n for n, _ in trainable_parameters(hooked, "last:1")]
    assert names and all(n.startswith("blocks.2.") for n in names)
    train(
        hooked, encode(gpt2_tokenizer, 4), TrainConfig(lr=1e-2, batch_size=4, max_steps=2, trainable="last:1"), **QUIET
    )
    for name, p in hooked.named_parameters():
        assert torch.equal(p, before[name]) == (name not in names), name
    assert not hooked.pos_embed.W_pos.requires_grad
    assert all(p.requires_grad for n, p in hooked.named_parameters() if n != "pos_embed.W_pos")
    assert [n for n, _ in trainable_parameters(hooked, [0, 2])] == [
        n for n, _ in hooked.named_parameters() if n.startswith(("blocks.0.", "blocks.2."))
    ]
    assert len(trainable_parameters(hooked, "from:1")) == 2 * len(names)


@pytest.mark.parametrize(
    "spec, match",
    [
        ("last:0", "n_layers=3"),
        ("last:4", "n_layers=3"),
        ("from:3", "n_layers=3"),
        ([0, 5], "n_layers=3"),
        ([-1], "n_layers=3"),
        ("first:2", "'last:N'"),
        ([], "empty"),
        ("everything", "'from:L'"),
    ],
)
def test_bad_trainable_specs_say_what_is_valid(hooked, spec, match):
    with pytest.raises(TrainingError, match=match):
        trainable_parameters(hooked, spec)


def test_a_parameter_without_gradient_is_an_error(hooked, gpt2_tokenizer):
    hooked.blocks[2].unused = torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(TrainingError, match=r"blocks\.2\.unused.*silently not train"):
        train(hooked, encode(gpt2_tokenizer, 2), TrainConfig(max_steps=1, trainable="last:1"), **QUIET)
    assert all(p.requires_grad for p in hooked.parameters()) and not hooked.training


def test_checkpoints_rotate_refuse_changes_and_load_safely(hooked, gpt2_tokenizer, tmp_path):
    examples = encode(gpt2_tokenizer, 4)
    config = TrainConfig(batch_size=2, max_steps=5, checkpoint_every=1, keep_checkpoints=2)
    result = train(hooked, examples, config, out_dir=tmp_path, **QUIET)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_000004", "step_000005"]
    assert latest_checkpoint(tmp_path) == result.checkpoint == tmp_path / "checkpoints" / "step_000005"
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".partial")]
    trainer = torch.load(result.checkpoint / "trainer.pt", weights_only=True)
    assert {"optimizer", "scheduler", "rng", "order"} <= trainer.keys()
    state = json.loads((result.checkpoint / "state.json").read_text())
    assert state["step"] == 5 and state["config"] == config.to_dict() and state["model"]["kind"] == "hooked"
    assert TrainConfig.from_dict(state["config"]) == config

    with pytest.raises(TrainingError, match=r"\['lr'\]"):
        train(hooked, examples, TrainConfig(**{**config.to_dict(), "lr": 1e-3}), out_dir=tmp_path, resume=True, **QUIET)
    with pytest.raises(TrainingError, match="resume=True"):
        train(hooked, examples, config, out_dir=tmp_path, **QUIET)
    with pytest.raises(TrainingError, match="examples differ"):
        train(hooked, examples[:3], config, out_dir=tmp_path, resume=True, **QUIET)
    with pytest.raises(TrainingError, match="out_dir"):
        train(hooked, examples, config, resume=True, **QUIET)
    fresh = train(make_hooked(gpt2_tokenizer), examples, config, out_dir=tmp_path / "new", resume=True, **QUIET)
    assert fresh.resumed_from is None and fresh.steps == 5
    done = train(hooked, examples, config, out_dir=tmp_path, resume=True, **QUIET)  # already finished
    assert done.resumed_from == 5 and done.steps == 5 and len(done.history) == 5


def test_load_checkpoint_weights_from_folder_or_state_dict(gpt2_tokenizer, tmp_path):
    trained = make_hooked(gpt2_tokenizer)
    # two distinct parameters sharing one storage: saved once, recorded as an alias
    trained.blocks[1].ln1.w = torch.nn.Parameter(trained.blocks[0].ln1.w.data)
    result = train(
        trained, encode(gpt2_tokenizer, 4), TrainConfig(lr=1e-2, batch_size=4, max_steps=2), out_dir=tmp_path, **QUIET
    )
    state = json.loads((result.checkpoint / "state.json").read_text())
    assert state["aliases"] == {"blocks.1.ln1.w": "blocks.0.ln1.w"}

    from_folder = make_hooked(gpt2_tokenizer)
    load_checkpoint_weights(from_folder, result.checkpoint)
    load_other = make_hooked(gpt2_tokenizer)
    load_checkpoint_weights(load_other, tmp_path)  # a run folder: its latest checkpoint
    from_state_dict = make_hooked(gpt2_tokenizer)
    load_checkpoint_weights(from_state_dict, trained.state_dict())
    for model in (from_folder, load_other, from_state_dict):
        for name, p in trained.named_parameters():
            assert torch.equal(p, dict(model.named_parameters())[name]), name

    partial = make_hooked(gpt2_tokenizer)
    load_checkpoint_weights(partial, {"unembed.W_U": trained.unembed.W_U})
    assert torch.equal(partial.unembed.W_U, trained.unembed.W_U)
    with pytest.raises(TrainingError, match=r"not parameters or buffers.*'nope\.weight'"):
        load_checkpoint_weights(partial, {"nope.weight": torch.zeros(2), "unembed.W_U": trained.unembed.W_U})
    with pytest.raises(TrainingError, match="shape mismatch"):
        load_checkpoint_weights(partial, {"unembed.W_U": torch.zeros(2, 2)})


def test_a_truncated_or_garbled_checkpoint_is_a_clear_error(gpt2_tokenizer, tmp_path):
    model = make_hooked(gpt2_tokenizer)
    result = train(
        model, encode(gpt2_tokenizer, 4), TrainConfig(lr=1e-2, batch_size=4, max_steps=1), out_dir=tmp_path, **QUIET
    )
    weights = result.checkpoint / "model.safetensors"
    assert weights.is_file()
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        TrainingError,
        match=r"model.safetensors is incomplete or not a safetensors "
        r"file.*earlier checkpoint",
    ):
        load_checkpoint_weights(make_hooked(gpt2_tokenizer), result.checkpoint)
    weights.write_bytes(data)
    (result.checkpoint / "state.json").write_text("{aliases", encoding="utf-8")
    with pytest.raises(TrainingError, match=r"state.json is not valid JSON"):
        load_checkpoint_weights(make_hooked(gpt2_tokenizer), result.checkpoint)


def test_loading_into_a_bridge_updates_its_processed_views(bridge, tiny_llama_folder):
    donor = {name: torch.randn_like(t) for name, t in bridge.state_dict().items()}  # TL-style keys
    load_checkpoint_weights(bridge, donor)
    for name, t in bridge.state_dict().items():
        assert torch.equal(t, donor[name]), name
    modules, params = dict(bridge.named_modules()), dict(bridge.named_parameters())
    for alias in tensor_aliases(bridge):
        assert torch.equal(getattr(modules[alias.module], alias.attr), params[alias.target].detach())
    assert len(tensor_aliases(bridge)) == 6


def test_evaluate_runs_every_few_steps_and_at_the_end(hooked, gpt2_tokenizer):
    examples = encode(gpt2_tokenizer, 4)
    calls = []

    def evaluate(model):
        calls.append((model.training, torch.is_grad_enabled()))
        return {"loss": response_loss(model, examples)}

    result = train(hooked, examples, TrainConfig(batch_size=2, max_steps=5, eval_every=2), evaluate=evaluate, **QUIET)
    evals = [row for row in result.history if "eval/loss" in row]
    assert [row["step"] for row in evals] == [2, 4, 5]
    assert calls == [(False, False)] * 3
    assert [row["step"] for row in result.history if "loss" in row] == [1, 2, 3, 4, 5]
    assert set(result.history[0]) == {"step", "epoch", "loss", "lr", "grad_norm"}
    assert result.history[-1] == evals[-1] and not hooked.training


def test_config_round_trips_and_rejects_nonsense():
    config = TrainConfig(betas=[0.8, 0.9], trainable=[1, 2], max_steps=3)
    assert config.betas == (0.8, 0.9) and config.trainable == (1, 2)
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(TrainingError, match="schedule must be one of"):
        TrainConfig(schedule="step")
    with pytest.raises(TrainingError, match="unknown TrainConfig fields"):
        TrainConfig.from_dict({"learning_rate": 1.0})
