"""`monitor`: per-token trait projections for prompts, or a group comparison over a prompt set."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from tl_traits.app.cli.options import (
    CommandLineError,
    JsonOpt,
    KindOpt,
    LimitOpt,
    ModelOpt,
    QuietOpt,
    emit,
    load_vector,
    model_from,
    output_file,
    stages_for,
)
from tl_traits.monitoring.monitor import analyze_prompt_set, project
from tl_traits.monitoring.views import token_projections


def monitor(
    vectors: List[Path] = typer.Argument(..., help="One or more .safetensors files from extract (one trait each)."),
    prompt: Optional[List[str]] = typer.Option(
        None, "--prompt", "-p", help="Prompts to project (default: the prompt set)."
    ),
    prompt_set: str = typer.Option("requests", "--prompt-set", help="A bundled set name or a JSON file."),
    judge: str = typer.Option("refusal", "--judge", help="The judge that splits the prompt set into groups."),
    layer: Optional[int] = typer.Option(None, "--layer", help="Default: the first vector's best layer."),
    method: Optional[str] = typer.Option(None, "--method"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the per-token page here (.html)."),
    max_new_tokens: int = typer.Option(40, "--max-new-tokens", min=1),
    model: Optional[str] = ModelOpt,
    kind: str = KindOpt,
    limit: Optional[int] = LimitOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Per-token trait projections for prompts, or a group comparison over a prompt set."""
    output_file(out, "--out", inputs={"VECTORS": vectors, "--prompt-set": prompt_set})
    named = {}
    for path in vectors:
        source = load_vector(path, method)
        if source.imported:  # read, but monitoring needs what extract records
            raise CommandLineError(
                "monitor projects on vectors from extract (it needs the baseline and best layer "
                f"they record); {path} is another tool's {source.kind} vector: steer "
                "or export-gguf take it"
            )
        vec = source.vector
        named[str(vec.metadata.get("dataset", {}).get("name", path.stem)).split("/")[-1]] = vec
    first = next(iter(named.values()))
    at = layer if layer is not None else first.best_layer()
    with stages_for(quiet, as_json) as stages:
        m = model_from(model, kind, stages)
        if prompt:
            with stages.stage("project"):
                proj = project(
                    m,
                    named,
                    list(prompt)[:limit] if limit else list(prompt),
                    layers=[at],
                    max_new_tokens=max_new_tokens,
                )
            if out:
                token_projections(m, projections=proj, layer=at).save(out)
            if as_json:
                emit(proj.to_dataframe().to_dict(orient="records"))
            else:
                for item in proj.items:
                    means = {t: float(item.centered[(t, at)].mean()) for t in proj.traits}
                    typer.echo(
                        f"prompt {item.prompt_id}: "
                        + ", ".join(f"{t} {v:+.2f}" for t, v in means.items())
                        + f" | {item.response.strip()[:100]}"
                    )
                if out:
                    typer.echo(f"page: {out.resolve()}")
            return
        with stages.stage(f"analyse {prompt_set}"):
            analysis = analyze_prompt_set(
                m, first, prompt_set, judge=judge, layer=at, limit=limit, max_new_tokens=max_new_tokens
            )
    comp = analysis.comparison
    if as_json:
        emit(
            {
                "layer": at,
                "groups": list(analysis.groups),
                "comparison": comp.to_dict() if comp else None,
                "rows": analysis.rows,
            }
        )
        return
    counts = {g: sum(r["group"] == g for r in analysis.rows) for g in analysis.groups}
    typer.echo(f"{analysis.trait} at layer {at}: " + ", ".join(f"{g} {n}" for g, n in counts.items()))
    if comp:
        typer.echo(
            f"Cohen's d {comp.cohens_d:.2f} (95% CI {comp.d_ci[0]:.2f}..{comp.d_ci[1]:.2f}), "
            f"AUROC {comp.auroc:.3f}, Welch p {comp.p_value:.2g}"
        )
    else:
        typer.echo("too few prompts in one group to compare (each needs at least 2)")
