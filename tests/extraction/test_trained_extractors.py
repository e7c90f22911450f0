"""Trained extractors through `extract`, the registry and the CLI: bipo, reps and one of the user's own."""

from __future__ import annotations

import json

import pytest
import torch

import tl_traits as tt
from tl_traits.core.plugin_info import PluginInfo
from tl_traits.extraction.extract import ExtractionError, default_methods
from tl_traits.extraction.trained import TrainedExtractionError

QUICK = {"epochs": 2, "batch_size": 4, "lr": 0.05}


@pytest.fixture(scope="module")
def tiny(tiny_llama_folder):
    return tt.load_model(str(tiny_llama_folder))


@pytest.fixture(scope="module")
def joy():
    return tt.load_trait("emotion/joy").limit(10)


def test_trained_extractors_are_registered_listed_but_not_run_by_default(capsys):
    from tl_traits.app.cli import main

    with pytest.raises(SystemExit):
        main(["plugins", "--json"])
    listing = json.loads(capsys.readouterr().out)["extractors"]
    assert listing["bipo"]["target"].endswith("trained:bipo") and "BiPO" in listing["bipo"]["description"]
    assert {"bipo", "reps"} <= set(tt.extractors.names())
    for name in ("bipo", "reps"):
        assert "trained" in tt.extractors.info(name).kinds and not tt.extractors.info(name).by_default
    assert not {"bipo", "reps", "gradient"} & set(default_methods())  # gradient: an alias of mean_diff


def test_bipo_through_extract_steers_in_absolute_units_and_survives_a_round_trip(tiny, joy, tmp_path):
    vecs = tt.extract(tiny, joy, ["mean_diff", "bipo"], layers=[0, 1], progress=False, method_options={"bipo": QUICK})
    v = vecs["bipo"]
    assert v.units == "absolute" and vecs["mean_diff"].units == "relative"
    trained_norms = torch.tensor([v.metadata["training"][str(layer)]["norm"] for layer in (0, 1)])
    assert torch.allclose(v.act_norm, trained_norms, atol=1e-3)  # strength 1 adds the vector as trained
    assert torch.allclose(v.directions.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert v.metadata["training"]["1"]["pairs"] == 8  # trained on the train split: 2 of 10 pairs held out
    assert set(v.metrics) >= {"auroc", "accuracy"}
    path = vecs.save(tmp_path / "joy.safetensors")
    back = tt.TraitVectors.load(path)["bipo"]
    assert back.units == "absolute" and torch.allclose(back.layer_tensors()[1], v.layer_tensors()[1])
    tt.export_gguf(v, tmp_path / "joy.gguf")  # travels to llama.cpp as the vector it was trained as
    imported = tt.import_gguf(tmp_path / "joy.gguf", tiny)
    assert torch.allclose(imported.layer_tensors()[1], v.layer_tensors()[1], atol=1e-5)
    proj = tt.monitor(tiny, {"joy": v}, ["What a day!"], layers=[1], responses=["Lovely."])
    assert torch.isfinite(torch.tensor(proj.response_means("joy", 1))).all()  # monitored like any other vector


def test_a_band_trained_through_extract_steers_as_it_was_trained(tiny, joy):
    from tl_traits.core.hook_points import forward_hooks

    v = tt.extract(
        tiny, joy, ["bipo"], layers=[0, 1], progress=False, method_options={"bipo": {**QUICK, "band": True}}
    )["bipo"]
    assert all(v.metadata["training"][str(layer)]["band_layers"] == [0, 1] for layer in (0, 1))
    trained = v.layer_tensors()
    ids = tiny.to_tokens("What a day!")
    with torch.no_grad():
        with tt.steer(tiny, v, v.layers, strength=1.0):  # strength 1 at the band's layers: each vector as trained
            steered = tiny(ids)
        adding = [(f"blocks.{layer}.hook_resid_post", lambda a, hook, t=trained[layer]: a + t) for layer in (0, 1)]
        with forward_hooks(tiny, adding):
            by_hand = tiny(ids)
        plain = tiny(ids)
    assert torch.allclose(steered, by_hand, atol=1e-4)
    assert not torch.allclose(steered, plain, atol=1e-3)


def test_a_users_own_trained_extractor_is_called_with_the_model_and_the_train_split(tiny, joy):
    seen = {}

    @PluginInfo("constant", kinds=("trained",), context=("layers",), options=("scale",))
    def constant(model, dataset, *, seed=0, layers=None, scale=1.0):
        seen.update(n=len(dataset.positive) + len(dataset.negative), layers=list(layers), model=model)
        return torch.ones(len(layers), model.cfg.d_model) * scale

    vecs = tt.extract(tiny, joy, [constant], layers=[1], progress=False, method_options={"constant": {"scale": 2.0}})
    v = vecs["constant"]
    assert seen["model"] is tiny and seen["layers"] == [1] and seen["n"] == 16
    assert v.units == "absolute"
    assert torch.allclose(v.layer_tensors()[1], torch.full((tiny.cfg.d_model,), 2.0))


def test_a_trained_extractor_that_returns_the_wrong_shape_or_takes_no_such_option_is_named(tiny, joy):
    @PluginInfo("flat", kinds=("trained",), context=("layers",), options=())
    def flat(model, dataset, *, seed=0, layers=None):
        return torch.ones(model.cfg.d_model)

    with pytest.raises(TrainedExtractionError, match=r"'flat' returned \(64,\); it must return a \[layers, d_model\]"):
        tt.extract(tiny, joy, [flat], layers=[0, 1], progress=False)
    with pytest.raises(ExtractionError, match="takes no option 'momentum'"):
        tt.extract(tiny, joy, ["bipo"], layers=[1], progress=False, method_options={"bipo": {"momentum": 0.9}})


def test_a_trained_extractor_needs_responses(tiny):
    prompts = tt.TraitDataset.from_pairs([("I love this", "I hate this"), ("Great day", "Awful day")])
    with pytest.raises(ExtractionError, match="'bipo' trains on responses"):
        tt.extract(tiny, prompts, ["bipo"], layers=[1], progress=False)


def test_the_cli_trains_with_method_options(tiny_llama_folder, tmp_path, capsys):
    from tl_traits.app.cli import main

    out = tmp_path / "v.safetensors"
    with pytest.raises(SystemExit) as done:
        main(
            [
                "extract",
                "emotion/joy",
                "--model",
                str(tiny_llama_folder),
                "--methods",
                "reps",
                "--layers",
                "1",
                "--limit",
                "6",
                "--option",
                "reps.epochs=1",
                "--option",
                "reps.batch_size=4",
                "--out",
                str(out),
                "--json",
                "--quiet",
            ]
        )
    assert done.value.code == 0
    result = json.loads(capsys.readouterr().out)
    assert "reps" in result["methods"]
    record = tt.TraitVectors.load(out)["reps"].metadata["training"]["1"]
    assert record["epochs"] == 1 and record["objective"] == "reps"
    with pytest.raises(SystemExit) as bad:
        main(
            [
                "extract",
                "emotion/joy",
                "--model",
                str(tiny_llama_folder),
                "--methods",
                "reps",
                "--option",
                "epochs=1",
                "--quiet",
            ]
        )
    assert bad.value.code != 0
