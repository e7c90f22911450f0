"""capture: batch invariance, agreement with a full cache, early stop, streaming, clear errors."""

from __future__ import annotations

import pytest
import torch
from beartype import beartype
from jaxtyping import Float, jaxtyped

import tl_traits as tt
from tl_traits.core.capture import (
    ActivationSet,
    CaptureError,
    ShardedActivations,
    capture,
    capture_to_disk,
    iter_shards,
    load_shards,
)
from tl_traits.core.hook_names import HOOKS, hook_name
from tl_traits.core.trait_sets import TraitExample

EXAMPLES = [
    TraitExample("How was your day?", "It was wonderful, thank you for asking!"),
    TraitExample("Hi", "Hello."),
    TraitExample(
        "Describe the weather where you are in one long sentence, please.",
        "Grey clouds, cold rain and a wind that never stops.",
    ),
    TraitExample("What is 2+2?", "4"),
    TraitExample("Name a colour.", "Blue, like the sea on a calm summer morning.", system="You are terse."),
    TraitExample("Say something kind.", "You matter, and today is a good day to be you."),
]


@pytest.fixture(scope="module")
def tiny_bridge(tiny_llama_folder):
    return tt.load_model(tiny_llama_folder)


@jaxtyped(typechecker=beartype)
def _shaped(acts: Float[torch.Tensor, "n layer d_model"], n: int, layers: int, d: int) -> None:
    assert acts.shape == (n, layers, d) and acts.dtype == torch.float32


