"""The `tl-traits` command line on tiny inputs: results, JSON output, exit codes and one-line errors."""

from __future__ import annotations

import io
import json
import re

import pytest
import torch
import typer

import tl_traits as tt
from tl_traits.app import report as report_module
from tl_traits.app.cli import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, main, run_app
from tl_traits.core.errors import TlTraitsError
from tl_traits.extraction.extract import default_methods


def call(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(list(argv))
    out, err = capsys.readouterr()
    return done.value.code, out, err


@pytest.fixture(scope="module")
def tiny_vectors(tmp_path_factory, tiny_llama_folder):
    path = tmp_path_factory.mktemp("cli") / "joy.safetensors"
    with pytest.raises(SystemExit) as done:
        main(
            [
                "extract",
                "emotion/joy",
                "--model",
                str(tiny_llama_folder),
                "--limit",
                "5",
                "--methods",
                "mean_diff,probe",
                "--out",
                str(path),
                "--quiet",
            ]
        )
    assert done.value.code == EXIT_OK
    return path


def test_plugins_lists_every_registry_with_its_source(capsys):
    code, out, _ = call(capsys, "plugins", "--json")
    listing = json.loads(out)
    assert code == EXIT_OK
    assert set(listing) == {"extractors", "judges", "attacks", "quantizers"}
    assert set(tt.extractors.names()) <= set(listing["extractors"])
    probe = listing["extractors"]["probe"]
    assert probe["distribution"].startswith("tl-traits") and probe["target"].endswith(":probe")
    code, out, _ = call(capsys, "plugins")
    assert "refusal" in out and "entry point" in out
    assert "difference of class means" in out  # each plugin's description
    assert listing["attacks"]["trigger"]["description"].startswith("put a trigger phrase")  # from its module docstring
    assert listing["extractors"]["mean_diff"]["available"] is True
    import torch as _torch

    if not _torch.cuda.is_available():  # availability says why bitsandbytes cannot run here
        bnb = listing["quantizers"]["bitsandbytes-int8"]
        assert bnb["available"] is False and "CUDA" in bnb["why"]
        assert "[not available: needs CUDA" in out


def test_bad_input_is_one_line_and_exit_2(capsys):
    code, out, err = call(capsys, "extract", "no/such-trait", "--quiet")
    assert code == EXIT_BAD_INPUT
    assert err.startswith("error: ") and "no/such-trait" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    code, _, err = call(capsys, "report", "/nonexistent/out")
    assert code == EXIT_BAD_INPUT and "tl-traits run --out" in err
    code, _, err = call(capsys, "extract", "emotion/joy", "--layers", "a,b")
    assert code == EXIT_BAD_INPUT and "layers must be" in err


@pytest.mark.parametrize("error", [ValueError("boom"), IndexError("boom"), RuntimeError("boom")])
def test_an_error_that_is_not_ours_is_a_bug_exit_1(capsys, monkeypatch, error):
    def torch_like(*args, **kwargs):
        raise error  # what torch raises on a bad shape or index: our bug, not the user's input

    monkeypatch.setattr(report_module, "write_report", torch_like)
    code, _, err = call(capsys, "report", "out")
    assert code == EXIT_FAILED
    assert err == "error: boom (rerun with --debug for the traceback)\n"


def test_our_errors_are_bad_input_exit_2_on_one_line(capsys, monkeypatch):
    class SomeInputError(TlTraitsError):
        pass

    def refuse(*args, **kwargs):
        raise SomeInputError("out/ is not a run folder; run `tl-traits run` first\n(details on a second line)")

    monkeypatch.setattr(report_module, "write_report", refuse)
    code, _, err = call(capsys, "report", "out")
    assert code == EXIT_BAD_INPUT
    assert err == "error: out/ is not a run folder; run `tl-traits run` first\n"


@pytest.mark.parametrize(
    "raised, code, message",
    [
        (
            KeyboardInterrupt(),
            130,
            "interrupted\n",
        ),  # Ctrl-C inside a command: typer returns 130, which main used to drop
        (typer.Exit(EXIT_FAILED), EXIT_FAILED, ""),  # a sweep with a failed run ends with typer.Exit(1)
        (typer.Abort(), 130, "interrupted\n"),
    ],
)
def test_main_exits_with_the_commands_own_code(capsys, monkeypatch, raised, code, message):
    def stop(*args, **kwargs):
        raise raised

    monkeypatch.setattr(report_module, "write_report", stop)
    got, _, err = call(capsys, "report", "out")
    assert (got, err) == (code, message)


def test_a_failed_sweep_run_exits_1(capsys, tmp_path):
    from types import SimpleNamespace

    from tl_traits.app.cli.sweeps import finish_sweep

    result = SimpleNamespace(
        failed=[(tmp_path / "run-1", "Traceback...\nRuntimeError: out of memory")],
        skipped=[],
        seconds=1.0,
        executor="local",
    )
    app = typer.Typer()
    app.command()(lambda: finish_sweep(result, tmp_path, 0, as_json=False))
    assert run_app(app, []) == EXIT_FAILED
    assert "FAILED" in capsys.readouterr().err


def test_a_missing_data_file_is_bad_input(capsys, tmp_path):
    code, _, err = call(capsys, "poison", "--out", str(tmp_path / "p"), "--data", str(tmp_path / "rows.jsonl"))
    assert code == EXIT_BAD_INPUT and err.startswith("error: --data ") and "no such file" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "p").exists()


