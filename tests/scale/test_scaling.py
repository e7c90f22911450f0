"""Sweeps beyond one process on a tiny random Llama: poison runs on two local workers and on Ray give what
in-process runs give, steering and quantization grids, model specs for workers, vectors on a layer's own device."""

from __future__ import annotations

import json

import pytest
import torch

import tl_traits as tt
from tl_traits.app.cli import main
from tl_traits.core.model_spec import ModelSpec
from tl_traits.core.models import ModelLoadError, weights_fingerprint
from tl_traits.scale.aggregate import aggregate
from tl_traits.scale.cluster import RayExecutor
from tl_traits.scale.grids import GridError, quantization_sweep, steering_sweep
from tl_traits.scale.local import LocalExecutor
from tl_traits.scale.poison_sweep import poison_sweep
from tl_traits.training.config import TrainConfig
from tl_traits.training.instruction_data import instruction_dataset

CONFIG = TrainConfig(lr=1e-3, epochs=1, batch_size=8, trainable="all", seed=0)
METRICS = ["asr", "clean_accuracy", "clean_loss", "n_poisoned", "steps"]


@pytest.fixture(scope="module")
def tiny(tiny_llama_folder):
    return tt.load_model(str(tiny_llama_folder), kind="bridge")


@pytest.fixture(scope="module")
def in_process(tiny, tmp_path_factory):
    runs = tmp_path_factory.mktemp("here") / "runs"
    data = instruction_dataset(16, 4, seed=0)
    result = poison_sweep(
        tiny,
        data,
        ["trigger"],
        [0.0, 0.25],
        [0],
        runs_dir=runs,
        train_config=CONFIG,
        progress=False,
        log=lambda m: None,
    )
    return runs, data, result


def test_model_spec_reloads_the_same_weights_and_refuses_changed_ones(tiny, tiny_llama_folder):
    spec = ModelSpec.of(tiny)
    assert spec.source == str(tiny_llama_folder) and spec.kind == "bridge" and spec.fingerprint
    assert spec.n_layers() == 2 and weights_fingerprint(spec.load()) == spec.fingerprint
    changed = tt.load_model(str(tiny_llama_folder), kind="bridge")
    with torch.no_grad():
        next(changed.parameters()).add_(0.01)  # e.g. fine-tuned in memory since loading
    with pytest.raises(ModelLoadError, match="changed after loading. Save it with save_pretrained"):
        ModelSpec.of(changed).load()
    quantized = tt.quantizers.get("int8").quantize(tiny)
    with pytest.raises(ModelLoadError, match="quantized since"):
        ModelSpec.of(quantized)


def test_two_local_workers_give_the_in_process_results(in_process, tiny, tmp_path):
    runs, data, here = in_process
    result = poison_sweep(
        tiny,
        data,
        ["trigger"],
        [0.0, 0.25],
        [0],
        runs_dir=tmp_path,
        train_config=CONFIG,
        executor=LocalExecutor(workers=2, progress=False),
        progress=False,
        log=lambda m: None,
    )
    assert not result.failed and result.executor["workers"] == 2
    for mine, theirs in zip(result.summaries, here.summaries):
        for key in METRICS:
            assert mine[key] == pytest.approx(theirs[key], rel=1e-4), key
    # aggregate reads either executor's folders the same way
    a, b = aggregate(runs, plot=False), aggregate(tmp_path, plot=False)
    assert a[["attack", "rate", "seed", "run"]].equals(b[["attack", "rate", "seed", "run"]])
    assert list(a.columns) == list(b.columns)


