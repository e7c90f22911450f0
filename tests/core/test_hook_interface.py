"""Both TL model kinds offer the hook interface the library relies on: names, cfg, cache, hooks()."""

from __future__ import annotations

import pytest
import torch

import tl_traits as tt
from tl_traits.core.hook_names import HOOKS, hook_name, parse_hook_name


@pytest.fixture(scope="module", params=["tiny_hooked", "tiny_llama_bridge", "tiny_llama_hooked", "embedded_bridge"])
def any_model(request, tiny_llama_folder):
    if request.param == "tiny_hooked":
        return request.getfixturevalue("tiny_hooked")
    if request.param == "tiny_llama_bridge":
        return tt.load_model(tiny_llama_folder, kind="bridge")
    if request.param == "tiny_llama_hooked":
        return tt.load_model(tiny_llama_folder, kind="hooked")
    return request.getfixturevalue("bridge_model")


def test_hook_names_cfg_and_cache(any_model):
    cfg = any_model.cfg
    assert isinstance(cfg.n_layers, int) and isinstance(cfg.d_model, int)
    for layer in range(cfg.n_layers):
        for hook in HOOKS:
            assert hook_name(layer, hook) in any_model.hook_dict, hook_name(layer, hook)
    batch = tt.prepare_inputs(any_model, ["one two three", "four"], padding_side="right")
    last = hook_name(cfg.n_layers - 1)
    with torch.no_grad():
        _, cache = any_model.run_with_cache(batch.input_ids, names_filter=lambda n: n.endswith("hook_resid_post"))
    assert sorted(cache.keys(), key=lambda n: parse_hook_name(n)[0]) == [
        hook_name(layer) for layer in range(cfg.n_layers)
    ]
    assert cache[last].shape == (2, batch.input_ids.shape[1], cfg.d_model)


def test_hooks_context_adds_and_removes(any_model):
    seen = []
    name = hook_name(0, "resid_pre")

    # The bridge reports an alias's canonical name (blocks.0.hook_in for hook_resid_pre), so
    # the library identifies a hook by the closure it attached, never by `hook.name`.
    def record(act, hook):
        seen.append(tuple(act.shape))
        return act

    tokens = tt.prepare_inputs(any_model, "hello").input_ids
    with torch.no_grad():
        with any_model.hooks(fwd_hooks=[(name, record)]):
            any_model(tokens)
        any_model(tokens)
    assert seen == [(1, tokens.shape[1], any_model.cfg.d_model)]
    assert not any_model.hook_dict[name].fwd_hooks


def test_tiny_llama_bridge_and_hooked_compute_the_same_residuals(tiny_llama_folder):
    bridge = tt.load_model(tiny_llama_folder, kind="bridge")
    hooked = tt.load_model(tiny_llama_folder, kind="hooked")
    tokens = tt.prepare_inputs(bridge, "a short test").input_ids
    name = hook_name(1)
    with torch.no_grad():
        _, cb = bridge.run_with_cache(tokens, names_filter=name)
        _, ch = hooked.run_with_cache(tokens, names_filter=name)
    torch.testing.assert_close(cb[name], ch[name], rtol=1e-4, atol=1e-4)
    assert tt.model_identity(bridge).name == tt.model_identity(hooked).name == tiny_llama_folder.name


def test_hook_name_round_trip_and_errors():
    assert parse_hook_name(hook_name(7, "mlp_out")) == (7, "mlp_out")
    with pytest.raises(ValueError, match="unknown hook 'resid'"):
        hook_name(1, "resid")
    with pytest.raises(ValueError, match="not a per-layer hook"):
        parse_hook_name("blocks.1.attn.hook_pattern")


def test_cached_generation_matches_a_full_forward_per_token(any_model):
    """TL's KV-cache generation on this install gives the tokens uncached generation gives (transformers 5.24
    broke it for the bridge: junk after the first token), and the check says so when it does not."""
    from tl_traits.core.generation import GenerationError, check_cached_generation

    check_cached_generation(any_model)
    real = any_model.generate

    def junk_after_first(ids, **kwargs):
        out = real(ids, **kwargs).clone()
        if kwargs.get("use_past_kv_cache"):
            out[:, ids.shape[1] + 1 :] = 12  # what the broken cache produced: one repeated token
        return out

    any_model.generate = junk_after_first
    try:
        with pytest.raises(GenerationError, match="breaks TransformerLens's cached generation"):
            check_cached_generation(any_model)
    finally:
        del any_model.generate