def test_debug_shows_the_traceback():
    with pytest.raises(Exception, match="no/such-trait"):
        main(["--debug", "extract", "no/such-trait", "--quiet"])


def test_extract_json_reports_every_method(capsys, tiny_vectors, tiny_llama_folder):
    vecs = tt.TraitVectors.load(tiny_vectors)
    assert vecs.methods == ["mean_diff", "probe"]
    assert vecs.metadata["dataset"]["n_train"] + vecs.metadata["dataset"]["n_val"] == 10  # --limit 5 per side
    code, out, _ = call(
        capsys,
        "extract",
        "emotion/joy",
        "--model",
        str(tiny_llama_folder),
        "--limit",
        "4",
        "--methods",
        "mean_diff",
        "--layers",
        "1",
        "--json",
        "--quiet",
    )
    result = json.loads(out)
    assert code == EXIT_OK and result["saved"] is None
    assert result["methods"]["mean_diff"]["best_layer"] == 1
    assert 0.0 <= result["methods"]["mean_diff"]["auroc"] <= 1.0


def test_steer_zero_strength_changes_nothing_and_large_strength_does(capsys, tiny_vectors, tiny_llama_folder):
    args = [
        "steer",
        str(tiny_vectors),
        "--model",
        str(tiny_llama_folder),
        "--layer",
        "1",
        "--prompt",
        "Hi, how are you?",
        "--max-new-tokens",
        "8",
        "--json",
    ]
    code, out, _ = call(capsys, *args, "--strength", "0")
    (row,) = json.loads(out)
    assert code == EXIT_OK and row["steered"] == row["unsteered"]
    code, out, _ = call(capsys, *args, "--strength", "20")
    (row,) = json.loads(out)
    assert row["steered"] != row["unsteered"] and row["layer"] == 1


def test_steer_interactive_reads_until_an_empty_line(capsys, monkeypatch, tiny_vectors, tiny_llama_folder):
    monkeypatch.setattr("sys.stdin", io.StringIO("Hello there\nTell me a joke\n\nnever read\n"))
    code, out, err = call(
        capsys, "steer", str(tiny_vectors), "--model", str(tiny_llama_folder), "--max-new-tokens", "4", "--no-compare"
    )
    assert code == EXIT_OK
    assert out.count("steered (layer") == 2 and "unsteered" not in out
    assert "empty line" in err


