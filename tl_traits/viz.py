"""Views: per-token trait projections as self-contained circuitsvis pages (offline, notebook-ready)."""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from tl_traits.files import atomic_write_text
from tl_traits.monitor import Projections, project
from tl_traits.prompts import PromptInput
from tl_traits.vectors import TraitVector


@dataclass
class Page:
    """An HTML page that works offline; shows inline in a notebook, `save(path)` writes it atomically."""

    title: str
    body: str

    @property
    def html(self) -> str:
        return (
            "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
            f"<title>{html.escape(self.title)}</title>"
            "<style>body{font-family:sans-serif;margin:2em;max-width:70em}h2{font-size:1.05em;margin-top:2em}"
            ".meta{color:#555;font-size:.9em}</style></head>\n"
            f"<body><h1>{html.escape(self.title)}</h1>\n{self.body}\n</body></html>\n"
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        return atomic_write_text(path, self.html)

    def _repr_html_(self) -> str:
        return self.body


def token_projections(
    model: Any,
    vectors: TraitVector | Mapping[str, TraitVector] | None = None,
    prompts: PromptInput | Sequence[PromptInput] | None = None,
    *,
    projections: Projections | None = None,
    layer: int | None = None,
    metric: str = "centered",
    title: str = "Trait projections per token",
    **project_options: Any,
) -> Page:
    """Colour each token by its projection onto the trait vector(s): one trait with
    `colored_tokens`, several side by side with `colored_tokens_multi`.

    Pass `model, vectors, prompts` (projections are computed with `monitor.project`) or
    `projections=` from an earlier call. metric: "centered" (default), "raw" or "cosine".
    """
    from circuitsvis.tokens import colored_tokens, colored_tokens_multi

    if metric not in ("centered", "raw", "cosine"):
        raise ValueError(f"metric must be 'centered', 'raw' or 'cosine', not {metric!r}")
    if projections is None:
        if vectors is None or prompts is None:
            raise ValueError("token_projections needs model, vectors and prompts, or projections=...")
        projections = project(model, vectors, prompts, layers=layer, **project_options)
    shown_layer = layer if layer is not None else projections.layers[0]
    if shown_layer not in projections.layers:
        raise ValueError(f"layer {shown_layer} was not projected; these projections have layers {projections.layers}")
    sections = []
    for item in projections.items:
        texts = [model.tokenizer.convert_tokens_to_string([t]) for t in item.tokens]
        values = [getattr(item, metric)[(trait, shown_layer)] for trait in projections.traits]
        if len(values) == 1:
            view = colored_tokens(texts, values[0].tolist())
        else:
            view = colored_tokens_multi(texts, torch.stack(values, dim=1), labels=list(projections.traits))
        sections.append(
            f"<h2>Prompt {item.prompt_id}</h2>"
            f"<div class='meta'>layer {shown_layer}, {metric} projection; response: {html.escape(item.response[:300])}</div>"
            f"{view.local_src}"
        )
    return Page(title, "\n".join(sections))
