"""Quantizers with real low-bit kernels: bitsandbytes (CUDA) and torchao int8 (CPU or CUDA).

Everything runs on the tiny random Llama. The bitsandbytes tests that need CUDA skip without
it; its reload path also runs on CPU when bitsandbytes (>= 0.46, which has CPU kernels) is
installed. The torchao tests skip when torchao is not installed.
"""

from __future__ import annotations

import sys

import pytest
import torch
from tl_traits.plugins.quantizers import bitsandbytes as bnb_plugin
from tl_traits.plugins.quantizers import torchao_int8 as ao_plugin
from tl_traits.plugins.quantizers.bitsandbytes import bnb_int8, bnb_nf4
from tl_traits.plugins.quantizers.torchao_int8 import torchao_int8

import tl_traits as tt
from tl_traits.core.provenance import PROVENANCE_ATTR, ModelProvenance, model_source
from tl_traits.quantization.quantizer import (
    QuantizationError,
    copy_model,
    quantization_info,
)

PROMPT = "The capital of France is Paris, and the capital of Germany is"
HAS_CUDA = torch.cuda.is_available()


@pytest.fixture(scope="module")
def tiny_bridge(tiny_llama_folder):
    return tt.load_model(tiny_llama_folder)


@pytest.fixture(scope="module")
def tokens(tiny_bridge):
    return tiny_bridge.to_tokens(PROMPT)


@pytest.fixture(scope="module")
def float_logits(tiny_bridge, tokens):
    with torch.no_grad():
        return tiny_bridge(tokens).float().cpu()


def _log_probs(model, tokens) -> torch.Tensor:
    with torch.no_grad():
        return model(tokens.to(model.cfg.device)).float().log_softmax(-1).cpu()


def _check_hooks_and_generation(model, tokens) -> None:
    """run_with_cache at every resid_post, steering changes the output and leaves no hook, generate runs."""
    names = [tt.hook_name(layer, "resid_post") for layer in range(model.cfg.n_layers)]
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens.to(model.cfg.device), names_filter=lambda n: n in names)
    assert sorted(cache.keys()) == sorted(names)
    assert cache[names[0]].shape[-1] == model.cfg.d_model
    plain = _log_probs(model, tokens)
    direction = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(0))
    with tt.steer(model, direction, layers=0, coef=8.0):
        steered = _log_probs(model, tokens)
        texts = tt.generate(model, ["How was your day?"], max_new_tokens=4)
    assert (steered - plain).abs().max() > 1e-3
    assert torch.equal(_log_probs(model, tokens), plain)  # the steer block left no hook behind
    assert len(texts) == 1 and isinstance(texts[0], str)


