"""The strength search: KL placement, bracketing the best from both sides, extension, refinement, lockstep groups."""

from __future__ import annotations

import math

import pytest
import torch

from tl_traits.steering.protocol import ProtocolError, SteeringProtocol
from tl_traits.steering.results import Candidate, JudgedSet, Run, SteeringResult
from tl_traits.steering.search import kl_targets, max_steps, search
from tl_traits.steering.steer import Setting
from tl_traits.steering.strength_scale import KLPoint, TeacherForced, kl_ladder, strength_at


def judged(score: float, coherence: float) -> JudgedSet:
    return JudgedSet(["q"], ["a"], {"trait": [50.0], "coherence": [coherence], "relevance": [80.0], "score": [score]})


def fake_ladder(candidate: Candidate) -> list[KLPoint]:
    """KL = (strength / 0.1)^2: strength 0.1 moves the model by 1 nat, whatever the candidate."""
    return [KLPoint(0.01 * 2**k, (0.01 * 2**k / 0.1) ** 2) for k in range(14)]


def peaked(best_strength: float, edge: float = 0.2):
    """A judge whose steering score peaks at `best_strength` and whose answers break above `edge`."""
    calls: list[list[float]] = []

    def judge_step(proposals, step):
        calls.append([s for _, s, _ in proposals])
        runs = []
        for candidate, strength, kl in proposals:
            score = 80.0 - 20.0 * abs(math.log(strength / best_strength))
            runs.append(
                Run("dev", judged(score, 90.0 if strength <= edge else 30.0), candidate, strength, None, kl, step)
            )
        return runs

    return judge_step, calls


def result_for(runs: list[Run]) -> SteeringResult:
    return SteeringResult("t", 1, ("trait", "coherence"), {"dev": judged(60.0, 90.0)}, runs)


def run_search(best_strength: float, protocol: SteeringProtocol, candidates=None, edge: float = 0.2):
    candidates = candidates or [Candidate((3,), "m")]
    judge_step, calls = peaked(best_strength, edge)
    holder = result_for([])
    runs = search(candidates, judge_step, protocol, ladder=fake_ladder, best=holder.best, coherent=holder.coherent)
    holder.runs = runs
    return holder, calls


def test_strength_at_interpolates_in_log_log():
    points = fake_ladder(Candidate((1,)))
    for target in (0.03, 0.1, 0.3, 1.0, 3.0):
        assert strength_at(points, target) == pytest.approx(0.1 * math.sqrt(target), rel=1e-6)
    assert strength_at(points[:3], 50.0) == points[2].strength  # never reached: the last rung
    with pytest.raises(Exception, match="positive"):
        strength_at(points, 0.0)


def test_the_best_is_bracketed_from_both_sides_and_the_rise_stops_once_answers_break():
    protocol = SteeringProtocol(kl_targets=(0.03, 0.1, 0.3, 1.0, 3.0), extend=2, refine=True)
    result, calls = run_search(0.05, protocol, edge=0.08)
    grid = [0.1 * math.sqrt(t) for t in (0.03, 0.1, 0.3, 1.0, 3.0)]  # 0.017, 0.032, 0.055, 0.1, 0.17
    strengths = sorted(r.strength for r in result.runs)
    best = result.best(result.runs)
    assert best.strength == pytest.approx(grid[2], rel=1e-6)
    below = [s for s in strengths if s < best.strength]
    above = [s for s in strengths if s > best.strength]
    assert below and above  # bracketed: tried below and above the best
    assert math.sqrt(grid[1] * grid[2]) == pytest.approx(max(below), rel=1e-6)  # refined: the geometric midpoints
    assert math.sqrt(grid[2] * grid[3]) == pytest.approx(min(above), rel=1e-6)
    # the rise stopped at KL 1.0, whose answers broke and scored lower; KL 3.0 was never generated
    assert max(strengths) == pytest.approx(grid[3], rel=1e-6)
    assert len(calls) <= max_steps(protocol)