def test_evaluate_and_monitor_json(capsys, tmp_path, tiny_vectors, tiny_llama_folder):
    log = tmp_path / "eval.jsonl"
    code, out, _ = call(
        capsys,
        "evaluate",
        str(tiny_vectors),
        "emotion/joy",
        "--model",
        str(tiny_llama_folder),
        "--layers",
        "0,1",
        "--limit",
        "2",
        "--max-new-tokens",
        "6",
        "--log",
        str(log),
        "--json",
        "--quiet",
    )
    result = json.loads(out)
    assert code == EXIT_OK and [r["setting"] for r in result["dev_search"]] == [
        "mean_diff, layer 0",
        "mean_diff, layer 1",
    ]
    chosen = result["groups"]["mean_diff"]
    assert chosen["layers"][0] in (0, 1) and chosen["unsteered_test_score"] == result["unsteered"]["test"]
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert lines[0]["type"] == "header" and len(lines[0]["dev"]) == 2 and len(lines[0]["test"]) == 2
    assert {x["type"] for x in lines} == {"header", "baseline", "ladder", "run"}

    page = tmp_path / "tokens.html"
    code, out, _ = call(
        capsys,
        "monitor",
        str(tiny_vectors),
        "--model",
        str(tiny_llama_folder),
        "--layer",
        "1",
        "--prompt",
        "How was your day?",
        "--max-new-tokens",
        "5",
        "--out",
        str(page),
        "--json",
        "--quiet",
    )
    records = json.loads(out)
    assert code == EXIT_OK and {r["layer"] for r in records} == {1} and {r["trait"] for r in records} == {"joy"}
    assert {"prompt", "response"} <= {r["segment"] for r in records}
    assert "CircuitsVis.render(" in page.read_text()

    code, out, _ = call(
        capsys,
        "monitor",
        str(tiny_vectors),
        "--model",
        str(tiny_llama_folder),
        "--limit",
        "4",
        "--max-new-tokens",
        "5",
        "--json",
        "--quiet",
    )
    analysis = json.loads(out)
    assert code == EXIT_OK and len(analysis["rows"]) == 4
    assert {r["group"] for r in analysis["rows"]} <= {"refused", "answered", None}


