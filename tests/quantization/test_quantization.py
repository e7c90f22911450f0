"""Quantizers on models: weight walking on both TL kinds, the five torch quantizers, copies
and processed-weight views."""

from __future__ import annotations

import copy
import json

import einops
import pytest
import torch

import tl_traits as tt
from tl_traits.core.models import model_kind
from tl_traits.core.weight_views import tensor_aliases
from tl_traits.quantization.in_place import QUANTIZED_WEIGHTS_ATTR, can_compute
from tl_traits.quantization.quantizer import QuantizationError, copy_model, quantization_info
from tl_traits.quantization.schemes import BITS, DEFAULT_GROUP_SIZE, fake_quantize
from tl_traits.quantization.weights import linear_weights

TORCH_QUANTIZERS = ("fp16", "bf16", "int8", "int4", "nf4")
WEIGHT_ONLY = ("int8", "int4", "nf4")
LLAMA_LINEARS_PER_LAYER = 7  # q, k, v, o, gate, up, down
GPT2_LINEARS_PER_LAYER = 6  # q, k, v, o, in, out


@pytest.fixture(scope="module")
def llama_bridge(tiny_llama_folder):
    return tt.load_model(tiny_llama_folder)


@pytest.fixture(scope="module")
def llama_hooked(tiny_llama_folder):
    return tt.load_model(tiny_llama_folder, kind="hooked")


@pytest.fixture(params=["bridge", "hooked"])
def llama(request, llama_bridge, llama_hooked):
    return llama_bridge if request.param == "bridge" else llama_hooked