def test_a_best_below_the_grid_extends_downward():
    protocol = SteeringProtocol(kl_targets=(0.1, 0.3, 1.0), extend=2, refine=False)
    result, _ = run_search(0.004, protocol, edge=0.08)
    lowest_main = 0.1 * math.sqrt(0.1)
    assert min(r.strength for r in result.runs) < lowest_main / 2  # two steps below the grid's bottom
    below, _, _ = kl_targets(protocol)
    assert [round(t, 6) for t in below] == [round(0.1 / 3.0**k, 6) for k in (1, 2)]


def test_a_coherent_best_at_the_top_extends_upward():
    protocol = SteeringProtocol(kl_targets=(0.001, 0.003, 0.01), extend=1, refine=False)
    result, _ = run_search(0.15, protocol)  # the peak is above the grid; answers stay coherent up to 0.2
    top_main = strength_at(fake_ladder(Candidate((1,))), 0.01)
    assert max(r.strength for r in result.runs) > top_main


def test_groups_search_in_lockstep_and_each_is_refined_around_its_own_best():
    protocol = SteeringProtocol(kl_targets=(0.03, 0.1, 0.3, 1.0), extend=0, refine=True)
    candidates = [Candidate((2,), "a"), Candidate((4,), "a"), Candidate((2,), "b")]
    result, calls = run_search(0.05, protocol, candidates)
    assert len(calls[0]) == 3  # the first step judges every candidate in one batch
    refined = [r for r in result.runs if r.kl is not None and round(r.kl, 6) not in {0.03, 0.1, 0.3, 1.0}]
    assert {r.candidate.method for r in refined} == {"a", "b"} and len(refined) == 4  # two midpoints per group


def test_grid_and_adaptive_searches():
    grid = SteeringProtocol(search="grid", strengths=(0.02, 0.2))
    result, calls = run_search(0.05, grid)
    assert sorted(r.strength for r in result.runs) == [0.02, 0.2] and len(calls) == 1
    adaptive = SteeringProtocol(search="adaptive", start=0.1, up=2.0, down=0.5, steps=3)
    result, _ = run_search(0.05, adaptive)
    # 0.1 coherent -> 0.2 coherent (edge inclusive) -> 0.4 broken
    assert [round(r.strength, 6) for r in result.runs] == [0.1, 0.2, 0.4]


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(search="random"), "search must be one of"),
        (dict(kl_targets=(0.3, 0.1)), "must rise"),
        (dict(kl_targets=(0.0, 0.1)), "positive numbers"),
        (dict(search="grid"), "needs strengths"),
        (dict(bands=(0,)), "bands must be"),
        (dict(positions=("prompt",)), "positions must be"),
        (dict(dev_questions=0), "dev_questions must be"),
        (dict(objective="best"), "objective must be one of"),
    ],
)
def test_protocol_settings_are_checked(bad, match):
    with pytest.raises(ProtocolError, match=match):
        SteeringProtocol(**bad)
    with pytest.raises(ProtocolError, match="no setting"):
        SteeringProtocol().with_(steps_up=3)


def test_the_kl_ladder_places_strengths_in_any_units(tiny_hooked):
    """A vector 10x longer needs a 10x smaller strength for the same KL: the search needs no hand-set start."""
    forced = TeacherForced(
        tiny_hooked, ["The quick brown fox", "Paris is the capital"], [" jumps over the dog", " of France"]
    )
    torch.manual_seed(0)
    direction = torch.randn(tiny_hooked.cfg.d_model)
    from tl_traits.core.vectors import TraitVector

    def vector(scale: float) -> TraitVector:  # absolute units: strength s adds s x the tensor
        return TraitVector.from_layer_tensors(tiny_hooked, {1: direction * scale})

    ladders = [kl_ladder(forced, Setting(1), 0.5, vector=vector(scale)) for scale in (1.0, 10.0)]
    for points in ladders:
        kls = [p.kl for p in points]
        assert kls == sorted(kls) and kls[-1] >= 0.5  # KL rises with strength until it reaches the top target
    one, ten = (strength_at(points, 0.1) for points in ladders)
    assert one == pytest.approx(10 * ten, rel=0.05)
    assert forced.kl(Setting(1, strength=0.0), vector(1.0)) == pytest.approx(0.0, abs=1e-6)