# -- bitsandbytes: runs everywhere ---------------------------------------------------------------
@pytest.mark.parametrize("quantizer", [bnb_int8, bnb_nf4], ids=lambda q: q.name)
def test_bitsandbytes_needs_cuda(quantizer, tiny_bridge, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    ok, why = quantizer.available()
    assert not ok and why == "needs CUDA (bitsandbytes kernels); this machine has none"
    with pytest.raises(QuantizationError, match="needs CUDA"):
        quantizer.quantize(tiny_bridge)


@pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA")
def test_bitsandbytes_reports_no_cuda_here():
    assert bnb_int8.available() == (False, "needs CUDA (bitsandbytes kernels); this machine has none")


def test_bitsandbytes_names_the_install_when_missing(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import and find_spec now fail
    assert bnb_nf4.available() == (False, "pip install bitsandbytes")


def test_bitsandbytes_refuses_models_it_cannot_reload(tiny_bridge, tiny_hooked, monkeypatch):
    with pytest.raises(QuantizationError, match="kind='bridge'"):
        bnb_plugin._reload_quantized(tiny_hooked, bits=8)
    monkeypatch.setattr(tiny_bridge, PROVENANCE_ATTR, ModelProvenance(source=None), raising=False)
    with pytest.raises(QuantizationError, match="local HF folder"):
        bnb_plugin._reload_quantized(tiny_bridge, bits=4)
    monkeypatch.setattr(
        tiny_bridge, PROVENANCE_ATTR, ModelProvenance("some/folder", {"backend": "fp16"}), raising=False
    )
    with pytest.raises(QuantizationError, match="already quantized"):
        bnb_plugin._reload_quantized(tiny_bridge, bits=4)
    with pytest.raises(QuantizationError, match="8 or 4"):
        bnb_plugin._reload_quantized(tiny_bridge, bits=3)


def _check_bitsandbytes_result(model, info, float_model, tokens, bits) -> None:
    import bitsandbytes as bnb

    wanted = bnb.nn.Linear8bitLt if bits == 8 else bnb.nn.Linear4bit
    replaced = [m for m in model.original_model.modules() if isinstance(m, wanted)]
    assert len(replaced) == info["modules"] == 7 * float_model.cfg.n_layers
    assert replaced[0].weight.dtype == (torch.int8 if bits == 8 else torch.uint8)  # packed storage
    assert info["bits"] == bits and info["kernels"].startswith("bitsandbytes ")
    assert info["scheme"] == ("LLM.int8() with outlier decomposition" if bits == 8 else "nf4")
    assert model.cfg.model_name == float_model.cfg.model_name
    assert model_source(model) == model_source(float_model)
    # No TL weight processing on packed weights: logits differ from the processed float model by
    # a per-position constant (centred unembedding), so compare log-probabilities.
    ref, out = _log_probs(float_model, tokens), _log_probs(model, tokens)
    assert (out - ref).abs().max() < (0.1 if bits == 8 else 0.5)
    assert (out.argmax(-1) == ref.argmax(-1)).float().mean() >= 0.8
    _check_hooks_and_generation(model, tokens)


@pytest.mark.parametrize("bits", [8, 4])
def test_bitsandbytes_reload_path_on_cpu(bits, tiny_bridge, tokens):
    """The reload + bridge boot, driven on CPU (bitsandbytes >= 0.46 ships CPU kernels)."""
    bnb = pytest.importorskip("bitsandbytes", reason="bitsandbytes is not installed")
    if tuple(int(p) for p in bnb.__version__.split(".")[:2]) < (0, 46):
        pytest.skip(f"bitsandbytes {bnb.__version__} has no CPU kernels")
    model, info = bnb_plugin._reload_quantized(tiny_bridge, bits=bits, device="cpu")
    _check_bitsandbytes_result(model, info, tiny_bridge, tokens, bits)


@pytest.mark.skipif(not HAS_CUDA, reason="bitsandbytes quantizers need CUDA; this machine has none")
@pytest.mark.parametrize("quantizer,bits", [(bnb_int8, 8), (bnb_nf4, 4)], ids=["int8", "nf4"])
def test_bitsandbytes_on_cuda(quantizer, bits, tiny_bridge, tokens):
    pytest.importorskip("bitsandbytes", reason="pip install bitsandbytes")
    model = quantizer.quantize(tiny_bridge)
    info = quantization_info(model)
    assert info["backend"] == quantizer.name
    assert tt.model_identity(model).quantization == info
    assert str(model.cfg.device).startswith("cuda")
    _check_bitsandbytes_result(model, info, tiny_bridge, tokens, bits)


# -- torchao: int8 storage and kernels -------------------------------------------------------------
def test_torchao_available_and_missing(monkeypatch):
    installed = ao_plugin._check()[0]
    assert torchao_int8.available() == ((True, "") if installed else (False, "pip install torchao"))
    monkeypatch.setitem(sys.modules, "torchao", None)
    assert torchao_int8.available() == (False, "pip install torchao")


@pytest.fixture(scope="module")
def ao_model(tiny_bridge, float_logits):  # float_logits first: the float model must not be run in grad mode
    pytest.importorskip("torchao", reason="pip install torchao")
    return torchao_int8.quantize(tiny_bridge)


def test_torchao_stores_int8_weights(ao_model, tiny_bridge):
    info = quantization_info(ao_model)
    n_layers = tiny_bridge.cfg.n_layers
    assert info["backend"] == "torchao-int8" and info["bits"] == 8
    assert info["scheme"] == "int8 weight-only, per-channel"
    assert info["kernels"].startswith("torchao ") and info["modules"] == 7 * n_layers
    linears = {id(m): m for m in ao_model.blocks.modules() if isinstance(m, torch.nn.Linear)}.values()
    assert len(linears) == 7 * n_layers
    for linear in linears:
        weight = linear.weight
        assert hasattr(weight, "qdata") and weight.qdata.dtype == torch.int8  # real int8 storage
        assert weight.qdata.shape == weight.shape
        assert weight.scale.numel() == weight.shape[0]  # one scale per output row
    assert ao_plugin.block_linears(ao_model) == []  # nothing left in float
    assert ao_plugin._float_weight_reads(ao_model) == []  # the MLP's direct reads follow the int8 weights
    mlp = ao_model.blocks[0].mlp
    if getattr(mlp, "_use_processed_weights", False):  # compatibility mode: the MLP calls F.linear itself
        assert mlp._processed_W_gate is mlp.gate.original_component.weight
    assert info["bytes_after"] < info["bytes_before"] / 3
    # the original model is untouched
    assert ao_plugin.block_linears(tiny_bridge) and all(
        not hasattr(m.weight, "qdata") for m in ao_plugin.block_linears(tiny_bridge)
    )


def test_torchao_logits_close_to_float(ao_model, tokens, float_logits):
    with torch.no_grad():
        out = ao_model(tokens).float()
    rel = ((out - float_logits).norm() / float_logits.norm()).item()
    assert 0 < rel < 0.05  # changed (really quantized), but close
    assert (out.argmax(-1) == float_logits.argmax(-1)).float().mean() >= 0.9


def test_torchao_keeps_hooks_steering_and_generation(ao_model, tokens):
    _check_hooks_and_generation(ao_model, tokens)


def test_torchao_w8a8_int8_matmuls(tiny_bridge, tokens, float_logits):
    pytest.importorskip("torchao", reason="pip install torchao")
    model = torchao_int8.quantize(tiny_bridge, activations="int8")
    info = quantization_info(model)
    assert "W8A8" in info["scheme"] and info["bits"] == 8
    with torch.no_grad():
        out = model(tokens).float()
    assert 0 < ((out - float_logits).norm() / float_logits.norm()).item() < 0.05
    with pytest.raises(QuantizationError, match="activations must be"):
        torchao_int8.quantize(tiny_bridge, activations="int4")


def test_torchao_refuses_hooked_and_requantizing(tiny_hooked, ao_model):
    pytest.importorskip("torchao", reason="pip install torchao")
    with pytest.raises(QuantizationError, match="kind='bridge'"):
        torchao_int8.quantize(tiny_hooked)
    with pytest.raises(QuantizationError, match="no float nn.Linear"):
        ao_plugin._quantize(ao_model)  # refuses before changing anything


def test_torchao_model_identity_and_copy(ao_model, tokens):
    """A torchao model's identity records the quantization, and it can be copied (quantized further)."""
    identity = tt.model_identity(ao_model)
    assert identity.quantization == quantization_info(ao_model)
    clone = copy_model(ao_model)
    with torch.no_grad():
        assert torch.equal(clone(tokens), ao_model(tokens))
    mlp = clone.blocks[0].mlp
    if getattr(mlp, "_use_processed_weights", False):
        assert mlp._processed_W_gate is mlp.gate.original_component.weight
