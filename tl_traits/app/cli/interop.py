"""`tl-traits export-gguf`: a vector as a GGUF control vector for llama.cpp, ollama and repeng."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from tl_traits.app.cli.options import (
    JsonOpt,
    KindOpt,
    emit,
    finite,
    load_vector,
    model_from,
    output_file,
    parse_layers,
)
from tl_traits.interop.gguf_control_vectors import export_gguf


def export_gguf_command(
    vectors: Path = typer.Argument(
        ..., help="A vectors file from extract, a GGUF control vector or a {layer: tensor} safetensors file."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="The .gguf file to write (not one of the inputs)."),
    method: Optional[str] = typer.Option(None, "--method", help="Which method in the file (default mean_diff)."),
    layers: Optional[str] = typer.Option(
        None, "--layers", help="Comma-separated layers, -1 the last (default: every layer but 0)."
    ),
    strength: float = typer.Option(
        1.0,
        "--strength",
        "-s",
        callback=finite,
        help="Written into the file; at 1, llama.cpp's --control-vector-scaled value is the strength here.",
    ),
    model: Optional[str] = typer.Option(
        None,
        "--model",
        "-m",
        help="For another tool's file: the model it was made "
        "for (its layer count and width; default: the embedded "
        "SmolLM2-135M-Instruct).",
    ),
    kind: str = KindOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Write a GGUF control vector: `llama-cli ... --control-vector-scaled OUT 0.3` steers as strength 0.3 here."""
    output_file(out, "--out", inputs={"VECTORS": vectors})
    source = load_vector(vectors, method)
    vec = source.for_model(model_from(model, kind)) if source.imported else source.vector
    chosen = parse_layers(layers)
    path = export_gguf(vec, out, strength=strength, layers=None if chosen in (None, "all") else chosen)
    if as_json:
        emit({"saved": str(path), "method": vec.method, "strength": strength})
        return
    typer.echo(
        f"saved: {path} ({vec.method}, strength {strength:g}); llama.cpp: --control-vector-scaled {path} <strength>"
    )
