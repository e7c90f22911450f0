"""Fault injection: `tl-traits run` killed (SIGINT, SIGKILL) at several points, then rerun, ends with the
files an uninterrupted run writes: no duplicate log lines, the same vectors, summary and requests."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from tl_traits.core.files import read_jsonl
from tl_traits.core.locks import LOCK_NAME

# the same run as conftest's `tiny_run_dir`, which is the uninterrupted reference
RUN_ARGS = ["--limit", "4", "--questions", "3", "--max-new-tokens", "6", "--quiet"]
JOY_LOG = Path("results") / "steering-emotion-joy.limit4.jsonl"
REFUSAL_LOG = Path("results") / "steering-alignment-refusal.limit4.jsonl"


def _default_sigint() -> None:
    # a shell's background job starts with SIGINT ignored, and Python then never raises KeyboardInterrupt
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_run(model: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tl_traits.app.cli", "run", "--model", str(model), "--out", str(out), *RUN_ARGS],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
        preexec_fn=_default_sigint,
    )


def lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines()) if path.is_file() else 0


def kill_when(proc: subprocess.Popen, ready: Callable[[], bool], sig: int, timeout: float = 300) -> int:
    """Send `sig` once `ready()` holds; the process's exit code."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"the run ended (code {proc.returncode}) before the kill point: {proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the kill point was never reached")
        time.sleep(0.05)
    proc.send_signal(sig)
    return proc.wait(timeout=120)


def comparable(out: Path) -> dict:
    """What must match an uninterrupted run: every results file and vector, timings left out."""
    summary = json.loads((out / "results" / "summary.json").read_text())
    summary.pop("timings_s")
    summary["config"].pop("out")
    logs = {p.name: read_jsonl(p) for p in sorted((out / "results").glob("steering-*.jsonl"))}
    return {
        "summary": summary,
        "logs": logs,
        "requests": read_jsonl(out / "results" / "requests.jsonl"),
        "vectors": {p.name: p.read_bytes() for p in sorted((out / "vectors").glob("*.safetensors"))},
    }


@pytest.mark.parametrize(
    "point, sig, code",
    [
        ("mid-steering", signal.SIGKILL, -signal.SIGKILL),
        ("second trait", signal.SIGINT, 130),
    ],
)
def test_a_killed_run_resumes_to_the_uninterrupted_files(tiny_llama_folder, tiny_run_dir, tmp_path, point, sig, code):
    out = tmp_path / "out"
    ready = {
        "mid-steering": lambda: lines(out / JOY_LOG) >= 3,  # header, baseline, a run: the search is half done
        "second trait": lambda: lines(out / REFUSAL_LOG) >= 2,
    }[point]
    proc = start_run(tiny_llama_folder, out)
    assert kill_when(proc, ready, sig) == code
    if sig == signal.SIGINT:
        assert "interrupted" in proc.stderr.read()
    again = start_run(tiny_llama_folder, out)
    assert again.wait(timeout=600) == 0, again.stderr.read()[-2000:]
    expected, got = comparable(tiny_run_dir), comparable(out)
    for name, rows in got["logs"].items():  # no setting recorded twice
        keys = [(r["type"], r.get("split"), r.get("candidate"), r.get("strength"), r.get("prompt")) for r in rows]
        assert len(keys) == len(set(keys)), f"{name} holds duplicate lines"
    for name, rows in expected["logs"].items():  # line by line first: a readable diff
        assert len(got["logs"][name]) == len(rows), name
        for i, (a, b) in enumerate(zip(got["logs"][name], rows)):
            assert a == b, f"{name} line {i}: {[k for k in set(a) | set(b) if a.get(k) != b.get(k)]}"
    assert got == expected
    assert (out / "report.html").is_file() and (out / LOCK_NAME).read_text() == ""


SWEEP_ARGS = ["emotion/joy", "--layers", "0,1", "--questions", "2", "--max-new-tokens", "5", "--limit", "4", "--quiet"]


def run_sweep(model: Path, runs: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tl_traits.app.cli",
            "steer-sweep",
            *SWEEP_ARGS,
            "--model",
            str(model),
            "--runs-dir",
            str(runs),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
        preexec_fn=_default_sigint,
    )


def sweep_rows(runs: Path) -> list[tuple[str, dict]]:
    """Each finished run folder's rows, timings left out."""
    from tl_traits.scale.runs import SUMMARY, read_rows

    return [
        (
            str(found.parent.relative_to(runs)),
            [{k: v for k, v in row.items() if "second" not in k} for row in read_rows(found.parent)],
        )
        for found in sorted(runs.rglob(SUMMARY))
    ]


@pytest.fixture(scope="module")
def reference_sweep(tiny_llama_folder, tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("sweep") / "reference"
    reference = run_sweep(tiny_llama_folder, runs)
    assert reference.wait(timeout=600) == 0, reference.stderr.read()[-2000:]
    return runs


@pytest.mark.parametrize("sig, code", [(signal.SIGKILL, -signal.SIGKILL), (signal.SIGINT, 130)])
def test_a_sweep_killed_after_its_first_run_finishes_the_rest_once(
    tiny_llama_folder, reference_sweep, tmp_path, sig, code
):
    runs = tmp_path / "runs"
    proc = run_sweep(tiny_llama_folder, runs)
    assert kill_when(proc, lambda: any(runs.rglob("summary.csv")), sig) == code
    again = run_sweep(tiny_llama_folder, runs)
    assert again.wait(timeout=600) == 0, again.stderr.read()[-2000:]
    assert sweep_rows(runs) == sweep_rows(reference_sweep)
    assert len(sweep_rows(runs)) == 2  # one row per layer, none trained twice
