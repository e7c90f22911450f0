"""`train-sae`: train a TopK SAE on one layer and store it where the `sae` extractor finds it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from tl_traits.app.cli.options import (
    JsonOpt,
    KindOpt,
    ModelOpt,
    QuietOpt,
    emit,
    existing_file,
    finite,
    model_from,
    output_folder,
    stages_for,
)
from tl_traits.saes.recipe import read_corpus, target_folder, train_and_store


def train_sae(
    layer: Optional[int] = typer.Option(
        None, "--layer", "-l", help="Layer to train on (default: 40% depth, layer 12 of 30)."
    ),
    hook: str = typer.Option("resid_post", "--hook", help="resid_post, resid_pre, resid_mid, attn_out or mlp_out."),
    d_sae: Optional[int] = typer.Option(None, "--d-sae", min=1, help="Features (default 8 x d_model)."),
    k: int = typer.Option(32, "--k", min=1, help="Active features per token (TopK)."),
    tokens: int = typer.Option(1_000_000, "--tokens", min=1, help="Training tokens (activations seen)."),
    lr: float = typer.Option(1e-3, "--lr", callback=finite, help="Adam learning rate (constant)."),
    corpus: Optional[Path] = typer.Option(
        None,
        "--corpus",
        help="A .txt (paragraphs split by blank lines) or .jsonl "
        "(text, or prompt+response) file; default: the offline "
        "corpus (docs/sae.md).",
    ),
    replies: int = typer.Option(
        320, "--replies", min=1, help="Model replies in the default corpus (generated once, cached)."
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="SAE folder (default: the SAE store, where the sae extractor looks)."
    ),
    force: bool = typer.Option(
        False, "--force", help="Replace an SAE already in that folder (after the new one is complete)."
    ),
    if_missing: bool = typer.Option(False, "--if-missing", help="Do nothing when that folder already holds an SAE."),
    seed: int = typer.Option(0, "--seed"),
    model: Optional[str] = ModelOpt,
    kind: str = KindOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Train a TopK SAE on one layer with sae-lens's trainer and store it where the `sae` extractor finds it."""
    output_folder(out, "--out", inputs={"--corpus": corpus})  # --force replaces the whole folder
    texts = read_corpus(existing_file(corpus, "--corpus")) if corpus is not None else None
    with stages_for(quiet, as_json) as stages:
        m = model_from(model, kind, stages)
        if if_missing and not force:
            folder = target_folder(m, layer, hook, out)
            if (folder / "cfg.json").is_file():
                typer.echo(f"an SAE is already stored at {folder}; nothing to do (--force retrains it)", err=True)
                return
        summary = train_and_store(
            m,
            layer=layer,
            hook=hook,
            d_sae=d_sae,
            k=k,
            n_tokens=tokens,
            lr=lr,
            corpus=texts,
            replies=replies,
            out=out,
            force=force,
            seed=seed,
            progress=not quiet,
            stages=stages,
        )
    if as_json:
        emit(summary)
        return
    typer.echo(
        f"SAE {summary['hook_name']} ({summary['d_sae']} features, k={summary['k']}): explained variance "
        f"{summary['explained_variance']:.3f}, mean L0 {summary['mean_l0']:.1f}, dead {summary['dead_fraction']:.1%} "
        f"on {summary['n_eval_tokens']} held-out tokens; {summary['n_train_tokens']} training tokens in "
        f"{summary['train_seconds']:.0f} s\nsaved: {summary['folder']}"
    )