def _snapshot(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _tokens(model):
    return model.to_tokens("The quick brown fox jumps over the lazy dog")


def test_the_five_torch_quantizers_are_registered():
    assert set(TORCH_QUANTIZERS) <= set(tt.quantizers.names())
    for name in TORCH_QUANTIZERS:
        q = tt.quantizers.get(name)
        assert q.name == name and q.available() == (True, "")
        assert tt.quantizers.sources()[name].target == f"tl_traits.plugins.quantizers.{name}:{name}"


@pytest.mark.parametrize("name", TORCH_QUANTIZERS)
def test_quantized_copy_runs_generates_and_hooks_while_the_original_is_untouched(llama, name):
    before = _snapshot(llama)
    base_identity = tt.model_identity(llama)
    quantized = tt.quantizers.get(name).quantize(llama)
    assert quantized is not llama
    after = llama.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert tt.model_identity(llama) == base_identity and quantization_info(llama) is None

    tokens = _tokens(quantized)
    with torch.no_grad():
        logits = quantized(tokens)
        _, cache = quantized.run_with_cache(tokens, names_filter="blocks.1.hook_resid_post")
    assert torch.isfinite(logits).all() and "blocks.1.hook_resid_post" in cache
    assert not torch.equal(logits.float(), llama(tokens))
    fired = []
    with quantized.hooks(fwd_hooks=[("blocks.0.hook_resid_post", lambda act, hook: fired.append(act.dtype))]):
        texts = tt.generate(quantized, ["Hi"], max_new_tokens=3)
    assert len(texts) == 1 and isinstance(texts[0], str) and fired
    with tt.steer(quantized, torch.ones(quantized.cfg.d_model), layers=1, coef=2.0):
        assert len(tt.generate(quantized, ["Hello there"], max_new_tokens=2)) == 1

    identity = tt.model_identity(quantized)
    assert identity.quantization["backend"] == name
    assert identity.fingerprint != base_identity.fingerprint
    json.dumps(identity.to_dict())  # the record is JSON-ready


@pytest.mark.parametrize("name", WEIGHT_ONLY)
def test_weight_only_info_lists_every_linear_once(llama, name):
    info = quantization_info(tt.quantizers.get(name).quantize(llama))
    n_layers = llama.cfg.n_layers
    assert info["n_modules"] == len(info["modules"]) == n_layers * LLAMA_LINEARS_PER_LAYER
    assert len(set(info["modules"])) == len(info["modules"])
    assert info["bits"] == BITS[name] and info["scheme"] == name and info["simulated"] is True
    assert info["group_size"] == DEFAULT_GROUP_SIZE[name]
    d, d_mlp, d_kv = llama.cfg.d_model, llama.cfg.d_mlp, llama.cfg.n_key_value_heads * llama.cfg.d_head
    assert info["n_weights"] == n_layers * (2 * d * d + 2 * d * d_kv + 3 * d * d_mlp)
    assert info["code_bytes"] == info["n_weights"] * BITS[name] // 8
    assert 0 < info["weight_rel_error"] < (0.02 if name == "int8" else 0.2)
    expected = {"bridge": "blocks.0.attn.q", "hooked": "blocks.0.attn.W_Q"}[model_kind(llama)]
    assert expected in info["modules"]


def test_hooked_names_and_embeddings(llama_hooked, tiny_hooked):
    names = [s.name for s in linear_weights(llama_hooked)]
    assert {n.split(".", 2)[2] for n in names} == {
        "attn.W_Q",
        "attn._W_K",
        "attn._W_V",
        "attn.W_O",
        "mlp.W_in",
        "mlp.W_gate",
        "mlp.W_out",
    }  # GQA: the stored _W_K/_W_V, not the repeated W_K/W_V views
    with_emb = [s.name for s in linear_weights(llama_hooked, include_embeddings=True)]
    assert set(with_emb) - set(names) == {"embed.W_E", "unembed.W_U"}
    for slot in linear_weights(llama_hooked, include_embeddings=True):
        shape = slot.read().shape
        assert shape[1] == llama_hooked.cfg.d_model or slot.name.endswith(("W_O", "W_out"))
    info = quantization_info(tt.quantizers.get("int4").quantize(tiny_hooked, group_size=16))
    assert info["n_modules"] == tiny_hooked.cfg.n_layers * GPT2_LINEARS_PER_LAYER and info["group_size"] == 16


def test_bridge_embeddings_are_optional(llama_bridge):
    q = tt.quantizers.get("nf4").quantize(llama_bridge, include_embeddings=True)
    info = quantization_info(q)
    assert {"embed", "unembed"} <= set(info["modules"]) and info["include_embeddings"] is True
    assert info["n_modules"] == llama_bridge.cfg.n_layers * LLAMA_LINEARS_PER_LAYER + 2
    emb = q.embed._original_component.weight
    assert not torch.equal(emb, llama_bridge.embed._original_component.weight)


def test_bridge_and_hooked_quantize_the_same_weights_the_same_way(tiny_llama_folder, llama_bridge, llama_hooked):
    # The hooked loader folds the RMSNorm weights into W_Q/W_K/... (fold_ln=True). This random
    # tiny Llama has RMSNorm weights of exactly 1, so folding leaves the weights as they are.
    from safetensors.torch import load_file

    raw = load_file(str(tiny_llama_folder / "model.safetensors"))
    norms = [v for k, v in raw.items() if k.endswith("norm.weight")]
    if not all(torch.equal(v, torch.ones_like(v)) for v in norms):
        pytest.skip("the folder's RMSNorm weights are not 1: the hooked copy's weights are folded")
    qb = tt.quantizers.get("int8").quantize(llama_bridge)
    qh = tt.quantizers.get("int8").quantize(llama_hooked)
    q_proj = qb.blocks[0].attn.q._original_component.weight
    w_q = einops.rearrange(qh.blocks[0].attn.W_Q, "n m h -> (n h) m")
    assert torch.equal(q_proj, w_q)
    assert torch.equal(q_proj, fake_quantize(raw["model.layers.0.self_attn.q_proj.weight"], "int8"))
    down = qb.blocks[1].mlp.out._original_component.weight
    assert torch.equal(down, qh.blocks[1].mlp.W_out.T)
    # and the quantized weights are what both forwards compute with (the bridge's MLP too)
    for scheme in ("int8", "nf4"):
        qb, qh = tt.quantizers.get(scheme).quantize(llama_bridge), tt.quantizers.get(scheme).quantize(llama_hooked)
        tokens = _tokens(qb)
        with torch.no_grad():
            torch.testing.assert_close(qb(tokens), qh(tokens), atol=1e-4, rtol=1e-4)


def test_copy_model_keeps_the_bridge_processed_weights_linked(llama_bridge):
    aliases = tensor_aliases(llama_bridge)
    assert aliases, "the Llama bridge's gated MLP reads views of its Linear weights"
    clone = copy_model(llama_bridge)
    assert len(tensor_aliases(clone)) == len(aliases)
    mlp = clone.blocks[0].mlp
    weight = getattr(mlp, "in")._original_component.weight
    with torch.no_grad():
        weight.mul_(2.0)
    assert torch.equal(mlp._processed_W_in, weight)
    assert not torch.equal(llama_bridge.blocks[0].mlp._processed_W_in, weight)


def test_a_bridge_deepcopied_elsewhere_is_relinked_before_quantizing(llama_bridge):
    stale = copy.deepcopy(llama_bridge)  # plain deepcopy: processed views become detached clones
    assert len(tensor_aliases(stale)) < len(tensor_aliases(llama_bridge))
    a = tt.quantizers.get("int4").quantize(stale)
    b = tt.quantizers.get("int4").quantize(llama_bridge)
    tokens = _tokens(a)
    with torch.no_grad():
        torch.testing.assert_close(a(tokens), b(tokens))


def test_keep_codes_keeps_what_was_written(llama_hooked):
    q = tt.quantizers.get("int4").quantize(llama_hooked, keep_codes=True, group_size=32)
    kept = getattr(q, QUANTIZED_WEIGHTS_ATTR)
    slot = next(s for s in linear_weights(q) if s.name == "blocks.0.mlp.W_in")
    assert kept[slot.name].codes.dtype == torch.int8 and kept[slot.name].group_size == 32
    assert torch.equal(kept[slot.name].dequantize(), slot.read())
    assert not hasattr(llama_hooked, QUANTIZED_WEIGHTS_ATTR)


@pytest.mark.parametrize("name,dtype", [("fp16", torch.float16), ("bf16", torch.bfloat16)])
def test_half_precision_native_and_simulated(llama, name, dtype):
    native = tt.quantizers.get(name).quantize(llama)
    info = quantization_info(native)
    assert info["bits"] == 16 and info["dtype"] == str(dtype).removeprefix("torch.")
    if can_compute(dtype)[0]:  # this CPU runs the dtype: the copy really is in it
        assert info["compute"] == "native"
        assert native.cfg.dtype == dtype and tt.model_identity(native).dtype == info["dtype"]
        assert {p.dtype for p in native.parameters()} == {dtype}
    simulated = tt.quantizers.get(name).quantize(llama, compute="simulated")
    info = quantization_info(simulated)
    assert info["compute"] == "simulated" and "fallback_reason" not in info
    assert simulated.cfg.dtype == torch.float32
    for p in simulated.parameters():
        assert p.dtype == torch.float32 and torch.equal(p, p.to(dtype).float())
    if info["compute"] == "native":
        with torch.no_grad():  # the same rounded weights, computed at two precisions
            tokens = _tokens(llama)
            torch.testing.assert_close(native(tokens).float(), simulated(tokens), atol=0.1, rtol=0.1)


def test_half_precision_falls_back_to_simulated_and_says_why(llama, monkeypatch):
    from tl_traits.quantization import builders

    buffers = {n: b.clone() for n, b in llama.named_buffers() if b.is_floating_point()}
    monkeypatch.setattr(builders, "smoke_forward", lambda model: "RuntimeError: boom")
    q = tt.quantizers.get("bf16").quantize(llama)
    info = quantization_info(q)
    assert info["compute"] == "simulated" and "boom" in info["fallback_reason"]
    assert q.cfg.dtype == torch.float32 and {p.dtype for p in q.parameters()} == {torch.float32}
    for n, b in q.named_buffers():
        if n in buffers:
            assert torch.equal(b, buffers[n]), n  # buffers are back to their float32 values
    with torch.no_grad():
        assert torch.isfinite(q(_tokens(q))).all()
    with pytest.raises(QuantizationError, match="compute='simulated'"):
        tt.quantizers.get("bf16").quantize(llama, compute="native")
    monkeypatch.setattr(builders, "can_compute", lambda dtype, device: (False, "no fp16 here"))
    assert quantization_info(tt.quantizers.get("fp16").quantize(llama))["fallback_reason"] == "no fp16 here"
    with pytest.raises(ValueError, match="compute must be"):
        tt.quantizers.get("fp16").quantize(llama, compute="fast")


def test_requantizing_keeps_the_earlier_step(llama_hooked):
    q = tt.quantizers.get("int4").quantize(tt.quantizers.get("bf16").quantize(llama_hooked, compute="simulated"))
    info = quantization_info(q)
    assert info["backend"] == "int4" and info["applied_to"]["backend"] == "bf16"


def test_gpt2_bridge_split_qkv_are_quantized_and_the_unused_fused_one_is_not_counted(tmp_path, gpt2_tokenizer):
    # The GPT-2 bridge splits c_attn into q/k/v Linear copies (LayerNorm folded in) that its
    # forward uses, and keeps the raw fused c_attn (Conv1D, [inp, out]) as attn.qkv.
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(gpt2_tokenizer),
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_positions=64,
        bos_token_id=gpt2_tokenizer.bos_token_id,
        eos_token_id=gpt2_tokenizer.eos_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(tmp_path)
    gpt2_tokenizer.save_pretrained(tmp_path)
    bridge = tt.load_model(tmp_path)
    q = tt.quantizers.get("int8").quantize(bridge)
    info = quantization_info(q)
    assert info["n_modules"] == 2 * GPT2_LINEARS_PER_LAYER
    assert info["duplicates"] == ["blocks.0.attn.qkv", "blocks.1.attn.qkv"]
    d = bridge.cfg.d_model
    assert info["n_weights"] == 2 * (4 * d * d + 2 * d * bridge.cfg.d_mlp)
    for part in ("q", "k", "v", "o"):
        before = getattr(bridge.blocks[0].attn, part)._original_component.weight
        after = getattr(q.blocks[0].attn, part)._original_component.weight
        want = fake_quantize(before.T, "int8").T if part == "o" else fake_quantize(before, "int8")  # o: Conv1D
        assert torch.equal(after, want), part
    fused = bridge.blocks[0].attn.qkv._original_component.weight
    assert torch.equal(q.blocks[0].attn.qkv._original_component.weight, fake_quantize(fused.T, "int8").T)
    tokens = q.to_tokens("The quick brown fox")
    with torch.no_grad():
        assert not torch.equal(q(tokens), bridge(tokens))
