"""Small guards: counts mean what they say (None is all, 0 and negatives are refused), saved folders open like any
folder, a sweep names only files it wrote."""

from __future__ import annotations

import pytest
import torch

import tl_traits as tt
from tl_traits.core.errors import check_count


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_a_limit_of_zero_or_less_is_refused_not_read_as_no_limit(bad):
    from tl_traits.core.trait_sets import TraitDataError
    from tl_traits.monitoring.monitor import MonitorError, analyze_prompt_set
    from tl_traits.steering.evaluation import evaluate_steering
    from tl_traits.steering.protocol import ProtocolError

    with pytest.raises(TraitDataError, match=f"limit must be a whole number >= 1 .*not {bad!r}"):
        tt.load_trait("emotion/joy").limit(bad)
    with pytest.raises(MonitorError, match="limit must be a whole number >= 1"):
        analyze_prompt_set(None, None, "requests", limit=bad)  # refused before any model work
    judges = [
        tt.FunctionJudge(lambda q, r: [50.0] * len(r)),
        tt.FunctionJudge(lambda q, r: [90.0] * len(r), kind="coherence"),
    ]
    vector = tt.TraitVector("mean_diff", torch.ones(1, 4), [0], torch.ones(1), {}, {})
    with pytest.raises(ProtocolError, match="dev_questions must be a whole number >= 1"):
        evaluate_steering(None, vector, "emotion/joy", judges=judges, dev_questions=bad)


def test_check_count_passes_none_and_positive_counts():
    assert check_count(None, "limit") is None and check_count(3, "limit") == 3


def test_an_atomic_folder_opens_like_any_folder(tmp_path):
    import os

    from tl_traits.core.files import atomic_directory

    umask = os.umask(0)
    os.umask(umask)
    with atomic_directory(tmp_path / "step_1") as tmp:
        (tmp / "x").write_text("1")
    assert (tmp_path / "step_1" / "x").is_file()
    assert (tmp_path / "step_1").stat().st_mode & 0o777 == 0o777 & ~umask != 0o700  # mkdtemp alone gives 0700


def test_a_sweep_with_no_finished_run_names_no_table(capsys, tmp_path):
    from types import SimpleNamespace

    import typer

    from tl_traits.app.cli import run_app
    from tl_traits.app.cli.sweeps import finish_sweep

    result = SimpleNamespace(failed=[], skipped=[], seconds=0.0, executor="local")
    app = typer.Typer()
    app.command()(lambda: finish_sweep(result, tmp_path, 0, as_json=False))
    assert run_app(app, []) == 0
    out = capsys.readouterr().out
    assert "aggregate.csv" not in out and "no table was written" in out


@pytest.mark.parametrize("raised, word", [(KeyboardInterrupt, "interrupted"), (RuntimeError, "failed")])
def test_an_interrupted_stage_does_not_show_as_complete(raised, word):
    from tl_traits.core.progress import Stages

    with Stages() as stages:
        with pytest.raises(raised):
            with stages.stage("extract joy", total=4) as advance:
                advance(1, 4)
                raise raised()
        shown = stages._progress.tasks[0]
    assert shown.completed == 1 and shown.total == 4 and word in shown.description
    assert "extract joy" in stages.seconds
