"""Views: per-token trait projections as self-contained circuitsvis pages (offline, notebook-ready)."""

from __future__ import annotations

import functools
import html
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from tl_traits.core.files import atomic_write_text
from tl_traits.core.prompts import PromptInput
from tl_traits.core.vectors import TraitVector
from tl_traits.monitoring.monitor import MonitorError, Projections, project


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
            f"<body><h1>{html.escape(self.title)}</h1>\n{self._with_bundle()}\n</body></html>\n"
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        return atomic_write_text(path, self.html)

    def _repr_html_(self) -> str:
        return self._with_bundle()

    def _with_bundle(self) -> str:
        """The body, preceded by the circuitsvis script once if any view needs it (views only call render)."""
        if RENDER_CALL not in self.body:
            return self.body
        return f"<script>{circuitsvis_bundle()}</script>\n{self.body}"


RENDER_CALL = "CircuitsVis.render("
_SOURCE_MAP = re.compile(r"^//# sourceMappingURL=.*$", re.MULTILINE)


def _split_local_src(src: str) -> tuple[str, str, str]:
    """circuitsvis's `local_src` is `<div/>` + one module script holding the whole bundle and a render call."""
    opening = src.index("<script")
    body_start = src.index(">", opening) + 1
    call = src.rindex(RENDER_CALL)
    return src[:opening], src[body_start:call], src[call: src.rindex("</script>")]


@functools.lru_cache(maxsize=1)
def circuitsvis_bundle() -> str:
    """circuitsvis's JavaScript (about 1.3 MB), inlined once per page; defines the global `CircuitsVis`."""
    from circuitsvis.tokens import colored_tokens

    _, bundle, _ = _split_local_src(colored_tokens(["x"], [0.0]).local_src)
    return _SOURCE_MAP.sub("", bundle).replace("</script", "<\\/script")


def _render_only(view: Any) -> str:
    """A circuitsvis view as its div and render call; `Page` adds the bundle once."""
    div, _, call = _split_local_src(view.local_src)
    return f"{div.replace('/>', '></div>', 1)}<script>{call}</script>"


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
            f"<div class='meta'>layer {shown_layer}, {metric} projection; response: {html.escape(item.response[:300])}</div>"
            f"{token_view(texts, values)}"
        )
    return Page(title, "\n".join(sections))


def token_view(texts: Sequence[str], values: Mapping[str, Sequence[float]]) -> str:
    """circuitsvis HTML (for a `Page`, which adds the script once) colouring `texts` by one trait's values, or several side by side."""
    from circuitsvis.tokens import colored_tokens, colored_tokens_multi

    if not values:
        raise MonitorError("token_view needs values for at least one trait")
    for trait, vals in values.items():
        if len(vals) != len(texts):
            raise MonitorError(f"trait '{trait}' has {len(vals)} values for {len(texts)} tokens")
    if len(values) == 1:
        return _render_only(colored_tokens(list(texts), [float(v) for v in next(iter(values.values()))]))
    stacked = torch.tensor([list(map(float, v)) for v in values.values()]).T  # [seq, traits]
    return _render_only(colored_tokens_multi(list(texts), stacked, labels=list(values)))
