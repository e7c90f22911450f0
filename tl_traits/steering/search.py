"""The strength search: which (candidate, strength) settings to judge next, for any set of candidates in lockstep.

Keyed by candidate (a layer, a band, a method, ...), so one driver serves `evaluate_steering`
(one vector, several layers) and `compare_steering` (several methods): every step is one batch of
settings, judged together. Three rules (`SteeringProtocol.search`):

- calibrated: strengths placed at KL targets (`strength_scale`), judged in rising order until the
  answers break; extended past either end while the best sits there; refined around each group's best.
- adaptive: the seed workflow's multiplicative walk (x up while coherent, else x down).
- grid: the given strengths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence, cast

from tl_traits.steering.protocol import SteeringProtocol
from tl_traits.steering.results import Candidate, Run
from tl_traits.steering.strength_scale import KLPoint, strength_at

Proposal = tuple[Candidate, float, "float | None"]  # candidate, strength (> 0), the KL target it was placed at
JudgeStep = Callable[[list[Proposal], int], list[Run]]


def next_strength(
    strength: float, velocity: float, coherent: bool, *, up: float, down: float, momentum: float = 0.0
) -> tuple[float, float]:
    """One step of the adaptive search: grow the strength while the answers stay coherent, else shrink it."""
    velocity = momentum * velocity + (1 - momentum) * (up if coherent else down)
    return strength * velocity, velocity


def kl_targets(protocol: SteeringProtocol) -> tuple[list[float], list[float], list[float]]:
    """(below, main, above): the KL targets, and the extensions either side at the grid's own spacing."""
    main = list(protocol.kl_targets)
    low_ratio = main[1] / main[0] if len(main) > 1 else 3.0
    high_ratio = main[-1] / main[-2] if len(main) > 1 else 3.0
    below = [main[0] / low_ratio**k for k in range(1, protocol.extend + 1)]
    above = [main[-1] * high_ratio**k for k in range(1, protocol.extend + 1)]
    return below, main, above


@dataclass
class _Track:
    """One candidate's calibrated search: its strengths by KL target and how far it has got."""

    candidate: Candidate
    strengths: dict[float, float]  # KL target -> strength
    below: list[float]
    main: list[float]
    above: list[float]
    runs: dict[float, Run] = field(default_factory=dict)  # KL target -> run
    rising: bool = True
    broke: bool = False  # the answers fell apart at the top of the rise: the edge is bracketed from above

    def next_main(self) -> float | None:
        left = [t for t in self.main if t not in self.runs]
        return left[0] if self.rising and left else None


def search(
    candidates: Sequence[Candidate],
    judge_step: JudgeStep,
    protocol: SteeringProtocol,
    *,
    ladder: Callable[[Candidate], list[KLPoint]] | None = None,
    best: Callable[[Sequence[Run]], Run | None],
    coherent: Callable[[Run], bool],
) -> list[Run]:
    """Every dev run the protocol's rule asks for; `judge_step(proposals, step)` judges one
    batch and returns its runs."""
    if protocol.search == "grid":
        return judge_step([(c, float(s), None) for c in candidates for s in protocol.strengths], 0)
    if protocol.search == "adaptive":
        return _adaptive(candidates, judge_step, protocol, coherent)
    if ladder is None:
        raise ValueError("the calibrated search needs a KL ladder per candidate")
    return _calibrated(candidates, judge_step, protocol, ladder, best, coherent)


def _adaptive(
    candidates: Sequence[Candidate], judge_step: JudgeStep, protocol: SteeringProtocol, coherent: Callable[[Run], bool]
) -> list[Run]:
    strength = {c: protocol.start for c in candidates}
    velocity = {c: 1.0 for c in candidates}
    runs: list[Run] = []
    for step in range(protocol.steps):
        judged = judge_step([(c, strength[c], None) for c in candidates], step)
        runs += judged
        for c, run in zip(candidates, judged):
            strength[c], velocity[c] = next_strength(
                strength[c], velocity[c], coherent(run), up=protocol.up, down=protocol.down, momentum=protocol.momentum
            )
    return runs


def _calibrated(
    candidates: Sequence[Candidate],
    judge_step: JudgeStep,
    protocol: SteeringProtocol,
    ladder: Callable[[Candidate], list[KLPoint]],
    best: Callable[[Sequence[Run]], Run | None],
    coherent: Callable[[Run], bool],
) -> list[Run]:
    below, main, above = kl_targets(protocol)
    tracks = []
    for c in candidates:
        points = ladder(c)
        tracks.append(
            _Track(c, {t: strength_at(points, t) for t in below + main + above}, list(below), main, list(above))
        )
    runs: list[Run] = []
    step = 0

    def judge(wanted: list[tuple[_Track, float]]) -> None:
        nonlocal step
        fresh = [(track, target) for track, target in wanted if target not in track.runs]
        if not fresh:
            return
        judged = judge_step([(track.candidate, track.strengths[target], target) for track, target in fresh], step)
        step += 1
        for (track, target), run in zip(fresh, judged):
            track.runs[target] = run
            runs.append(run)

    # rise through the main targets until the answers break and the score falls (bracketed from above)
    while True:
        wanted = [(t, cast(float, t.next_main())) for t in tracks if t.next_main() is not None]
        if not wanted:
            break
        judge(wanted)
        for track, target in wanted:
            run = track.runs[target]
            top = best(list(track.runs.values()))
            if not coherent(run) and top is not None and top is not run and _score(run) < _score(top):
                track.rising, track.broke = False, True
    # extend while the best sits at an end: down below the lowest target, up past a still-coherent top
    for _ in range(protocol.extend):
        wanted = []
        for track in tracks:
            done = sorted(track.runs)
            top = best([track.runs[t] for t in done])
            if top is None:
                continue
            if top is track.runs[done[0]] and track.below:
                wanted.append((track, track.below.pop(0)))
            elif top is track.runs[done[-1]] and not track.broke and coherent(top) and track.above:
                wanted.append((track, track.above.pop(0)))
        if not wanted:
            break
        judge(wanted)
    # refine around each group's best: the geometric midpoints to its neighbours
    if protocol.refine:
        wanted = []
        for group in dict.fromkeys(t.candidate.method for t in tracks):
            mine = [t for t in tracks if t.candidate.method == group]
            top = best([r for t in mine for r in t.runs.values()])
            if top is None:
                continue
            track = next(t for t in mine if top in t.runs.values())
            done = sorted(track.runs)
            at = next(i for i, target in enumerate(done) if track.runs[target] is top)
            for neighbour in (done[at - 1] if at > 0 else None, done[at + 1] if at + 1 < len(done) else None):
                if neighbour is not None:
                    mid = math.sqrt(neighbour * done[at])
                    track.strengths[mid] = math.sqrt(track.strengths[neighbour] * track.strengths[done[at]])
                    wanted.append((track, mid))
        judge(wanted)
    return runs


def _score(run: Run) -> float:
    value = run.answers.score
    return -math.inf if value is None else value


def max_steps(protocol: SteeringProtocol) -> int:
    """An upper bound on the search's batches (for progress bars)."""
    if protocol.search == "grid":
        return 1
    if protocol.search == "adaptive":
        return protocol.steps
    return len(protocol.kl_targets) + protocol.extend + (1 if protocol.refine else 0)
