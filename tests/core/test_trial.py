"""TL_TRAITS_LIMIT: a trial run cuts trait sets and prompt sets, says so once, and refuses a value it cannot read."""

from __future__ import annotations

import warnings

import pytest

import tl_traits as tt
from tl_traits.core import trial
from tl_traits.core.errors import TlTraitsError
from tl_traits.core.progress import Stages
from tl_traits.monitoring.monitor import load_prompt_set


@pytest.fixture(autouse=True)
def _fresh_notices(monkeypatch):
    monkeypatch.setattr(trial, "_told", set())


def test_unset_means_the_whole_set(monkeypatch) -> None:
    monkeypatch.delenv(trial.ENV, raising=False)
    full = tt.load_trait("emotion/joy")
    assert len(full.positive) > 10 and len(full.steering_questions(1).dev) > 10


def test_a_trial_cuts_examples_and_steering_questions_and_says_so_once(monkeypatch) -> None:
    monkeypatch.setenv(trial.ENV, "3")
    with pytest.warns(UserWarning, match="TL_TRAITS_LIMIT=3: trait set emotion/joy cut to its first 3"):
        small = tt.load_trait("emotion/joy")
    assert len(small.positive) == len(small.negative) == 3
    for direction in (1, -1):
        plan = small.steering_questions(direction)
        assert len(plan.dev) == len(plan.test) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second load is cut too, without a second notice
        assert len(tt.load_trait("emotion/joy").positive) == 3
    with pytest.warns(UserWarning, match="prompt set requests cut to its first 3"):
        assert len(load_prompt_set("requests").prompts) == 3


def test_a_limit_above_the_set_changes_nothing(monkeypatch) -> None:
    monkeypatch.delenv(trial.ENV, raising=False)
    full = tt.load_trait("emotion/joy")
    monkeypatch.setenv(trial.ENV, "100000")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same = tt.load_trait("emotion/joy")
    assert same.positive == full.positive and same.steering_questions(-1).test == full.steering_questions(-1).test


@pytest.mark.parametrize("value", ["0", "-2", "four", "2.5"])
def test_an_unreadable_limit_is_an_error_naming_the_variable(monkeypatch, value: str) -> None:
    monkeypatch.setenv(trial.ENV, value)
    with pytest.raises(TlTraitsError, match=f"TL_TRAITS_LIMIT='{value}' is not a whole number >= 1"):
        tt.load_trait("emotion/joy")


def test_the_cli_reads_the_limit_from_the_environment(monkeypatch) -> None:
    from tl_traits.app.cli.options import LimitOpt

    assert LimitOpt.envvar == trial.ENV


def test_stages_outside_a_with_block_start_and_stop_their_own_display() -> None:
    stages = Stages(enabled=True)
    with stages.stage("one", total=2) as advance:
        advance(1, 2)
        assert stages._progress.live.is_started
    assert not stages._progress.live.is_started and "one" in stages.seconds
