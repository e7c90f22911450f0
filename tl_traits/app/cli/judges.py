"""`judges calibrate`: a judge's agreement with the reader's ratings on the bundled calibration set."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from tl_traits.app.cli.options import (
    JsonOpt,
    KindOpt,
    ModelOpt,
    QuietOpt,
    emit,
    finite,
    model_from,
    split_values,
    stages_for,
)
from tl_traits.core.figures import save_figure
from tl_traits.judging.calibration import (
    SPLITS,
    CalibrationError,
    calibrate,
    calibration_table,
)

app = typer.Typer(no_args_is_help=True, help="Check judges against ratings made by careful reading.")
MODEL_FREE = ("vader", "refusal")  # judges that need no language model


@app.command("calibrate")
def calibrate_command(
    judges: List[str] = typer.Argument(
        ..., help="Judge specs: vader, refusal, perplexity, coherence, embedding:relevance, ..."
    ),
    trait: Optional[str] = typer.Option(
        None, "--trait", help="The trait a trait judge is checked on (default: its own)."
    ),
    split: str = typer.Option("heldout", "--split", help="heldout (not fitted on), fit, or all."),
    gate: Optional[float] = typer.Option(
        None,
        "--gate",
        callback=finite,
        help="The score at which the judge passes a response (default: its own, else 70).",
    ),
    plot: Optional[Path] = typer.Option(
        None, "--plot", "-o", help="Save the score-vs-rating plot here (.png/.svg/.pdf; one judge)."
    ),
    examples: int = typer.Option(3, "--examples", min=0, help="Show this many worst disagreements with their text."),
    model: Optional[str] = ModelOpt,
    kind: str = KindOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """AUROC (rating >= 70), Spearman, and precision / recall at the judge's gate, on responses it was not fitted on."""
    if split not in SPLITS:
        raise CalibrationError(f"--split must be one of {', '.join(SPLITS)}, not {split!r}")
    specs = split_values(judges) or []
    if not specs:
        raise CalibrationError(
            f"no judge named in {' '.join(judges)!r}; name at least one, e.g. tl-traits judges calibrate vader"
        )
    if plot is not None and len(specs) != 1:
        raise CalibrationError("--plot draws one judge; name exactly one judge with it")
    needs_model = any(s.split(":")[0] not in MODEL_FREE for s in specs)
    loaded = model_from(model, kind, stages_for(quiet, as_json)) if needs_model else None
    results = [calibrate(spec, model=loaded, trait=trait, split=split, gate=gate) for spec in specs]
    if plot is not None:
        save_figure(results[0].figure(), plot)
    if as_json:
        emit([{**r.row(), "disagreements": r.disagreements(examples)} for r in results])
        return
    typer.echo(calibration_table(results))
    for r in results:
        if r.unscored:
            typer.echo(
                f"\n{r.judge} could not score {r.unscored} of {r.n + r.unscored} responses (None or NaN); "
                "they are left out of every figure above"
            )
        for item in r.disagreements(examples):
            verdict = "passed" if item["score"] >= r.gate else "failed"
            typer.echo(
                f"\n{r.judge} {verdict} {item['id']} (score {item['score']:.0f}, rated {item['rating']:.0f}): "
                f"{item['response'][:160]!r}"
            )