def test_run_writes_the_whole_output_folder(capsys, tiny_run_dir):
    summary = json.loads((tiny_run_dir / "results" / "summary.json").read_text())
    assert list(summary["traits"]) == ["emotion/joy", "alignment/refusal"]
    for info in summary["traits"].values():
        vecs = tt.TraitVectors.load(tiny_run_dir / info["vectors"])
        assert set(vecs.methods) == set(default_methods()) and "sae" not in vecs.methods  # every default method
        assert vecs.layers == [0, 1]  # at every layer
        assert (tiny_run_dir / info["steering_log"]).is_file()
    rows = [json.loads(x) for x in (tiny_run_dir / "results" / "requests.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all({"id", "note", "prompt", "response", "group", "projection"} <= set(r) for r in rows)
    assert (tiny_run_dir / "report.html").stat().st_size > 100_000
    assert sorted(p.name for p in (tiny_run_dir / "plots").iterdir()) == [
        "alignment-refusal-layers.png",
        "alignment-refusal-sweep.png",
        "emotion-joy-layers.png",
        "emotion-joy-sweep.png",
        "groups-by-note.png",
        "groups.png",
    ]
    before = (tiny_run_dir / "report.html").read_text()
    (tiny_run_dir / "report.html").unlink()
    code, out, _ = call(capsys, "report", str(tiny_run_dir))
    assert code == EXIT_OK and str(tiny_run_dir / "report.html") in out
    rebuilt = (tiny_run_dir / "report.html").read_text()
    data = re.compile(r"id='prompt-data'>(.*?)</script>", re.S)
    assert json.loads(data.search(rebuilt).group(1)) == json.loads(data.search(before).group(1)) == rows


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf"])
def test_steer_refuses_a_strength_that_is_not_finite_before_loading(capsys, tmp_path, bad):
    code, _, err = call(capsys, "steer", str(tmp_path / "missing.safetensors"), "--strength", bad, "--prompt", "hi")
    assert code == EXIT_BAD_INPUT and "--strength" in err and "finite" in err


def test_json_output_has_no_bare_nan(capsys):
    from tl_traits.app.cli.options import emit

    emit({"score": float("nan"), "rows": [1.5, float("inf")], "name": "x"})
    out = capsys.readouterr().out
    assert json.loads(out) == {"score": None, "rows": [1.5, None], "name": "x"}


def test_a_limit_run_says_its_metrics_are_anecdotal(capsys, tiny_llama_folder):
    code, out, err = call(
        capsys,
        "extract",
        "emotion/joy",
        "--model",
        str(tiny_llama_folder),
        "--limit",
        "4",
        "--methods",
        "mean_diff",
        "--layers",
        "1",
        "--json",
        "--quiet",
    )
    assert code == EXIT_OK and json.loads(out)["anecdotal"] is True
    assert "anecdotal" in err and "drop --limit" in err and "Warning" not in err
    assert json.loads(out)["methods"]["mean_diff"]["cohens_d"] is None  # NaN, printed as null


def test_output_paths_are_checked_before_any_model_work(capsys, tmp_path, monkeypatch):
    from tl_traits.app.cli import options

    monkeypatch.setattr(
        options, "load_model", lambda *a, **k: pytest.fail("the model was loaded before the path check")
    )
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    cases = [
        (["extract", "emotion/joy", "--out", str(tmp_path)], "is a folder"),
        (
            ["extract", "emotion/joy", "--out", str(a_file / "v.safetensors")],
            "is a file, so nothing can be written under it",
        ),
        (["run", "--out", str(a_file)], "is a file, not a folder"),
        (["poison", "--out", str(a_file / "sub")], "is a file, so nothing can be written under it"),
        (["monitor", str(tmp_path / "v.safetensors"), "--prompt", "hi", "--out", str(tmp_path)], "is a folder"),
    ]
    for argv, message in cases:
        code, _, err = call(capsys, *argv)
        assert code == EXIT_BAD_INPUT and message in err, (argv, err)


def test_steer_defaults_to_a_mid_depth_layer_not_the_detection_layer(capsys, tmp_path):
    from tl_traits.app.cli.vectors import _default_layer
    from tl_traits.steering.layers import default_steering_layer

    assert default_steering_layer(30, list(range(30))) == 12
    assert default_steering_layer(30, [1, 5, 20]) == 5  # the nearest extracted layer
    auroc = torch.full((30,), 0.9)
    auroc[2] = 1.0
    vec = tt.TraitVector(
        "mean_diff",
        torch.ones(30, 4),
        list(range(30)),
        torch.ones(30),
        {"auroc": auroc, "cohens_d": torch.ones(30)},
        {"model": {"n_layers": 30}},
    )
    assert vec.best_layer() == 2 and _default_layer(vec) == 12  # detection's best layer is not where steering works


def test_quiet_means_no_bar_at_all(tiny_llama_folder, tmp_path):
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tl_traits.app.cli",
            "extract",
            "emotion/joy",
            "--model",
            str(tiny_llama_folder),
            "--limit",
            "6",
            "--methods",
            "mean_diff",
            "--layers",
            "1",
            "--quiet",
            "--out",
            str(tmp_path / "v.safetensors"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Loading weights" not in done.stderr and "it/s" not in done.stderr, done.stderr


def test_steer_shows_its_progress_unless_quiet(capsys, tiny_vectors, tiny_llama_folder):
    args = [
        "steer",
        str(tiny_vectors),
        "--model",
        str(tiny_llama_folder),
        "--layer",
        "1",
        "--prompt",
        "Hi",
        "--max-new-tokens",
        "4",
    ]
    code, out, err = call(capsys, *args)
    assert code == EXIT_OK and "steered (layer 1" in out
    assert "load model" in err and "unsteered (1 prompt)" in err and "steered at layer 1, strength 0.5" in err
    code, out, err = call(capsys, *args, "--quiet")
    assert code == EXIT_OK and "steered (layer 1" in out and "load model" not in err and "steered at layer" not in err


def test_export_gguf_writes_a_control_vector_for_llama_cpp(capsys, tmp_path, tiny_vectors):
    import gguf

    out = tmp_path / "joy.gguf"
    code, text, _ = call(capsys, "export-gguf", str(tiny_vectors), "-o", str(out), "--strength", "0.5")
    assert code == EXIT_OK and "--control-vector-scaled" in text
    reader = gguf.GGUFReader(str(out))
    assert [t.name for t in reader.tensors] == ["direction.1"]  # the tiny model's layers 0-1; llama.cpp cannot steer 0
    code, _, err = call(capsys, "export-gguf", str(tiny_vectors), "-o", str(tmp_path / "x.gguf"), "--layers", "0")
    assert code == 2 and "direction.0" in err and not (tmp_path / "x.gguf").exists()


def test_warnings_print_as_one_readable_line():
    import warnings

    from tl_traits.app.cli import one_line_warning

    text = one_line_warning(
        UserWarning("held-out classes have 2 and 2 examples; d is NaN\nmore"),
        UserWarning,
        "/x/extract.py",
        85,
        "    metrics = score_directions(...)",
    )
    assert text == "warning: held-out classes have 2 and 2 examples; d is NaN\n"
    assert warnings.formatwarning is not None


@pytest.mark.parametrize(
    "command", [["steer", "{vectors}", "--prompt", "hi"], ["export-gguf", "{vectors}", "-o", "{out}"]]
)
@pytest.mark.parametrize("strength", ["1e39", "-1e39", "nan"])
def test_a_strength_that_overflows_float32_is_refused_before_any_work(capsys, tmp_path, command, strength):
    """1e39 passed the finiteness check: steer generated empty text, export-gguf died with a struct error (exit 1)."""
    out = tmp_path / "v.gguf"
    argv = [a.format(vectors=tmp_path / "missing.safetensors", out=out) for a in command]
    code, _, err = call(capsys, *argv, "--strength", strength)
    assert code == EXIT_BAD_INPUT and "--strength" in err and not out.exists()
    assert ("overflows float32" if "e39" in strength else "finite") in err


def test_export_gguf_checks_its_strength_through_the_one_number_check(tmp_path, tiny_vectors):
    import dataclasses

    import numpy as np

    from tl_traits.core.vectors import TraitVectors, VectorError
    from tl_traits.interop.block_outputs import InteropError

    vec = TraitVectors.load(tiny_vectors)["mean_diff"]
    for bad in (1e39, float("nan")):
        with pytest.raises(InteropError, match="strength"):
            tt.export_gguf(vec, tmp_path / "x.gguf", strength=bad)
    loud = dataclasses.replace(vec, act_norm=torch.full_like(vec.act_norm, 100.0))
    with pytest.raises(VectorError, match="strength 1e\\+38 times .* overflows float32"):
        tt.export_gguf(loud, tmp_path / "x.gguf", strength=1e38)  # finite in float32, but not x a norm of 100
    assert not (tmp_path / "x.gguf").exists()
    assert tt.export_gguf(vec, tmp_path / "ok.gguf", strength=np.float32(0.5)).exists()


def test_no_command_writes_over_one_of_its_inputs(capsys, tmp_path, monkeypatch):
    """`export-gguf v.safetensors -o v.safetensors` replaced its input with GGUF bytes and exited 0."""
    import os

    from tl_traits.app.cli import options

    monkeypatch.setattr(
        options, "load_model", lambda *a, **k: pytest.fail("the model was loaded before the path check")
    )
    vectors = tmp_path / "v.safetensors"
    vectors.write_bytes(b"the input")
    (tmp_path / "link.safetensors").symlink_to(vectors)
    os.link(vectors, tmp_path / "hard.safetensors")
    out = tmp_path / "out"
    out.mkdir()
    for name in ("poisoned_train.jsonl", "rows.txt", "study.json"):
        (out / name).write_text("{}\n")
    (tmp_path / "runs" / "r1").mkdir(parents=True)
    (tmp_path / "runs" / "r1" / "summary.csv").write_text("a\n1\n")
    cases = [
        (["export-gguf", str(vectors), "-o", str(vectors)], "--out"),
        (["export-gguf", str(vectors), "-o", str(tmp_path / "link.safetensors")], "--out"),  # through a symlink
        (
            ["export-gguf", str(tmp_path / "link.safetensors"), "-o", str(tmp_path / "hard.safetensors")],
            "--out",
        ),  # hard link
        (["monitor", str(vectors), "--prompt", "hi", "--out", str(vectors)], "--out"),
        (["evaluate", str(vectors), "emotion/joy", "--log", str(vectors)], "--log"),
        (["extract", str(out / "study.json"), "-o", str(out / "study.json")], "--out"),
        (["quant-study", str(out / "study.json"), "--out", str(out)], "--out"),
        (["poison", "--data", str(out / "poisoned_train.jsonl"), "--out", str(out)], "--out"),
        (["train-sae", "--corpus", str(out / "rows.txt"), "--out", str(out)], "--out"),
        (["steer-sweep", str(out / "study.json"), "--runs-dir", str(out)], "--runs-dir"),
        (["aggregate", str(tmp_path / "runs"), "-o", str(tmp_path / "runs" / "r1" / "summary.csv")], "--out"),
    ]
    for argv, option in cases:
        code, _, err = call(capsys, *argv)
        assert code == EXIT_BAD_INPUT and f"error: {option} " in err and "which this command reads" in err, (argv, err)
    assert vectors.read_bytes() == b"the input" and (tmp_path / "link.safetensors").is_symlink()
    assert (out / "poisoned_train.jsonl").read_text() == "{}\n"
    assert (tmp_path / "runs" / "r1" / "summary.csv").read_text() == "a\n1\n"
    # poison into a folder that holds other data is fine: it writes only its own three files
    code, _, err = call(capsys, "poison", "--data", str(tmp_path / "missing.jsonl"), "--out", str(out))
    assert code == EXIT_BAD_INPUT and "no such file" in err


def test_export_gguf_does_not_replace_its_input_with_gguf_bytes(capsys, tmp_path, tiny_vectors):
    import shutil

    copy = shutil.copy(tiny_vectors, tmp_path / "v.safetensors")
    before = copy.read_bytes()
    (tmp_path / "link.safetensors").symlink_to(copy)
    for target in (copy, tmp_path / "link.safetensors"):
        # was exit 0 with the input overwritten
        code, _, err = call(capsys, "export-gguf", str(copy), "-o", str(target))
        assert code == EXIT_BAD_INPUT and "--out" in err and "give another --out" in err
    assert copy.read_bytes() == before and tt.TraitVectors.load(copy).methods == ["mean_diff", "probe"]


def test_the_cli_reads_gguf_and_plain_safetensors_vectors(capsys, tmp_path, tiny_vectors, tiny_llama_folder):
    from safetensors.torch import save_file

    gguf_path = tmp_path / "joy.gguf"
    assert call(capsys, "export-gguf", str(tiny_vectors), "-o", str(gguf_path), "--strength", "20")[0] == EXIT_OK
    args = [
        "--model",
        str(tiny_llama_folder),
        "--prompt",
        "Hi, how are you?",
        "--max-new-tokens",
        "6",
        "--json",
        "--quiet",
    ]
    code, out, err = call(capsys, "steer", str(gguf_path), *args, "--strength", "1")  # was "not a safetensors file"
    assert code == EXIT_OK, err
    (row,) = json.loads(out)
    assert row["layer"] == [1] and row["steered"] != row["unsteered"]  # a GGUF steers at all its layers

    d_model = tt.TraitVectors.load(tiny_vectors).metadata["model"]["d_model"]
    plain = tmp_path / "plain.safetensors"
    save_file({"layer.-1": torch.randn(d_model, generator=torch.Generator().manual_seed(0)) * 50}, str(plain))
    code, out, err = call(capsys, "steer", str(plain), *args, "--strength", "1")
    assert code == EXIT_OK, err
    (row,) = json.loads(out)
    assert row["layer"] == [1] and row["steered"] != row["unsteered"]  # layer.-1: the last of 2 layers

    code, out, err = call(
        capsys,
        "export-gguf",
        str(plain),
        "-o",
        str(tmp_path / "plain.gguf"),
        "--model",
        str(tiny_llama_folder),
        "--json",
    )
    assert code == EXIT_OK, err
    import gguf

    assert [t.name for t in gguf.GGUFReader(str(tmp_path / "plain.gguf")).tensors] == ["direction.1"]

    code, _, err = call(capsys, "steer", str(gguf_path), *args, "--method", "probe")
    assert code == EXIT_BAD_INPUT and "leave --method out" in err
    code, _, err = call(capsys, "monitor", str(gguf_path), "--prompt", "hi")
    assert code == EXIT_BAD_INPUT and "monitor projects on vectors from extract" in err
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    code, _, err = call(capsys, "steer", str(tmp_path / "junk.safetensors"), "--prompt", "hi")
    assert code == EXIT_BAD_INPUT and "not a vectors file tl_traits reads" in err and "GGUF" in err


@pytest.mark.parametrize(
    "argv, option",
    [
        (["sweep", "--lr", "nan"], "--lr"),
        (["sweep", "--lr", "1e39"], "--lr"),
        (["train-sae", "--lr", "inf"], "--lr"),
    ],
)
def test_every_number_option_goes_through_the_one_number_check(capsys, tmp_path, argv, option):
    """`--lr nan` or `--lr 1e39` was accepted and trained to NaN weights."""
    code, _, err = call(capsys, *argv, "-o", str(tmp_path / "out"))
    assert code == EXIT_BAD_INPUT and option in err and ("finite" in err or "overflows float32" in err), err
    assert not (tmp_path / "out").exists()


def test_ctrl_c_while_the_cli_loads_exits_130_without_a_traceback(monkeypatch, capsys):
    from tl_traits.app import entry

    def interrupted(name: str):
        raise KeyboardInterrupt

    monkeypatch.setattr(entry, "import_module", interrupted)
    with pytest.raises(SystemExit) as done:
        entry.main()
    assert done.value.code == 130 and capsys.readouterr().err == "interrupted\n"


def test_importing_the_facade_loads_no_torch_until_a_name_is_used():
    import subprocess
    import sys

    probe = (
        "import sys, tl_traits as tt; before = 'torch' in sys.modules; tt.TraitVector; "
        "print(before, 'torch' in sys.modules, 'extract' in dir(tt))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True", "True"]
