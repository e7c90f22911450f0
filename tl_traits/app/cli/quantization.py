"""`quant-study`: how much each quantizer bends one trait's direction, activations and steering effect."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from tl_traits.app.cli.options import (
    JsonOpt,
    KindOpt,
    LimitOpt,
    MaxNewTokensOpt,
    MethodsOpt,
    ModelOpt,
    QuestionsOpt,
    QuietOpt,
    emit,
    model_from,
    output_folder,
    parse_layers,
    split_values,
    stages_for,
    trait_files,
)
from tl_traits.quantization.study import DEFAULT_BACKENDS, quantization_study

BackendsOpt = typer.Option(None, "--backends", help="Quantizers (default fp16,bf16,int8,int4,nf4).")
ExtractLayersOpt = typer.Option("all", "--layers", help="'all' or comma-separated layers to extract.")
SteeringLayersOpt = typer.Option(None, "--steering-layers", help="Comma-separated (default: 3 mid layers).")
SteerOpt = typer.Option(True, "--steer/--no-steer", help="Also measure the retained steering effect.")


def quant_study(
    trait: str = typer.Argument("emotion/joy", help="The trait to extract and steer."),
    backends: Optional[List[str]] = BackendsOpt,
    methods: Optional[List[str]] = MethodsOpt,
    layers: Optional[str] = ExtractLayersOpt,
    steering_layers: Optional[str] = SteeringLayersOpt,
    steer_flag: bool = SteerOpt,
    questions: int = QuestionsOpt,
    max_new_tokens: int = MaxNewTokensOpt,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write study.json, study.md and study.png here."),
    model: Optional[str] = ModelOpt,
    kind: str = KindOpt,
    limit: Optional[int] = LimitOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """How much each quantizer bends the trait direction, the activations and the steering effect."""
    output_folder(out, "--out", inputs={"TRAIT": trait_files(trait)}, writes=("study.json", "study.md", "study.png"))
    layer_spec = parse_layers(layers)
    steer_at = parse_layers(steering_layers)
    with stages_for(quiet, as_json) as stages:
        study = quantization_study(
            lambda: model_from(model, kind),
            trait,
            backends=split_values(backends) or DEFAULT_BACKENDS,
            methods=split_values(methods) or ["mean_diff", "probe"],
            layers=layer_spec,
            steering_layers=steer_at,
            steer=steer_flag,
            questions=questions if not limit else min(questions, limit),
            max_new_tokens=max_new_tokens,
            limit=limit,
            stages=stages,
        )
    saved = {k: str(v) for k, v in study.save(out).items()} if out else {}
    if as_json:
        emit({**study.to_dict(), "saved": saved})
        return
    typer.echo(study.to_markdown())
    for kind_, path in saved.items():
        typer.echo(f"{kind_}: {path}")
