"""sae-lens's SAE-attaching model classes: sae_ready converts both kinds in place; capture and
steering see attached SAEs."""

from __future__ import annotations

import pytest
import torch

import tl_traits as tt
from tests.saes.test_sae import tidy_sae
from tl_traits.core.hook_points import HookNameError, forward_hooks
from tl_traits.saes.models import sae_ready
from tl_traits.saes.training import train_sae

LAYER, NAME = 1, "blocks.1.hook_resid_post"
TEXT = "The weather was lovely and everyone smiled."


@pytest.fixture(params=["hooked", "bridge"])
def ready(request, tiny_llama_folder):
    model = tt.load_model(tiny_llama_folder, kind=request.param)
    tokens = model.to_tokens(TEXT)
    with torch.no_grad():
        before = model(tokens)
    converted = sae_ready(model)
    return converted, tokens, before


def _resid(model, tokens):
    seen = {}
    with torch.no_grad(), forward_hooks(model, [(NAME, lambda act, hook: seen.setdefault("x", act.detach().clone()))]):
        model(tokens)
    return seen["x"]


def _no_hooks_left(model) -> bool:
    points = {id(p): p for p in model.hook_dict.values()}.values()
    return sum(len(p.fwd_hooks) for p in points) == 0


def test_sae_ready_converts_in_place_and_changes_nothing(ready):
    from sae_lens import HookedSAETransformer, SAETransformerBridge

    model, tokens, before = ready
    assert isinstance(model, (HookedSAETransformer, SAETransformerBridge))
    assert sae_ready(model) is model
    with torch.no_grad():
        torch.testing.assert_close(model(tokens), before)
    assert model.acts_to_saes == {}


def test_capture_reads_what_flows_past_an_attached_sae(ready):
    model, tokens, _ = ready
    sae = tidy_sae(layer=LAYER, d_in=model.cfg.d_model)
    plain = _resid(model, tokens)
    with model.saes([sae], use_error_term=True):  # error term: the model runs on the original activation
        torch.testing.assert_close(_resid(model, tokens), plain)
    with model.saes([sae], use_error_term=False):  # no error term: it runs on the reconstruction
        with torch.no_grad():
            recon = sae.decode(sae.encode(plain))
        torch.testing.assert_close(_resid(model, tokens), recon)
    assert model.acts_to_saes == {} and _no_hooks_left(model)


def test_steering_acts_through_an_attached_sae_and_comes_off(ready):
    model, tokens, before = ready
    sae = tidy_sae(layer=LAYER, d_in=model.cfg.d_model)
    direction = torch.nn.functional.normalize(
        torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(0)), dim=0
    )
    with torch.no_grad(), model.saes([sae], use_error_term=True):
        attached = model(tokens)
        with tt.steer(model, direction, LAYER, coef=6.0):
            steered = model(tokens)
            resid = _resid(model, tokens)
        again = model(tokens)
    torch.testing.assert_close(attached, before, atol=1e-4, rtol=1e-4)
    assert (steered - attached).abs().max() > 1e-2  # a hook on the orphaned point would change nothing
    torch.testing.assert_close(again, attached)
    assert _no_hooks_left(model)
    assert resid.shape[-1] == model.cfg.d_model


def test_an_sae_we_trained_attaches_and_its_features_match_encode(ready):
    model, tokens, _ = ready
    corpus = [TEXT, "A quiet morning by the lake.", "Numbers: one, two, three, four."] * 4
    result = train_sae(model, LAYER, corpus, d_sae=32, k=4, n_tokens=256, batch_tokens=64, progress=False)
    sae = result.sae
    plain = _resid(model, tokens)
    with torch.no_grad():
        _, cache = model.run_with_cache_with_saes(tokens, saes=[sae], use_error_term=True)
    key = model.get_sae_hook_name(sae) if hasattr(model, "get_sae_hook_name") else f"{NAME}.hook_sae_acts_post"
    torch.testing.assert_close(cache[key], sae.encode(plain).detach())
    assert model.acts_to_saes == {}


def test_unknown_hook_names_say_so(ready):
    model, tokens, _ = ready
    with pytest.raises(HookNameError, match="no hook point 'blocks.9.hook_resid_post'"):
        with forward_hooks(model, [("blocks.9.hook_resid_post", lambda a, hook: None)]):
            pass
    assert _no_hooks_left(model)
