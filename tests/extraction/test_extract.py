"""extract(): all methods through one path, held-out metrics, user plugins, errors, save/load."""

from __future__ import annotations

import pytest
import torch

import tl_traits as tt
from tl_traits.core.registry import UnknownPluginError
from tl_traits.core.trait_sets import TraitDataError
from tl_traits.extraction.extract import ExtractionError

BUILT_INS = ["gradient", "mean_diff", "pca_center", "pca_diff", "probe", "random_baseline"]


@pytest.fixture(scope="module")
def joy_small():
    return tt.load_trait("emotion/joy").limit(24)


@pytest.fixture(scope="module")
def joy_acts(bridge_model, joy_small):
    return tt.capture(bridge_model, joy_small, layers=[3, 12, 20], position="response[:]", progress=False)


def test_every_builtin_runs_through_extract(bridge_model, joy_small, joy_acts, tmp_path):
    assert set(BUILT_INS) <= set(tt.extractors.names())
    vecs = tt.extract(bridge_model, joy_small, BUILT_INS, position="response[:]", activations=joy_acts)
    assert vecs.methods == BUILT_INS and vecs.layers == [3, 12, 20]
    for name in BUILT_INS:
        vec = vecs[name]
        assert vec.directions.shape == (3, 576) and vec.directions.dtype == torch.float32
        torch.testing.assert_close(vec.directions.norm(dim=-1), torch.ones(3))
        assert set(vec.metrics) == {"auroc", "accuracy", "cohens_d", "polarity", "baseline"}
        assert (vec.act_norm > 0).all()
    assert (vecs["mean_diff"].metrics["auroc"] >= 0.9).all()  # joy separates on held-out pairs
    assert (vecs["mean_diff"].metrics["polarity"] == 1).all()
    assert vecs.metadata["dataset"]["n_val"] == 10 and vecs.metadata["dataset"]["held_out"]
    assert vecs.metadata["model"]["name"] == "SmolLM2-135M-Instruct"
    assert vecs.metadata["prompt_settings"]["chat_template_sha256"]
    back = tt.TraitVectors.load(vecs.save(tmp_path / "joy.safetensors"))
    assert torch.equal(back["probe"].directions, vecs["probe"].directions)
    back["probe"].check_model(bridge_model)
    assert "mean_diff" in vecs.report()


def test_capture_inside_extract_equals_reused_activations(bridge_model, joy_small, joy_acts):
    direct = tt.extract(
        bridge_model, joy_small, "mean_diff", layers=[3, 12, 20], position="response[:]", progress=False
    )
    reused = tt.extract(bridge_model, joy_small, "mean_diff", position="response[:]", activations=joy_acts)
    torch.testing.assert_close(direct["mean_diff"].directions, reused["mean_diff"].directions)


def test_user_extractor_via_decorator_runs_the_same_path(bridge_model, joy_small, joy_acts):
    calls = {}

    @tt.extractors.register("first_positive")
    def first_positive(pos, neg, *, seed=0, scale=1.0):
        calls["shapes"] = (tuple(pos.shape), tuple(neg.shape), scale)
        return pos[0] * scale

    try:
        vecs = tt.extract(
            bridge_model,
            joy_small,
            ["mean_diff", "first_positive"],
            activations=joy_acts,
            method_options={"first_positive": {"scale": 2.0}},
        )
    finally:
        tt.extractors.unregister("first_positive")
    assert calls["shapes"] == ((19, 3, 576), (19, 3, 576), 2.0)
    first_train = joy_small.split_indices(0.2, seed=0)[0][0]  # the first positive in the train split
    expected = joy_acts.acts[first_train] / joy_acts.acts[first_train].norm(dim=-1, keepdim=True)
    torch.testing.assert_close(vecs["first_positive"].directions, expected)
    assert vecs["first_positive"].metadata["options"] == {"scale": 2.0}


