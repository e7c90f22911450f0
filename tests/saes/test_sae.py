"""SAEs: the sae extractor recovers a planted feature, decompose and feature steering, clear
errors, extract end to end."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from tl_traits.plugins.extractors.sae import sae as sae_extractor

import tl_traits as tt
from tl_traits.core.vectors import TraitVector
from tl_traits.saes.sae import (
    SAEError,
    decompose,
    feature_direction,
    load_sae,
    sae_identity,
)

D_IN, D_SAE, LAYER, FEATURE = 32, 64, 1, 17


def tidy_sae(seed: int = 0, layer: int | None = LAYER, d_in: int = D_IN):
    """A tiny StandardSAE with unit decoder rows, tied encoder and a small negative encoder bias."""
    from sae_lens import StandardSAE, StandardSAEConfig

    cfg = StandardSAEConfig(d_in=d_in, d_sae=D_SAE)
    if layer is not None:
        cfg.metadata.hook_name = f"blocks.{layer}.hook_resid_post"
    model = StandardSAE(cfg)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        w = F.normalize(torch.randn(D_SAE, d_in, generator=gen), dim=-1)
        model.W_dec.copy_(w)
        model.W_enc.copy_(w.T)
        model.b_enc.fill_(-0.5)
        model.b_dec.zero_()
    return model


@pytest.fixture(scope="module")
def tiny_sae():
    return tidy_sae()


def planted(model, feature: int = FEATURE, n: int = 200, a: float = 4.0, seed: int = 1):
    """pos = noise + a·(feature's decoder row), neg = noise; shaped [n, 1, d_in]."""
    gen = torch.Generator().manual_seed(seed)
    row = model.W_dec[feature].detach()
    pos = torch.randn(n, 1, D_IN, generator=gen) + a * row
    neg = torch.randn(n, 1, D_IN, generator=gen)
    return pos, neg


@pytest.fixture(scope="module")
def chat_tiny_model(tmp_path_factory):
    """A tiny random HookedTransformer (3 layers, d_model 32) whose tokenizer has a plain chat template."""
    from tests.conftest import build_gpt2_style_tokenizer, build_tiny_hooked
    from tl_traits.core.prompts import PLAIN_CHAT_TEMPLATE

    tok = build_gpt2_style_tokenizer(tmp_path_factory.mktemp("chat_tok"), chat_template=PLAIN_CHAT_TEMPLATE)
    return build_tiny_hooked(tok, n_ctx=1024)


def test_extractor_recovers_a_planted_feature(tiny_sae):
    pos, neg = planted(tiny_sae)
    record: dict = {}
    out = sae_extractor(pos, neg, saes={LAYER: tiny_sae}, k=8, layers=[LAYER], hook="resid_post", record=record)
    row = F.normalize(tiny_sae.W_dec[FEATURE].detach(), dim=0)
    assert out.shape == (1, D_IN) and out.dtype == torch.float32
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(1))
    assert float(out[0] @ row) > 0.9
    kept = record["sae"][str(LAYER)]
    assert kept["features"][0] == FEATURE and len(kept["features"]) <= 8
    assert kept["d_sae"] == D_SAE and kept["architecture"] == "standard"
    assert kept["hook_name"] == "blocks.1.hook_resid_post"
    assert record["options"] == {"k": 8, "saes": {"1": "object"}}
    only = sae_extractor(pos, neg, saes={LAYER: tiny_sae}, k=1, layers=[LAYER])
    torch.testing.assert_close(only[0], row)  # one feature kept: exactly its decoder row
    assert torch.equal(out, sae_extractor(pos, neg, saes={LAYER: tiny_sae}, k=8, layers=[LAYER], seed=5))


def test_sae_from_a_folder_is_the_same_sae(tiny_sae, tmp_path):
    tiny_sae.save_model(tmp_path / "sae")
    loaded = load_sae(tmp_path / "sae")
    assert torch.equal(loaded.W_dec, tiny_sae.W_dec)
    ident = sae_identity(loaded)
    assert ident["path"] == str((tmp_path / "sae").resolve())
    assert ident["w_dec_sha256"] == sae_identity(tiny_sae)["w_dec_sha256"]
    pos, neg = planted(tiny_sae)
    record: dict = {}
    from_folder = sae_extractor(pos, neg, saes={LAYER: str(tmp_path / "sae")}, k=8, layers=[LAYER], record=record)
    torch.testing.assert_close(from_folder, sae_extractor(pos, neg, saes={LAYER: tiny_sae}, k=8, layers=[LAYER]))
    assert record["options"]["saes"]["1"] == {"path": ident["path"]}


def test_extractor_errors_name_the_fix(tiny_sae):
    pos, neg = planted(tiny_sae)
    two_pos, two_neg = pos.repeat(1, 2, 1), neg.repeat(1, 2, 1)
    with pytest.raises(SAEError, match=r"no SAE for layers \[0\]; SAEs are given for layers \[1\].*layers=\[1\]"):
        sae_extractor(two_pos, two_neg, saes={LAYER: tiny_sae}, layers=[0, 1])
    with pytest.raises(SAEError, match="needs SAEs and none are stored.*train-sae.*saes="):
        sae_extractor(pos, neg, layers=[LAYER])
    with pytest.raises(SAEError, match="trained on blocks.1.hook_resid_post.*under layer 1"):
        sae_extractor(pos, neg, saes={2: tiny_sae}, layers=[2])
    with pytest.raises(SAEError, match="d_in = 32 but the activations have d_model 16"):
        sae_extractor(pos[..., :16], neg[..., :16], saes={LAYER: tiny_sae}, layers=[LAYER])
    with pytest.raises(SAEError, match="k must be a positive integer"):
        sae_extractor(pos, neg, saes={LAYER: tiny_sae}, k=0, layers=[LAYER])
    with pytest.raises(SAEError, match="not a folder"):
        sae_extractor(pos, neg, saes={LAYER: "/no/such/sae"}, layers=[LAYER])