def test_ray_runs_the_poison_sweep_and_skips_what_is_done(in_process, tiny_llama_folder, tmp_path):
    pytest.importorskip("ray")
    runs, data, here = in_process
    spec = ModelSpec(str(tiny_llama_folder), "bridge")  # the caller loads nothing; each Ray worker does
    executor = RayExecutor(num_cpus=2, progress=False)
    result = poison_sweep(
        spec,
        data,
        ["trigger"],
        [0.0, 0.25],
        [0],
        runs_dir=tmp_path,
        train_config=CONFIG,
        executor=executor,
        progress=False,
        log=lambda m: None,
    )
    assert not result.failed and result.executor["executor"] == "ray"
    assert [s["clean_loss"] for s in result.summaries] == pytest.approx(
        [s["clean_loss"] for s in here.summaries], rel=1e-4
    )
    again = poison_sweep(
        spec,
        data,
        ["trigger"],
        [0.0, 0.25],
        [0],
        runs_dir=tmp_path,
        train_config=CONFIG,
        executor=RayExecutor(num_cpus=2, progress=False),
        progress=False,
        log=lambda m: None,
    )
    assert len(again.skipped) == 2  # finished runs are not sent to Ray at all


def test_steering_sweep_one_folder_per_trait_method_layer(tiny, tmp_path):
    result = steering_sweep(
        tiny,
        ["emotion/joy"],
        ["mean_diff", "probe"],
        [0, 1],
        runs_dir=tmp_path,
        questions=2,
        max_new_tokens=4,
        limit=8,
        progress=False,
        log=lambda m: None,
    )
    assert not result.failed and len(result.rows) == 4
    assert {(r["method"], r["layer"]) for r in result.rows} == {(m, n) for m in ("mean_diff", "probe") for n in (0, 1)}
    folder = tmp_path / tiny.cfg.model_name / "steering" / "emotion-joy" / "probe" / "layer_1"
    assert {"vector.safetensors", "evaluation.jsonl", "summary.csv"} <= {p.name for p in folder.iterdir()}
    vec = tt.TraitVectors.load(folder / "vector.safetensors")["probe"]
    assert vec.layers == [1]
    row = next(r for r in result.rows if r["method"] == "probe" and r["layer"] == 1)
    assert row["trait"] == "emotion/joy" and 0.0 <= row["auroc"] <= 1.0 and row["search_runs"] >= 2
    assert row["strength"] > 0 and {"baseline_score", "gain", "gain_low", "gain_high", "dev_score"} <= set(row)
    table = aggregate(tmp_path)
    assert set(table["sweep"]) == {"steering"} and (tmp_path / "aggregate.png").read_bytes()[:4] == b"\x89PNG"
    again = steering_sweep(tiny, ["emotion/joy"], ["probe"], [1], runs_dir=tmp_path, progress=False, log=lambda m: None)
    assert len(again.skipped) == 1 and again.rows[0]["auroc"] == pytest.approx(row["auroc"])
    with pytest.raises(GridError, match="at least one trait"):
        steering_sweep(tiny, [], ["probe"], [1], runs_dir=tmp_path)
    with pytest.raises(Exception, match="unknown extractor 'nope'"):
        steering_sweep(tiny, ["emotion/joy"], ["nope"], [1], runs_dir=tmp_path)


def test_quantization_sweep_and_mixed_aggregate(tiny, tmp_path, in_process):
    result = quantization_sweep(
        tiny,
        ["emotion/joy"],
        ["int8", "int4"],
        runs_dir=tmp_path,
        progress=False,
        log=lambda m: None,
        methods=["mean_diff"],
        limit=8,
        steer=False,
        drift_examples=4,
    )
    assert not result.failed and [r["backend"] for r in result.rows] == ["int8", "int4"]
    by = {r["backend"]: r for r in result.rows}
    assert by["int8"]["max_drift"] < by["int4"]["max_drift"] and 0 < by["int4"]["mean_cosine"] <= 1 + 1e-6
    assert (tmp_path / tiny.cfg.model_name / "quantization" / "emotion-joy" / "int8" / "study.json").is_file()
    # a runs folder holding two kinds of sweep: one table, one plot per kind
    runs = in_process[0]
    for path in runs.rglob("summary.csv"):
        target = tmp_path / "poison" / path.relative_to(runs)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
    table = aggregate(tmp_path)
    assert set(table["sweep"]) == {"poison", "quantization"}
    assert (tmp_path / "aggregate-poison.png").is_file() and (tmp_path / "aggregate-quantization.png").is_file()