def test_a_plain_fit_function_runs_unregistered_like_a_judge_function(bridge_model, joy_small, joy_acts):
    """extract(model, trait, [my_function]) works as make_judge(my_function) does: no registration needed."""

    def last_negative(pos, neg, *, seed=0, layers=None):
        assert layers == list(joy_acts.layers)  # context keywords reach a function that names them
        return -neg[-1]

    vecs = tt.extract(bridge_model, joy_small, ["mean_diff", last_negative], activations=joy_acts, progress=False)
    assert vecs.methods == ["mean_diff", "last_negative"] and "last_negative" not in tt.extractors
    alone = tt.extract(bridge_model, joy_small, last_negative, activations=joy_acts, progress=False)
    torch.testing.assert_close(alone["last_negative"].directions, vecs["last_negative"].directions)
    with pytest.raises(ExtractionError, match="one extractor twice"):
        tt.extract(bridge_model, joy_small, [last_negative, last_negative], activations=joy_acts, progress=False)
    with pytest.raises(ExtractionError, match="registered name or a fit function"):
        tt.extract(bridge_model, joy_small, [3], activations=joy_acts, progress=False)


def test_extract_errors_name_the_fix(bridge_model, joy_small, joy_acts):
    with pytest.raises(UnknownPluginError, match="unknown extractor 'mean-diff'.*mean_diff"):
        tt.extract(bridge_model, joy_small, "mean-diff", activations=joy_acts)
    with pytest.raises(ExtractionError, match="method_options for \\['probe'\\]"):
        tt.extract(bridge_model, joy_small, "mean_diff", activations=joy_acts, method_options={"probe": {}})

    @tt.extractors.register("bad_shape")
    def bad_shape(pos, neg, *, seed=0):
        return pos.mean(0)[0]

    try:
        with pytest.raises(
            ExtractionError, match="'bad_shape' returned \\(576,\\); it must return a \\[layers, d_model\\]"
        ):
            tt.extract(bridge_model, joy_small, "bad_shape", activations=joy_acts)
    finally:
        tt.extractors.unregister("bad_shape")
    prompts_only = tt.TraitDataset(
        "p", [tt.TraitExample("a"), tt.TraitExample("b")], [tt.TraitExample("c"), tt.TraitExample("d")]
    )
    with pytest.raises(TraitDataError, match="without responses.*generate_responses"):
        tt.extract(bridge_model, prompts_only, "mean_diff")
    with pytest.raises(TraitDataError, match="0 negative"):
        tt.extract(bridge_model, tt.TraitDataset("e", joy_small.positive, []), "mean_diff")


def test_generate_responses_fills_and_vets(bridge_model):
    trait = tt.TraitDataset(
        "mini",
        [tt.TraitExample("Say hello.", system="You are extremely cheerful."), tt.TraitExample("Greet me.", "Hi!")],
        [tt.TraitExample("Say hello.", system="You are very gloomy."), tt.TraitExample("Greet me.", "Hey.")],
    )
    filled = tt.generate_responses(bridge_model, trait, max_new_tokens=12)
    assert filled.has_responses and filled.positive[1].response == "Hi!"  # kept as given
    for ex, done in ((trait.positive[0], filled.positive[0]), (trait.negative[0], filled.negative[0])):
        assert done.response == tt.generate(bridge_model, [ex.messages()], max_new_tokens=12)[0].strip()
    vetted = tt.generate_responses(
        bridge_model, trait, max_new_tokens=12, judge=lambda q, r: [100.0 if "!" in x else 0.0 for x in r]
    )
    assert all("!" in e.response for e in vetted.positive)
    assert all("!" not in e.response for e in vetted.negative)
    assert vetted.extra["vetted"]["of"] == [2, 2]


def test_cohens_d_is_nan_and_warned_with_fewer_than_five_held_out_per_class():
    from tl_traits.extraction.extract import score_directions

    gen = torch.Generator().manual_seed(0)
    train_pos, train_neg = torch.randn(8, 2, 4, generator=gen) + 1, torch.randn(8, 2, 4, generator=gen)
    directions = torch.eye(4)[:2]
    one_each = torch.ones(1, 2, 4), torch.zeros(1, 2, 4)  # zero spread: d used to come out near 1e12
    with pytest.warns(UserWarning, match="held-out classes have 1 and 1 examples"):
        metrics = score_directions(directions, train_pos, train_neg, *one_each)
    assert torch.isnan(metrics["cohens_d"]).all() and (metrics["auroc"] == 1).all()
    five_each = torch.randn(5, 2, 4, generator=gen) + 1, torch.randn(5, 2, 4, generator=gen)
    assert torch.isfinite(score_directions(directions, train_pos, train_neg, *five_each)["cohens_d"]).all()
