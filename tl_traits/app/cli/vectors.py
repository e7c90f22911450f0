"""The trait-vector commands: `extract` them, `steer` with one, `evaluate` the steering with judges."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, List, Optional, Sequence

import typer

from tl_traits.app.cli.options import (
    JsonOpt,
    KindOpt,
    LimitOpt,
    MethodsOpt,
    ModelOpt,
    QuietOpt,
    emit,
    finite,
    load_vector,
    model_from,
    output_file,
    parse_layers,
    parse_options,
    split_values,
    stages_for,
    steering_line,
    trait_files,
)
from tl_traits.core.generation import generate
from tl_traits.core.trait_sets import load_trait
from tl_traits.extraction.extract import MIN_PER_CLASS_FOR_D
from tl_traits.extraction.extract import extract as do_extract
from tl_traits.steering.evaluation import evaluate_steering
from tl_traits.steering.layers import default_steering_layer
from tl_traits.steering.steer import steer as do_steer


def extract(
    trait: str = typer.Argument(..., help="A bundled trait (emotion/joy), a folder or a JSONL file."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Save the vectors here (.safetensors)."),
    methods: Optional[List[str]] = MethodsOpt,
    position: str = typer.Option("response[:]", "--position", help="prompt[-1], response[:5], response[:], all"),
    layers: Optional[str] = typer.Option("all", "--layers", help="'all' or comma-separated layers."),
    model: Optional[str] = ModelOpt,
    kind: str = KindOpt,
    limit: Optional[int] = LimitOpt,
    option: Optional[List[str]] = typer.Option(
        None,
        "--option",
        help="METHOD.KEY=VALUE for one extractor, e.g. bipo.epochs=4 (repeatable; values parse as JSON).",
    ),
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Extract trait vectors for one trait set and print held-out metrics per method."""
    output_file(out, "--out", inputs={"TRAIT": trait_files(trait)})
    method_options: dict[str, dict[str, Any]] = {}
    for key, value in parse_options(option).items():
        method, dot, name = key.partition(".")
        if not dot or not method or not name:
            raise typer.BadParameter(f"--option takes METHOD.KEY=VALUE (e.g. bipo.epochs=4), not {key!r}")
        method_options.setdefault(method, {})[name] = value
    dataset = load_trait(trait)
    if limit:
        dataset = dataset.limit(limit)
    layer_spec = parse_layers(layers)
    with stages_for(quiet, as_json) as stages:
        m = model_from(model, kind, stages)
        with stages.stage(f"extract {dataset.name}"), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="held-out classes have")  # said once below, in words
            vecs = do_extract(
                m,
                dataset,
                split_values(methods) or ["mean_diff", "probe"],
                layers=layer_spec,
                position=position,
                progress=False,
                method_options=method_options or None,
            )
    saved = str(vecs.save(out)) if out else None
    n_val = vecs.metadata["dataset"]["n_val"]
    anecdotal = n_val < 2 * MIN_PER_CLASS_FOR_D
    if anecdotal:
        typer.echo(
            f"note: the held-out split has only {n_val} examples; its AUROC and accuracy are anecdotal and "
            "Cohen's d is not reported (NaN)" + (" - drop --limit for real figures" if limit else ""),
            err=True,
        )
    if as_json:
        emit(
            {
                "trait": dataset.name,
                "saved": saved,
                "anecdotal": anecdotal,
                "methods": {
                    name: {
                        "best_layer": vecs[name].best_layer(),
                        **{
                            k: float(v[vecs[name].layers.index(vecs[name].best_layer())])
                            for k, v in vecs[name].metrics.items()
                        },
                    }
                    for name in vecs.methods
                },
            }
        )
        return
    typer.echo(vecs.report())
    if saved:
        typer.echo(f"saved: {saved}")