def test_decompose_ranks_a_features_own_row_first(tiny_sae):
    table = decompose(tiny_sae.W_dec[FEATURE].detach() * 3.0, tiny_sae, top=5)
    assert len(table) == 5 and table.features()[0] == FEATURE
    assert table.rows[0]["cosine"] == pytest.approx(1.0, abs=1e-5) and table.rows[0]["rank"] == 1
    assert all(abs(r["cosine"]) <= table.rows[0]["cosine"] + 1e-6 for r in table.rows)
    pos, neg = planted(tiny_sae)
    with_acts = decompose(tiny_sae.W_dec[FEATURE].detach(), tiny_sae, top=3, acts_pos=pos[:, 0], acts_neg=neg[:, 0])
    assert with_acts.rows[0]["act_diff"] > 2.0
    by_diff = decompose(torch.randn(D_IN), tiny_sae, top=1, acts_pos=pos[:, 0], acts_neg=neg[:, 0], by="act_diff")
    assert by_diff.features() == [FEATURE]
    html = with_acts.to_html()
    assert "<table" in html and f">{FEATURE}<" in html and "act_diff" in html
    assert "<html>" in with_acts.page().html and str(FEATURE) in str(with_acts)


def test_decompose_a_trait_vector_picks_the_sae_layer(tiny_sae):
    directions = torch.stack([torch.randn(D_IN), tiny_sae.W_dec[FEATURE].detach()])
    vec = TraitVector("x", F.normalize(directions, dim=-1), [0, LAYER], torch.ones(2), {}, {})
    table = decompose(vec, tiny_sae, top=3)
    assert table.layer == LAYER and table.features()[0] == FEATURE
    pos, neg = planted(tiny_sae)
    acts3 = decompose(vec, tiny_sae, top=3, acts_pos=pos.repeat(1, 2, 1), acts_neg=neg.repeat(1, 2, 1))
    assert "act_diff" in acts3.rows[0]
    unlabelled = tidy_sae(layer=None)
    with pytest.raises(SAEError, match=r"which layer\? the vector has layers \[0, 1\]"):
        decompose(vec, unlabelled)


def test_decompose_and_feature_errors(tiny_sae):
    with pytest.raises(SAEError, match="d_model 16 but the SAE reads d_in = 32"):
        decompose(torch.randn(16), tiny_sae)
    with pytest.raises(SAEError, match=r"feature 64 is out of range: this SAE has 64 features \(0..63\)"):
        feature_direction(tiny_sae, 64)
    with pytest.raises(SAEError, match="out of range"):
        feature_direction(tiny_sae, -1)
    with pytest.raises(SAEError, match="both acts_pos and acts_neg"):
        decompose(torch.randn(D_IN), tiny_sae, acts_pos=torch.randn(3, D_IN))
    with pytest.raises(SAEError, match="cannot read an SAE"):
        decompose(torch.randn(D_IN), 3)


def test_feature_steering_changes_logits_and_leaves_no_hook(tiny_sae, chat_tiny_model):
    model = chat_tiny_model
    direction = feature_direction(tiny_sae, FEATURE)
    assert direction.shape == (D_IN,) and direction.norm() == pytest.approx(1.0)
    tokens = model.to_tokens("Paris is the capital of France.")
    with torch.no_grad():
        base = model(tokens)
        with tt.steer(model, direction, LAYER, coef=8.0):
            steered = model(tokens)
        after = model(tokens)
    assert (steered - base).abs().max() > 1e-2
    assert torch.equal(after, base)
    assert sum(len(p.fwd_hooks) for p in {id(p): p for p in model.hook_dict.values()}.values()) == 0


def test_extract_end_to_end_with_the_sae_method(chat_tiny_model, tmp_path):
    trait = tt.load_trait("emotion/joy").limit(8)
    layer_sae = tidy_sae()
    vecs = tt.extract(
        chat_tiny_model,
        trait,
        ["mean_diff", "sae"],
        layers=[LAYER],
        progress=False,
        method_options={"sae": {"saes": {LAYER: layer_sae}, "k": 4}},
    )
    vec = vecs["sae"]
    assert vec.directions.shape == (1, D_IN) and vec.layers == [LAYER]
    assert vec.metadata["options"] == {"k": 4, "saes": {"1": "object"}}
    assert len(vec.metadata["sae"]["1"]["features"]) <= 4 and vec.metadata["sae"]["1"]["d_sae"] == D_SAE
    assert vecs["mean_diff"].metadata["options"] == {} and "sae" not in vecs["mean_diff"].metadata
    back = tt.TraitVectors.load(vecs.save(tmp_path / "joy.safetensors"))
    assert back["sae"].metadata == vec.metadata and torch.equal(back["sae"].directions, vec.directions)
    assert decompose(vec, layer_sae, top=4).layer == LAYER
    with pytest.raises(SAEError, match=r"no SAE for layers \[0, 2\].*layers=\[1\]"):
        tt.extract(
            chat_tiny_model,
            trait,
            "sae",
            layers=[0, 1, 2],
            progress=False,
            method_options={"sae": {"saes": {LAYER: layer_sae}}},
        )
