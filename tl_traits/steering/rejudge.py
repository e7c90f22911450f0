"""Rejudge a steering log: every recorded answer scored again by today's judges, with nothing generated.

After a judge is refitted, a log's scores come from the old version and the log refuses to resume
(its header records each judge's version). `rejudge_log` rescores the unsteered answers and every
run, then replaces the log in one rename; resuming then searches on the new scores and generates
only the settings the new scores choose that the log lacks.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from tqdm.auto import tqdm

from tl_traits.core.trait_sets import load_trait
from tl_traits.judging.defaults import default_judges
from tl_traits.steering.errors import EvaluationError
from tl_traits.steering.log import SteeringLog
from tl_traits.steering.results import Run
from tl_traits.steering.scoring import pick_judges


def rejudge_log(
    log: str | os.PathLike[str],
    model: Any,
    *,
    trait: Any = None,
    judges: Sequence[Any] | None = None,
    relevance: Any = "embedding:relevance",
    out: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> Path:
    """Score every answer in a steering log again and write the log with the new scores and judge versions.

    trait: the trait set (default: the one the header names); judges: the judge specs (default: the trait's
    own, as the evaluation uses). They must be the judges the log names, refitted or not. out: write there
    instead of replacing `log`. Returns the path written.
    """
    record = SteeringLog(log, None)
    header = dict(record.header or {})
    dataset = load_trait(trait if trait is not None else header.get("trait"))
    parts = tuple(header.get("parts") or ())
    chosen = pick_judges(judges if judges is not None else default_judges(dataset), model, dataset, relevance, parts)
    if chosen.names != header.get("judges"):
        raise EvaluationError(
            f"{log} was judged by {header.get('judges')}, not {chosen.names}; pass judges=[...] "
            "naming the same judges (a refitted judge keeps its name)"
        )
    direction = int(header.get("direction", 1))

    def again(answers: Any) -> Any:
        return chosen.judge(answers.questions, answers.responses, direction, parts)

    target = Path(out) if out is not None else Path(log)
    partial = target.with_name(target.name + ".rejudging")  # the log's own writers fill it; one rename replaces
    partial.unlink(missing_ok=True)
    fresh = SteeringLog(partial, {**header, "judge_versions": chosen.versions})
    bar = tqdm(
        total=len(record.baseline) + len(record.runs),
        desc=f"rejudge {Path(log).name}",
        unit="set",
        disable=not progress,
        leave=False,
    )
    try:
        for split, answers in record.baseline.items():
            fresh.write_baseline(split, again(answers))
            bar.update(1)
        for key, points in record.ladders.items():
            fresh.write_ladder(key, points)
        for run in record.runs:
            fresh.write_run(
                Run(run.split, again(run.answers), run.candidate, run.strength, run.prompt, run.kl, run.step)
            )
            bar.update(1)
    finally:
        bar.close()
    os.replace(partial, target)
    return target
