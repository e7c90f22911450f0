"""Vectors trained through the frozen model (BiPO, RePS): the objectives, the loop, its determinism and errors."""

from __future__ import annotations

import math

import pytest
import torch
from jaxtyping import Float

import tl_traits as tt
from tl_traits.training.config import TrainingError
from tl_traits.training.loss import training_pad_id
from tl_traits.training.preference import bipo_loss, preference_loss, reps_loss, response_logprobs
from tl_traits.training.sft import IGNORE_INDEX
from tl_traits.training.vector_training import (
    VectorTraining,
    _encode,
    _Forward,
    preference_triples,
    train_vectors,
)

FAST = VectorTraining(epochs=3, batch_size=4, lr=0.05)


def test_response_logprobs_sums_only_the_labelled_tokens():
    logits = torch.randn(2, 5, 7)
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, 3, 4, IGNORE_INDEX], [IGNORE_INDEX, 1, 2, 5, 6]])
    total, count = response_logprobs(logits, labels)
    logp = torch.log_softmax(logits, -1)
    assert count.tolist() == [2, 4]
    assert torch.allclose(total[0], logp[0, 1, 3] + logp[0, 2, 4])
    assert torch.allclose(total[1], logp[1, 0, 1] + logp[1, 1, 2] + logp[1, 2, 5] + logp[1, 3, 6])


def test_bipo_loss_is_log_2_at_no_change_and_flips_with_the_sign():
    zero = torch.zeros(3)
    assert math.isclose(float(bipo_loss(zero, zero, zero, zero, 1.0, 0.1)), math.log(2), rel_tol=1e-6)
    up, down = torch.full((3,), 5.0), torch.full((3,), -5.0)  # the vector raised the positive, lowered the negative
    assert (
        float(bipo_loss(up, down, zero, zero, 1.0, 0.5))
        < math.log(2)
        < float(bipo_loss(up, down, zero, zero, -1.0, 0.5))
    )


def test_reps_loss_is_reference_free_but_weights_pairs_the_model_gets_wrong():
    pos, neg = torch.tensor([-1.0]), torch.tensor([-2.0])  # steered: the positive is already more likely
    assert float(reps_loss(pos, neg, pos, neg, 1.0)) < float(reps_loss(pos, neg, pos, neg, -1.0))
    # the reference only sets the weight: a pair the unsteered model gets badly wrong pulls its wanted side harder
    pulls = []
    for ref_pos, ref_neg in ((-1.0, -1.5), (-5.0, -1.0)):  # weights 1 and 4
        wanted = pos.clone().requires_grad_(True)
        reps_loss(wanted, neg, torch.tensor([ref_pos]), torch.tensor([ref_neg]), 1.0).backward()
        pulls.append(-float(wanted.grad))
    assert 0 < pulls[0] < pulls[1]
    counts = (torch.tensor([2]), torch.tensor([4]))  # summed log-probs are divided per token
    assert torch.allclose(
        preference_loss("reps", (pos * 2, neg * 4), (pos * 2, neg * 4), counts, 1.0, 0.1),
        reps_loss(pos, neg, pos, neg, 1.0),
    )


def test_triples_pair_the_trait_sets_responses_by_prompt():
    ds = tt.load_trait("alignment/sycophancy")
    triples = preference_triples(ds)
    assert len(triples) == min(len(ds.positive), len(ds.negative))
    assert all(t.positive != t.negative for t in triples)
    assert {t.prompt for t in triples} <= {e.prompt for e in ds.positive}


@pytest.fixture(scope="module", params=["hooked", "bridge"])
def tiny(request, tiny_llama_folder):
    if request.param == "hooked":
        from tests.conftest import skip_without_hooked_transformer

        skip_without_hooked_transformer()
    return tt.load_model(str(tiny_llama_folder), kind=request.param)


def _margin(model, dataset, vectors: Float[torch.Tensor, "layer d"], layers: list[int]) -> float:
    """Mean over pairs of log p(positive) - log p(negative), per token, with `vectors` added at `layers`."""
    pairs = _encode(model, preference_triples(dataset), 256)
    forward = _Forward(model, layers, "resid_post", training_pad_id(model, None), torch.device("cpu"))
    with torch.no_grad():
        lp, counts = forward.logprobs(pairs, vectors)
    per_token = lp / counts
    n = len(pairs)
    return float((per_token[:n] - per_token[n:]).mean())


@pytest.mark.parametrize("objective", ["bipo", "reps"])
def test_training_raises_the_positive_side_when_added_and_lowers_it_when_subtracted(tiny, objective):
    ds = tt.load_trait("emotion/joy").limit(8)
    (trained,) = train_vectors(
        tiny, ds, [1], VectorTraining(objective=objective, epochs=3, batch_size=4, lr=0.05), progress=False
    )
    v = trained.vector
    assert v.shape == (tiny.cfg.d_model,)
    unsteered = _margin(tiny, ds, torch.zeros_like(v)[None], [1])
    assert _margin(tiny, ds, v[None], [1]) > unsteered + 0.05 > unsteered - 0.05 > _margin(tiny, ds, -v[None], [1])
    assert trained.record["accuracy"]["toward"] > trained.record["accuracy"]["unsteered"]
    assert trained.record["loss_by_epoch"][-1] < trained.record["loss_by_epoch"][0]
    assert trained.record["objective"] == objective and trained.record["pairs"] == 8


