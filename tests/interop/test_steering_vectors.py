"""steering-vectors on the Hugging Face model and tl_traits on the TransformerLens model give the same logits.

Compared as log-probabilities: TransformerLens centres the unembedding (logits shift by a constant
per position), which changes no probability."""

from __future__ import annotations

import pytest
import torch

import tl_traits as tt
from tl_traits.interop.block_outputs import InteropError

from .conftest import final_logits

steering_vectors = pytest.importorskip(
    "steering_vectors", reason="steering-vectors is not installed (make test installs it)"
)

LAYERS = [4, 10]
TEXT = "How was your day?"


@pytest.fixture(scope="module")
def hf_model(embedded_folder):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(embedded_folder, torch_dtype=torch.float32).eval()


def _hf_logits(hf_model, bridge_model, steering_vector=None, multiplier=1.0):
    tokens = tt.prepare_inputs(bridge_model, TEXT).input_ids
    with torch.no_grad():
        if steering_vector is None:
            return hf_model(tokens).logits[0, -1].log_softmax(-1)
        with steering_vector.apply(hf_model, multiplier=multiplier):
            return hf_model(tokens).logits[0, -1].log_softmax(-1)


def _tl_logits(bridge_model, steering=()):
    return final_logits(bridge_model, steering, text=TEXT).log_softmax(-1)


def test_same_vector_same_logits_on_both_models(hf_model, bridge_model, known_vector):
    plain_tl, plain_hf = _tl_logits(bridge_model), _hf_logits(hf_model, bridge_model)
    torch.testing.assert_close(plain_tl, plain_hf, rtol=1e-3, atol=1e-3)  # the two models agree unsteered
    exported = tt.to_steering_vector(known_vector, strength=3.0, layers=LAYERS)
    assert isinstance(exported, steering_vectors.SteeringVector) and exported.layer_type == "decoder_block"
    assert sorted(exported.layer_activations) == LAYERS
    steered_tl = _tl_logits(bridge_model, tt.steer(bridge_model, known_vector, LAYERS, strength=3.0))
    steered_hf = _hf_logits(hf_model, bridge_model, exported)
    assert (steered_tl - plain_tl).abs().max() > 0.5  # the vector moves the logits a lot...
    torch.testing.assert_close(steered_hf, steered_tl, rtol=1e-3, atol=1e-3)  # ...and by the same amount on both


def test_a_steering_vector_comes_in_with_its_multiplier_as_strength(hf_model, bridge_model):
    gen = torch.Generator().manual_seed(1)
    made_there = steering_vectors.SteeringVector(
        {6: torch.randn(576, generator=gen) * 4, -20: torch.randn(576, generator=gen) * 4}
    )
    here = tt.from_steering_vector(made_there, bridge_model)
    assert here.layers == [6, 10]  # -20 counts from the end of 30 layers, as steering-vectors counts it
    steered_tl = _tl_logits(bridge_model, tt.steer(bridge_model, here, here.layers, strength=1.5))
    torch.testing.assert_close(
        steered_tl, _hf_logits(hf_model, bridge_model, made_there, multiplier=1.5), rtol=1e-3, atol=1e-3
    )
    with pytest.raises(InteropError, match="layer type"):
        tt.from_steering_vector(steering_vectors.SteeringVector({1: torch.zeros(576)}, "input_layernorm"), bridge_model)