@pytest.mark.parametrize("position", ["response[:]", "prompt[-1]", "response[:3]", "all"])
def test_batched_capture_equals_one_at_a_time(bridge_model, position):
    batched = capture(bridge_model, EXAMPLES, position=position, batch_size=4, layers=[0, 7, 29])
    single = [capture(bridge_model, [ex], position=position, batch_size=1, layers=[0, 7, 29]) for ex in EXAMPLES]
    _shaped(batched.acts, len(EXAMPLES), 3, 576)
    one_at_a_time = torch.cat([s.acts for s in single])
    # Float32 rounding grows with a layer's magnitude (entries reach ~600 at layer 29, where a batch of 4
    # and a batch of 1 differ by ~7e-4 depending on the BLAS kernel), so the bound scales with each layer.
    scale = batched.acts.abs().amax(dim=(0, 2), keepdim=True)
    gap = (batched.acts - one_at_a_time).abs()
    assert (gap <= 1e-4 + 1e-5 * scale).all(), f"largest gap per layer {gap.amax(dim=(0, 2)).tolist()}"
    torch.testing.assert_close(batched.token_norms, torch.cat([s.token_norms for s in single]), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("hook", HOOKS)
@pytest.mark.parametrize("kind", ["bridge", "hooked"])
def test_capture_matches_the_full_cache_mean(tiny_llama_folder, kind, hook):
    model = tt.load_model(tiny_llama_folder, kind=kind) if kind == "hooked" else tt.load_model(tiny_llama_folder)
    got = capture(model, EXAMPLES[:3], hook=hook, position="response[:]", batch_size=3)
    for i, ex in enumerate(EXAMPLES[:3]):
        batch = tt.prepare_inputs(model, [ex.messages()], [ex.response])
        with torch.no_grad():
            _, cache = model.run_with_cache(batch.input_ids)
        a, b = batch.spans[0].response
        for layer in range(model.cfg.n_layers):
            h = cache[hook_name(layer, hook)][0, a:b]
            torch.testing.assert_close(got.acts[i, layer], h.mean(0), rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(got.token_norms[i, layer], h.norm(dim=-1).mean(), rtol=1e-4, atol=1e-4)


def test_forward_stops_after_the_last_layer_needed(bridge_model):
    fired = []
    later = hook_name(10)
    with bridge_model.hooks(fwd_hooks=[(later, lambda act, hook: fired.append(1))]):
        capture(bridge_model, EXAMPLES[:2], layers=[2, 4], batch_size=2)
        assert fired == []
        capture(bridge_model, EXAMPLES[:2], layers=[10], batch_size=2)
        assert fired == [1]
    assert not bridge_model.hook_dict[later].fwd_hooks


def test_dataset_labels_and_metadata(bridge_model):
    trait = tt.TraitDataset("toy", EXAMPLES[:3], EXAMPLES[3:])
    acts = capture(bridge_model, trait, layers=[-1], batch_size=8)
    assert acts.labels.tolist() == [1, 1, 1, 0, 0, 0] and acts.layers == [29]
    assert acts.metadata["model"]["name"] == "SmolLM2-135M-Instruct"
    assert acts.metadata["prompt_settings"]["bos"] is True
    assert acts.by_label(0).shape == (3, 1, 576)


def test_capture_to_disk_matches_memory(tiny_bridge, tmp_path):
    in_memory = capture(tiny_bridge, EXAMPLES, batch_size=2)
    streamed = capture_to_disk(tiny_bridge, EXAMPLES, tmp_path / "acts", batch_size=2)
    assert isinstance(streamed, ShardedActivations) and streamed.n_examples == len(EXAMPLES)
    assert streamed.layers == in_memory.layers and streamed.metadata == in_memory.metadata
    assert len(list(streamed.shards())) == 3 and len(list(iter_shards(tmp_path / "acts"))) == 3
    for back in (streamed.load(), ShardedActivations.open(tmp_path / "acts").load(), load_shards(tmp_path / "acts")):
        torch.testing.assert_close(back.acts, in_memory.acts, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(back.token_norms, in_memory.token_norms, rtol=1e-5, atol=1e-5)
    (tmp_path / "acts" / "index.json").unlink()
    with pytest.raises(CaptureError, match="did not finish"):
        load_shards(tmp_path / "acts")


def test_capture_to_disk_old_keyword_still_works_with_a_warning(tiny_bridge, tmp_path):
    with pytest.warns(DeprecationWarning, match="capture_to_disk"):
        streamed = capture(tiny_bridge, EXAMPLES[:4], batch_size=2, to_disk=tmp_path / "acts")
    assert streamed.acts.numel() == 0 and streamed.metadata["shards"] == str(tmp_path / "acts")
    assert load_shards(tmp_path / "acts").acts.shape[0] == 4


def test_activation_set_save_load(tiny_bridge, tmp_path):
    acts = capture(tiny_bridge, tt.TraitDataset("toy", EXAMPLES[:2], EXAMPLES[2:4]))
    back = ActivationSet.load(acts.save(tmp_path / "a.safetensors"))
    assert torch.equal(back.acts, acts.acts) and torch.equal(back.labels, acts.labels)
    assert back.metadata == acts.metadata and back.layers == acts.layers


def test_auto_batch_size(tiny_bridge):
    acts = capture(tiny_bridge, EXAMPLES, batch_size="auto")
    assert acts.acts.shape[0] == len(EXAMPLES)
    from tl_traits.core.capture import auto_batch_size

    assert 1 <= auto_batch_size(tiny_bridge, 64) <= 64


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"layers": [30]}, "layer 30 is out of range: this model has 30 layers"),
        ({"layers": []}, "layers is empty"),
        ({"hook": "resid"}, "unknown hook 'resid'"),
        ({"batch_size": 0}, "batch_size must be"),
    ],
)
def test_bad_arguments(bridge_model, kwargs, message):
    with pytest.raises(CaptureError, match=message):
        capture(bridge_model, EXAMPLES[:1], **kwargs)


def test_missing_responses_and_no_examples(bridge_model):
    with pytest.raises(CaptureError, match="needs responses.*generate_responses"):
        capture(bridge_model, ["just a prompt"], position="response[:]")
    assert capture(bridge_model, ["just a prompt"], position="prompt[-1]", layers=[0]).acts.shape == (1, 1, 576)
    with pytest.raises(CaptureError, match="no examples"):
        capture(bridge_model, [])


def test_capture_to_disk_runs_without_autograd(tiny_bridge, tmp_path, monkeypatch):
    from tl_traits.core import capture_sinks

    seen = []
    write = capture_sinks.ShardSink.write

    def recording(self, rows, acts, norms):
        seen.append(acts.requires_grad or torch.is_grad_enabled())
        write(self, rows, acts, norms)

    monkeypatch.setattr(capture_sinks.ShardSink, "write", recording)
    capture_to_disk(tiny_bridge, EXAMPLES, tmp_path / "acts", batch_size=2)
    assert seen and not any(seen)  # no graph is built over the model's weights while streaming