def steer(
    vectors: Path = typer.Argument(
        ..., help="A vectors file from extract, a GGUF control vector or a {layer: tensor} safetensors file."
    ),
    layer: Optional[int] = typer.Option(
        None,
        "--layer",
        "-l",
        help="Default: the extracted layer nearest 40% depth "
        "(mid layers steer best); another tool's vector: all its layers. "
        "-1 is the last layer.",
    ),
    strength: float = typer.Option(
        0.5, "--strength", "-s", callback=finite, help="x the mean residual norm at the layer (negative: away)."
    ),
    prompt: Optional[List[str]] = typer.Option(None, "--prompt", "-p", help="Prompts; none: an interactive prompt."),
    method: Optional[str] = typer.Option(None, "--method", help="Which method in the file (default mean_diff)."),
    compare: bool = typer.Option(True, "--compare/--no-compare", help="Also show the unsteered answer."),
    max_new_tokens: int = typer.Option(60, "--max-new-tokens", min=1),
    model: Optional[str] = ModelOpt,
    kind: str = KindOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Generate with a trait vector added at one layer; interactive when no --prompt is given."""
    source = load_vector(vectors, method)
    with stages_for(quiet, as_json) as stages, stages.stage("load model"):
        m = model_from(model, kind)
    vec = source.for_model(m)
    vec.check_model(m)
    # another tool's vector steers at all its layers, as that tool does (and as the library's steer does)
    at = layer if layer is not None else (list(vec.layers) if source.imported else _default_layer(vec))
    where = f"layer {at}" if isinstance(at, int) else f"layers {','.join(map(str, at))}"

    def answer(prompts: list[str]) -> list[dict[str, Any]]:
        base: Sequence[str | None]
        with stages_for(quiet, as_json) as stages:  # on 2 CPU cores a 60-token answer takes seconds
            if compare:
                with stages.stage(f"unsteered ({len(prompts)} prompt{'s' * (len(prompts) > 1)})"):
                    base = generate(m, prompts, max_new_tokens=max_new_tokens)
            else:
                base = [None] * len(prompts)
            with stages.stage(f"steered at {where}, strength {strength:g}"), do_steer(m, vec, at, strength=strength):
                steered = generate(m, prompts, max_new_tokens=max_new_tokens)
        return [
            {"prompt": p, "layer": at, "strength": strength, "steered": s, "unsteered": b}
            for p, s, b in zip(prompts, steered, base)
        ]

    def show(rows: list[dict[str, Any]]) -> None:
        for row in rows:
            if row["unsteered"] is not None:
                typer.echo(f"unsteered: {row['unsteered'].strip()}")
            typer.echo(f"steered ({where}, strength {strength:g}): {row['steered'].strip()}\n")

    if prompt:
        rows = answer(list(prompt))  # each --prompt whole: prompts may contain commas
        emit(rows) if as_json else show(rows)
        return
    typer.echo(f"steering with {vec.method} at {where}, strength {strength:g}; an empty line or Ctrl-D quits", err=True)
    while True:
        try:
            line = input("> ")
        except EOFError:
            break
        if not line.strip():
            break
        rows = answer([line])
        emit(rows) if as_json else show(rows)


def evaluate(
    vectors: Path = typer.Argument(
        ..., help="A vectors file from extract, a GGUF control vector or a {layer: tensor} safetensors file."
    ),
    trait: str = typer.Argument(..., help="The trait whose steering questions and definition are used."),
    layers: Optional[str] = typer.Option(
        None, "--layers", help="Comma-separated layers searched (default: the extracted layer nearest 40% depth)."
    ),
    judges: Optional[List[str]] = typer.Option(
        None,
        "--judges",
        help="A trait judge and a coherence judge (default: the trait's own, e.g. classifier,coherence).",
    ),
    method: Optional[str] = typer.Option(None, "--method"),
    direction: int = typer.Option(1, "--direction", help="+1 toward the trait, -1 away from it."),
    questions: Optional[int] = typer.Option(
        None, "--questions", min=1, help="Dev and test questions each (default: the whole splits)."
    ),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", min=1),
    log: Optional[Path] = typer.Option(None, "--log", help="JSONL log to append to and resume from."),
    model: Optional[str] = ModelOpt,
    kind: str = KindOpt,
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Same as --questions (a small trial)."),
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Choose the layer and strength on the trait's dev questions, score that setting on its test questions."""
    output_file(log, "--log", inputs={"VECTORS": vectors, "TRAIT": trait_files(trait)})
    source = load_vector(vectors, method)
    n = limit or questions
    with stages_for(quiet, as_json) as stages:
        m = model_from(model, kind, stages)
        vec = source.for_model(m)
        layer_list = parse_layers(layers) or [_default_layer(vec)]
        with stages.stage(f"evaluate {vec.method}", total=1) as advance:
            result = evaluate_steering(
                m,
                vec,
                trait,
                layers=layer_list,
                judges=split_values(judges) or None,
                direction=direction,
                dev_questions=n,
                test_questions=n,
                max_new_tokens=max_new_tokens,
                log=log,
                progress=False,
                on_step=advance,
            )
    if as_json:
        emit({**result.to_dict(), "dev_search": result.table().to_dicts()})
        return
    typer.echo(str(result.table()))
    typer.echo("")
    typer.echo(str(result.summary()))
    typer.echo("")
    typer.echo(f"{vec.method}: " + steering_line(result.headline()))


def _default_layer(vec: Any) -> int:
    """The extracted layer nearest 40% of the depth of the model the vector was made on."""
    n_layers = int((vec.metadata.get("model") or {}).get("n_layers") or max(vec.layers) + 1)
    return default_steering_layer(n_layers, vec.layers)