def test_training_is_deterministic_under_a_seed_and_leaves_the_model_as_it_was(tiny):
    ds = tt.load_trait("emotion/joy").limit(6)
    weights = [p.detach().clone() for p in tiny.parameters()]
    flags = [p.requires_grad for p in tiny.parameters()]
    first = train_vectors(tiny, ds, [0], FAST, progress=False)[0].vector
    again = train_vectors(tiny, ds, [0], FAST, progress=False)[0].vector
    other = train_vectors(tiny, ds, [0], VectorTraining(epochs=3, batch_size=4, lr=0.05, seed=1), progress=False)[
        0
    ].vector
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert all(torch.equal(a, b.detach()) for a, b in zip(weights, tiny.parameters()))
    assert [p.requires_grad for p in tiny.parameters()] == flags
    assert not any(hp.fwd_hooks for hp in tiny.hook_dict.values() if hasattr(hp, "fwd_hooks"))


def test_the_cached_lower_layers_give_the_same_likelihoods_as_a_full_pass(tiny_llama_folder):
    from tests.conftest import skip_without_hooked_transformer

    skip_without_hooked_transformer()
    model = tt.load_model(str(tiny_llama_folder), kind="hooked")
    pairs = _encode(model, preference_triples(tt.load_trait("emotion/joy").limit(4)), 256)
    pad = training_pad_id(model, None)
    for layers in ([0], [0, 1]):  # one layer, and a band (the layers above the lowest get hooks)
        cached = _Forward(model, layers, "resid_post", pad, torch.device("cpu"))
        full = _Forward(model, layers, "resid_post", pad, torch.device("cpu"))
        full.reuses = False
        assert cached.reuses
        v = torch.randn(len(layers), model.cfg.d_model, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            unsteered, _ = full.logprobs(pairs[:2], torch.zeros_like(v))
            for chunk in (pairs[:3], pairs[1:4], pairs[:2]):  # different widths reuse the cache
                a, _ = cached.logprobs(chunk, v)
                b, _ = full.logprobs(chunk, v)
                assert torch.allclose(a, b, atol=1e-4)
            assert not torch.allclose(a, unsteered, atol=1e-3)  # the vectors were added


def test_a_band_trains_its_layers_together(tiny):
    ds = tt.load_trait("emotion/joy").limit(8)
    settings = VectorTraining(objective="bipo", epochs=3, batch_size=4, lr=0.05, band=True)
    band = train_vectors(tiny, ds, [1, 0], settings, progress=False)
    assert [t.layer for t in band] == [1, 0]  # in the order asked
    assert all(t.record["band_layers"] == [0, 1] for t in band)
    assert band[0].record["accuracy"] == band[1].record["accuracy"]  # measured with both added
    together = torch.stack([band[1].vector, band[0].vector])  # layers 0 and 1
    unsteered = _margin(tiny, ds, torch.zeros_like(together), [0, 1])
    assert (
        _margin(tiny, ds, together, [0, 1]) > unsteered + 0.05 > unsteered - 0.05 > _margin(tiny, ds, -together, [0, 1])
    )
    alone = train_vectors(
        tiny, ds, [0], VectorTraining(objective="bipo", epochs=3, batch_size=4, lr=0.05), progress=False
    )
    assert "band_layers" not in alone[0].record
    assert not torch.allclose(alone[0].vector, band[1].vector)  # trained with layer 1's vector beside it


def test_one_side_trains_only_the_side_it_names(tiny):
    """direction="toward" draws only the positive sign, "away" only the negative one: the vector, added or
    subtracted as trained, moves the likelihoods the wanted way."""
    ds = tt.load_trait("emotion/joy").limit(8)
    unsteered = _margin(tiny, ds, torch.zeros(1, tiny.cfg.d_model), [1])
    for side, sign in (("toward", 1.0), ("away", -1.0)):
        settings = VectorTraining(objective="bipo", epochs=3, batch_size=4, lr=0.05, direction=side)
        (trained,) = train_vectors(tiny, ds, [1], settings, progress=False)
        assert trained.record["direction"] == side
        steered = _margin(tiny, ds, sign * trained.vector[None], [1])
        assert sign * (steered - unsteered) > 0.05  # the side it was trained for moved the wanted way


def test_bad_settings_and_layers_are_named():
    with pytest.raises(TrainingError, match="unknown objective 'dpo'"):
        VectorTraining(objective="dpo")
    with pytest.raises(TrainingError, match="epochs must be a positive integer"):
        VectorTraining(epochs=0)
    with pytest.raises(TrainingError, match="factor"):
        VectorTraining(factors=())
    with pytest.raises(TrainingError, match="band must be True or False, not 'yes'"):
        VectorTraining(band="yes")  # type: ignore[arg-type]
    with pytest.raises(TrainingError, match="unknown direction 'up'; use one of both, toward, away"):
        VectorTraining(direction="up")


def test_a_layer_outside_the_model_is_refused(tiny):
    with pytest.raises(TrainingError, match=r"layers \[5\] are not layers of this 2-layer model"):
        train_vectors(tiny, tt.load_trait("emotion/joy").limit(4), [5], FAST, progress=False)


def test_a_trait_set_without_pairs_is_refused():
    from tl_traits.core.trait_sets import TraitDataset, TraitExample

    ds = TraitDataset(
        "lonely",
        (TraitExample("a", "yes"), TraitExample("b", "sure")),
        (TraitExample("c", "no"), TraitExample("d", "nope")),
    )
    with pytest.raises(TrainingError, match="0 prompts with both a positive and a negative response"):
        preference_triples(ds)
