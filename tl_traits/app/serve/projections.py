"""The dashboard's scale for trait projections: centred on a neutral baseline (the model's own unsteered answers to
neutral requests) and in units of the layer's mean residual norm; and the per-token view of one prompt-set example."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from tl_traits.app.serve.catalog import ServeError
from tl_traits.app.serve.streaming import Monitor
from tl_traits.core.generation import generate
from tl_traits.core.vectors import TraitVector
from tl_traits.monitoring.monitor import load_prompt_set, note_category, project

NEUTRAL_SET = "requests"  # the bundled prompt set whose benign requests are the neutral corpus
NEUTRAL_PROMPTS = 8
NEUTRAL_TOKENS = 32


@dataclass
class Baselines:
    """Per (vector id, layer): the mean projection `h . v` of the model's own unsteered answers to neutral requests."""

    values: dict[tuple[str, int], float]
    prompts: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)

    def monitor(self, vector_id: str, vector: TraitVector, layer: int) -> Monitor:
        """How the dashboard reads `vector` at `layer`: centred on the neutral baseline, in the layer's norm."""
        if layer not in vector.layers:
            raise ServeError(
                f"vector {vector_id!r} has no layer {layer}; its layers are {', '.join(map(str, vector.layers))}"
            )
        return Monitor(vector_id, vector, layer, self.values[(vector_id, layer)], vector.norm(layer) or 1.0)

    def describe(self) -> str:
        return (
            f"0 is the mean projection of the model's own greedy answers ({NEUTRAL_TOKENS} tokens at most) to the "
            f"first {len(self.prompts)} benign requests of the bundled '{NEUTRAL_SET}' set, each answer averaged "
            "over its tokens, read at the same layer; values are in units of the layer's mean residual norm (the "
            "unit of steering strength), so steering at a layer with strength s moves that layer's reading by s"
        )


def neutral_prompts(n: int = NEUTRAL_PROMPTS) -> list[str]:
    """The first `n` benign requests of the bundled set: ordinary questions that call for no trait."""
    prompts = [p["text"] for p in load_prompt_set(NEUTRAL_SET).prompts if note_category(p) == "benign"]
    return prompts[:n]


def neutral_baselines(
    model: Any, vectors: Mapping[str, TraitVector], *, n: int = NEUTRAL_PROMPTS, max_new_tokens: int = NEUTRAL_TOKENS
) -> Baselines:
    """Every served vector's neutral baseline at every one of its layers (one generate, one forward per prompt and
    group of vectors sharing hook and layers)."""
    prompts = neutral_prompts(n)
    answers = generate(model, prompts, max_new_tokens=max_new_tokens)
    groups: dict[tuple[str, tuple[int, ...]], dict[str, TraitVector]] = {}
    for key, vec in vectors.items():
        groups.setdefault((vec.hook, tuple(vec.layers)), {})[key] = vec
    values: dict[tuple[str, int], float] = {}
    for (_, layers), named in groups.items():
        proj = project(model, named, prompts, layers=list(layers), responses=answers)
        for key in named:
            for layer in layers:
                means = [m for m in proj.response_means(key, layer, "raw") if not math.isnan(m)]
                values[(key, layer)] = sum(means) / len(means) if means else 0.0
    return Baselines(values, prompts, answers)


def example_view(model: Any, monitors: Sequence[Monitor], prompt: str, response: str) -> dict[str, Any]:
    """Every token of prompt + response with each monitor's value (`monitoring.project`'s raw projection, re-centred).

    The first token (BOS, an attention sink whose residual is many times the others') is left out, as in the report.
    """
    if not monitors:
        raise ServeError("choose at least one vector to project on")
    by_layer: dict[tuple[str, int], list[Monitor]] = {}
    for m in monitors:
        by_layer.setdefault((m.vector.hook, m.layer), []).append(m)
    values: dict[str, list[float]] = {}
    item: Any = None
    for (_, layer), group in by_layer.items():
        proj = project(model, {m.id: m.vector for m in group}, [prompt], layers=[layer], responses=[response])
        item = proj.items[0]
        for m in group:
            values[m.id] = [round(m.value(float(x)), 5) for x in item.raw[(m.id, layer)][1:]]
    pieces = [model.tokenizer.convert_tokens_to_string([t]) for t in item.tokens[1:]]
    return {
        "tokens": pieces,
        "segments": item.segments[1:],
        "values": values,
        "monitors": [{"id": m.id, "layer": m.layer} for m in monitors],
        "response": response,
    }


def answer_for(model: Any, prompt: str, response: str | None, max_new_tokens: int) -> tuple[str, bool]:
    """The example's own response, or the model's greedy answer when the set has none (and whether it was made)."""
    if response is not None:
        return response, False
    return generate(model, [prompt], max_new_tokens=max_new_tokens)[0], True
