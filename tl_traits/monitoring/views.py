"""Views: per-token trait projections as self-contained circuitsvis pages (offline, notebook-ready)."""

from __future__ import annotations

import html
from typing import Any, Mapping, Sequence

import torch

from tl_traits.core.extras import require
from tl_traits.core.pages import Page, split_local_src
from tl_traits.core.prompts import PromptInput
from tl_traits.core.vectors import TraitVector
from tl_traits.monitoring.monitor import MonitorError, Projections, project


def _render_only(view: Any) -> str:
    """A circuitsvis view as its div and render call; `Page` adds the bundle once."""
    div, _, call = split_local_src(view.local_src)
    # the call carries the tokens as raw JSON: a token "</script><script>..." would end our script and run its own.
    # "<" only occurs inside its string literals, where the \u003c escape reads back as the same character.
    return f"{div.replace('/>', '></div>', 1)}<script>{call.replace('<', chr(92) + 'u003c')}</script>"


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
    if metric not in ("centered", "raw", "cosine"):
        raise MonitorError(f"metric must be 'centered', 'raw' or 'cosine', not {metric!r}")
    if projections is None:
        if vectors is None or prompts is None:
            raise MonitorError("token_projections needs model, vectors and prompts, or projections=...")
        projections = project(model, vectors, prompts, layers=layer, **project_options)
    shown_layer = layer if layer is not None else projections.layers[0]
    if shown_layer not in projections.layers:
        raise MonitorError(f"layer {shown_layer} was not projected; these projections have layers {projections.layers}")
    sections = []
    for item in projections.items:
        texts = [model.tokenizer.convert_tokens_to_string([t]) for t in item.tokens]
        values = {trait: getattr(item, metric)[(trait, shown_layer)].tolist() for trait in projections.traits}
        sections.append(
            f"<h2>Prompt {item.prompt_id}</h2>"
            f"<div class='meta'>layer {shown_layer}, {metric} projection; response: "
            f"{html.escape(item.response[:300])}</div>{token_view(texts, values)}"
        )
    return Page(title, "\n".join(sections))


def token_view(texts: Sequence[str], values: Mapping[str, Sequence[float]]) -> str:
    """circuitsvis HTML (for a `Page`, which adds the script once) colouring `texts` by one trait's
    values, or several side by side."""
    colored = require("circuitsvis.tokens")
    colored_tokens, colored_tokens_multi = colored.colored_tokens, colored.colored_tokens_multi

    if not values:
        raise MonitorError("token_view needs values for at least one trait")
    for trait, vals in values.items():
        if len(vals) != len(texts):
            raise MonitorError(f"trait '{trait}' has {len(vals)} values for {len(texts)} tokens")
    if len(values) == 1:
        return _render_only(colored_tokens(list(texts), [float(v) for v in next(iter(values.values()))]))
    stacked = torch.tensor([list(map(float, v)) for v in values.values()]).T  # [seq, traits]
    return _render_only(colored_tokens_multi(list(texts), stacked, labels=list(values)))