def test_cli_steer_sweep_and_executor_errors(tiny_llama_folder, tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        main(
            [
                "steer-sweep",
                "emotion/joy",
                "--model",
                str(tiny_llama_folder),
                "--layers",
                "1",
                "--limit",
                "4",
                "--questions",
                "2",
                "--max-new-tokens",
                "4",
                "--runs-dir",
                str(tmp_path),
                "-q",
                "--json",
            ]
        )
    assert done.value.code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["executor"]["executor"] == "local" and [r["layer"] for r in out["runs"]] == [1]
    with pytest.raises(SystemExit) as bad:
        main(["steer-sweep", "emotion/joy", "--executor", "dask", "--runs-dir", str(tmp_path)])
    assert bad.value.code == 2 and "unknown executor 'dask'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as bad:
        main(["sweep", "--executor", "ray", "--workers", "2", "--runs-dir", str(tmp_path)])
    assert bad.value.code == 2 and "--workers is for --executor local" in capsys.readouterr().err


# -- a model split over devices ------------------------------------------------------------------------
def test_steering_moves_the_vector_to_the_layer_device(tiny):
    """A layer on another device (meta stands in for a second GPU here) gets the vector on that device."""
    vector = tt.extract(tiny, tt.load_trait("emotion/joy").limit(8), ["mean_diff"], layers=[1], progress=False)[
        "mean_diff"
    ]
    hooks = list(tt.steer(tiny, vector, layers=1, strength=2.0))
    name, fn = hooks[0]
    act = torch.zeros(2, 5, tiny.cfg.d_model, device="meta")
    out = fn(act, None)
    assert out.device.type == "meta" and out.shape == act.shape
    with pytest.raises(RuntimeError, match="meta"):  # what a vector left on the wrong device does
        act + vector.direction(1)


def test_capture_reduces_on_the_layer_device():
    from tl_traits.core.capture import reduce_positions

    act = torch.randn(2, 4, 8)
    weights = torch.tensor([[0.5, 0.5, 0, 0], [0, 0, 0, 1.0]])
    means, norms = reduce_positions(act, weights)
    assert torch.allclose(means[0], act[0, :2].mean(0)) and torch.allclose(means[1], act[1, 3])
    assert torch.allclose(norms[1], act[1, 3].norm())
    far, _ = reduce_positions(act.to("meta"), weights)  # weights follow the activation, never the reverse
    assert far.device.type == "meta" and far.shape == (2, 8)


def test_load_model_device_options_are_checked(tiny_llama_folder):
    with pytest.raises(ValueError, match="device_map is a Hugging Face option"):
        tt.load_model(str(tiny_llama_folder), kind="hooked", device_map="auto")
    with pytest.raises(ValueError, match="n_devices must be >= 1"):
        tt.load_model(str(tiny_llama_folder), n_devices=0)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
@pytest.mark.parametrize("kind", ["hooked", "bridge"])
def test_a_model_split_over_two_gpus_captures_and_steers_like_one(tiny_llama_folder, kind):
    one = tt.load_model(str(tiny_llama_folder), kind=kind, device="cuda:0")
    two = tt.load_model(str(tiny_llama_folder), kind=kind, n_devices=2)
    devices = {p.device for p in two.parameters()}
    assert len(devices) == 2
    trait = tt.load_trait("emotion/joy").limit(8)
    a = tt.capture(one, trait, layers="all", progress=False)
    b = tt.capture(two, trait, layers="all", progress=False)
    assert torch.allclose(a.acts, b.acts, atol=1e-4)
    vecs = tt.extract(two, trait, ["mean_diff"], activations=b, progress=False)
    with tt.steer(two, vecs["mean_diff"], layers=1, strength=4.0):
        steered = tt.generate(two, ["How was your day?"], max_new_tokens=6, greedy=True)
    with tt.steer(one, vecs["mean_diff"], layers=1, strength=4.0):
        reference = tt.generate(one, ["How was your day?"], max_new_tokens=6, greedy=True)
    assert steered == reference
