"""`pytest benchmarks/`: options, the model under test, and the results table written at the end."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

import pytest  # noqa: E402
from results_table import Results  # noqa: E402
from sanity import check_finite  # noqa: E402

DEFAULT_OUT = Path(__file__).parent / "results"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tl_traits benchmarks")
    group.addoption(
        "--model", default=None, help="model to benchmark: a local HF folder or TL name (default: embedded SmolLM2)"
    )
    group.addoption("--traits", default=None, help="comma-separated trait sets (default: every bundled trait)")
    group.addoption(
        "--methods",
        default=None,
        help="comma-separated extractors (default: every registered one that runs by default; not sae)",
    )
    group.addoption("--out", default=str(DEFAULT_OUT), help="folder for <date>-<model>.json/.md")
    group.addoption(
        "--trained-layers",
        default=None,
        help="comma-separated layers bipo and reps are trained at and choose among (default: the layers the fitted "
        "methods choose among, at 30%% and 50%% depth)",
    )
    group.addoption(
        "--trained-epochs",
        default=None,
        help="comma-separated training budgets (epochs) bipo and reps are trained with and choose among on dev "
        "(default: the library's)",
    )
    group.addoption(
        "--trained-band",
        default=None,
        help="FIRST-LAST (an odd number of layers, like 10-14): also train bipo and reps with those layers as one "
        "band (VectorTraining.band), steered as one; dev chooses among them and the --trained-layers vectors",
    )
    group.addoption(
        "--trained-one-sided",
        action="store_true",
        help="also train bipo and reps for each direction alone (VectorTraining.direction 'toward' or 'away') at "
        "every setting; dev chooses among them and the vectors trained both ways",
    )
    group.addoption(
        "--runs-dir", default=None, help="where the poison sweep keeps its run folders (default: a temp folder)"
    )
    group.addoption("--executor", default="local", help="where sweep runs go: local, ray or slurm (docs/scaling.md)")
    group.addoption("--workers", type=int, default=1, help="local executor: worker processes")
    group.addoption("--executor-option", action="append", default=[], help="key=value for the executor (repeatable)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "quick: a few seconds; CI runs these")
    config.addinivalue_line("markers", "full: the complete measurement on the real model")


@pytest.fixture(scope="session")
def bench_model(request):
    import tl_traits as tt

    return tt.load_model(request.config.getoption("--model"))


@pytest.fixture(scope="session")
def bench_executor(request):
    """The executor sweep-shaped benchmarks hand their runs to (default: here, one after another)."""
    import json

    from tl_traits.scale.executors import make_executor

    name = request.config.getoption("--executor")
    options: dict = {}
    for item in request.config.getoption("--executor-option"):
        key, _, raw = item.partition("=")
        try:
            options[key] = json.loads(raw)
        except json.JSONDecodeError:
            options[key] = raw
    if name == "local":
        options["workers"] = request.config.getoption("--workers")
    return make_executor(name, **options)


@pytest.fixture(scope="session")
def bench_traits(request) -> list[str]:
    import tl_traits as tt

    chosen = request.config.getoption("--traits")
    return [t.strip() for t in chosen.split(",") if t.strip()] if chosen else tt.list_traits()


@pytest.fixture(scope="session")
def trait_vectors(bench_model, bench_methods):
    """Vectors of every method at every layer (response[:]) per trait, extracted once per session."""
    import tl_traits as tt

    made: dict[str, object] = {}

    def get(trait: str):
        if trait not in made:
            made[trait] = tt.extract(bench_model, trait, bench_methods, position="response[:]", seed=0, progress=False)
        return made[trait]

    return get


@pytest.fixture(scope="session")
def bench_methods(request) -> list[str]:
    from tl_traits.extraction.extract import default_methods

    chosen = request.config.getoption("--methods")
    return [m.strip() for m in chosen.split(",")] if chosen else default_methods()


@pytest.fixture(scope="session")
def results_dir(request) -> Path:
    """--out: where the results files and figures are written, and where earlier results are carried from."""
    return Path(request.config.getoption("--out"))


@pytest.fixture(scope="session")
def results(request, results_dir):
    model = request.config.getoption("--model") or "SmolLM2-135M-Instruct"
    collected = Results(Path(model).name if Path(model).exists() else model)
    yield collected
    command = "pytest " + " ".join(request.config.invocation_params.args)
    written = collected.write(results_dir, command.strip())
    if written:
        print(f"\nbenchmark results: {written[0]} and {written[1]}")
    check_finite(collected.sections)  # the sanity layer: a NaN anywhere fails the run (after writing it down)
