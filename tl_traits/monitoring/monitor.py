"""Trait dynamics: per-token projections of the residual onto trait vectors, and group comparisons."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from tl_traits.core import stats
from tl_traits.core.errors import TlTraitsError, check_count
from tl_traits.core.extras import require
from tl_traits.core.files import parse_json_object
from tl_traits.core.generation import generate
from tl_traits.core.hook_names import hook_name
from tl_traits.core.hook_points import forward_hooks
from tl_traits.core.models import model_device
from tl_traits.core.prompts import PromptInput, as_batch, prepare_inputs
from tl_traits.core.trial import trial_size
from tl_traits.core.vectors import TraitVector
from tl_traits.judging.judges import make_judge


class MonitorError(TlTraitsError):
    """A projection or group comparison that cannot be made from these inputs."""


@dataclass
class TokenProjections:
    """One prompt's tokens and, per (trait, layer), the projection of each token's residual."""

    prompt_id: int
    tokens: list[str]
    segments: list[str]  # "prompt", "response" or "end" (the end-of-turn tokens) per token
    raw: dict[tuple[str, int], Float[Tensor, " seq"]]  # h . v
    cosine: dict[tuple[str, int], Float[Tensor, " seq"]]  # h . v / |h|
    centered: dict[tuple[str, int], Float[Tensor, " seq"]]  # h . v - the vector's recorded baseline
    response: str = ""


@dataclass
class Projections:
    """Per-token projections for a set of prompts; `to_dataframe()` gives a tidy table."""

    items: list[TokenProjections]
    traits: list[str]
    layers: list[int]
    options: dict[str, Any] = field(default_factory=dict)

    def to_dataframe(self) -> Any:
        import pandas as pd

        rows = []
        for item in self.items:
            for (trait, layer), raw in item.raw.items():
                cos, cen = item.cosine[(trait, layer)], item.centered[(trait, layer)]
                for i, token in enumerate(item.tokens):
                    rows.append(
                        {
                            "prompt_id": item.prompt_id,
                            "token_index": i,
                            "token": token,
                            "segment": item.segments[i],
                            "trait": trait,
                            "layer": layer,
                            "raw": float(raw[i]),
                            "cosine": float(cos[i]),
                            "centered": float(cen[i]),
                        }
                    )
        return pd.DataFrame(rows)

    def response_means(self, trait: str, layer: int, metric: str = "centered") -> list[float]:
        """Mean projection over each prompt's response tokens (NaN where there is no response)."""
        out = []
        for item in self.items:
            values = getattr(item, metric)[(trait, layer)]
            mask = torch.tensor([s == "response" for s in item.segments])
            out.append(float(values[mask].mean()) if mask.any() else math.nan)
        return out


@torch.no_grad()
def project(
    model: Any,
    vectors: TraitVector | Mapping[str, TraitVector],
    prompts: PromptInput | Sequence[PromptInput],
    *,
    layers: int | Sequence[int] | None = None,
    responses: Sequence[str] | None = None,
    generate_responses: bool = True,
    max_new_tokens: int = 50,
    smooth: int | None = None,
    velocity: bool = False,
) -> Projections:
    """Project every token of each prompt (and its response) onto each trait vector.

    vectors: one TraitVector or {trait name: TraitVector}. layers: those to read (default:
        each vector's best layer by held-out AUROC). Responses are generated greedily unless
        given or `generate_responses=False`. smooth: a centred moving average of that window;
        velocity: the token-to-token difference (after smoothing).
    """
    named = {_trait_name(vectors): vectors} if isinstance(vectors, TraitVector) else dict(vectors)
    for vec in named.values():
        vec.check_model(model)
    if layers is None:
        layer_list = sorted({vec.best_layer("auroc") for vec in named.values()})
    else:
        layer_list = [layers] if isinstance(layers, int) else list(layers)
    prompt_list = as_batch(prompts)
    if responses is None and generate_responses:
        responses = generate(model, prompt_list, max_new_tokens=max_new_tokens)
    if responses is not None and len(responses) != len(prompt_list):
        raise MonitorError(f"{len(prompt_list)} prompts but {len(responses)} responses")

    items = []
    for pid, prompt in enumerate(prompt_list):
        response = responses[pid] if responses is not None else None
        batch = prepare_inputs(model, [prompt], [response])
        seen: dict[int, Tensor] = {}

        def keep(layer: int):
            def fn(act: Tensor, hook: Any) -> None:
                seen[layer] = act[0].float().cpu()  # noqa: B023 - run within this prompt's forward

            return fn

        hooks = [(hook_name(layer, _hook(named)), keep(layer)) for layer in layer_list]
        with forward_hooks(model, hooks):
            model(batch.input_ids.to(model_device(model)), stop_at_layer=max(layer_list) + 1)
        sp = batch.spans[0]
        ids = batch.token_ids[0]
        raw, cos, cen = {}, {}, {}
        for trait, vec in named.items():
            for layer in layer_list:
                h = seen[layer]
                r = h @ vec.direction(layer).float()
                c = r / h.norm(dim=-1).clamp_min(1e-12)
                values = [r, c, r - vec.baseline(layer)]
                values = [_shape(v, smooth, velocity) for v in values]
                raw[(trait, layer)], cos[(trait, layer)], cen[(trait, layer)] = values
        items.append(
            TokenProjections(
                pid,
                model.tokenizer.convert_ids_to_tokens(ids),
                [
                    "prompt" if i < sp.prompt[1] else "response" if i < sp.response[1] else "end"
                    for i in range(len(ids))
                ],
                raw,
                cos,
                cen,
                response or "",
            )
        )
    return Projections(items, list(named), layer_list, {"smooth": smooth, "velocity": velocity})


def _trait_name(vec: TraitVector) -> str:
    return str((vec.metadata.get("dataset") or {}).get("name") or vec.method)


def _hook(named: Mapping[str, TraitVector]) -> str:
    hooks = {vec.hook for vec in named.values()}
    if len(hooks) != 1:
        raise MonitorError(f"these vectors were extracted at different hooks {sorted(hooks)}; project them separately")
    return hooks.pop()


def _shape(values: Float[Tensor, " seq"], smooth: int | None, velocity: bool) -> Float[Tensor, " seq"]:
    if smooth and smooth > 1:
        values = moving_average(values, smooth)
    if velocity:
        values = torch.cat([torch.zeros(1), values[1:] - values[:-1]])
    return values


def moving_average(values: Float[Tensor, " seq"], window: int) -> Float[Tensor, " seq"]:
    """Centred moving average; near the ends it averages the tokens that exist."""
    half = window // 2
    padded = torch.nn.functional.pad(values[None, None], (half, window - 1 - half))
    counts = torch.nn.functional.pad(torch.ones_like(values)[None, None], (half, window - 1 - half))
    kernel = torch.ones(1, 1, window)
    sums = torch.nn.functional.conv1d(padded, kernel)[0, 0]
    return sums / torch.nn.functional.conv1d(counts, kernel)[0, 0]


@dataclass(frozen=True)
class PromptSet:
    """A named list of prompts `{"id", "text", "note"}` (bundled: `prompt_sets/<name>.json`)."""

    name: str
    description: str
    prompts: list[dict[str, str]]


def load_prompt_set(source: str | os.PathLike[str] = "requests") -> PromptSet:
    """A bundled prompt set by name ('requests') or a JSON file of the same format."""
    path = Path(source)
    if not path.is_file():
        bundled = resources.files("tl_traits") / "prompt_sets" / f"{source}.json"
        if not bundled.is_file():
            raise MonitorError(f"no prompt set '{source}': not a file, and not a bundled set (requests)")
        data = parse_json_object(bundled.read_text(encoding="utf-8"), f"prompt set {source}", MonitorError)
    else:
        data = parse_json_object(path.read_text(encoding="utf-8"), f"prompt set {path}", MonitorError)
    prompts = data.get("prompts")
    if not isinstance(prompts, list) or not all(
        isinstance(p, dict) and isinstance(p.get("text"), str) for p in prompts
    ):
        raise MonitorError(f"prompt set {source}: 'prompts' must be a list of {{'id', 'text', 'note'}} objects")
    name = data.get("name", str(source))
    return PromptSet(name, data.get("description", ""), prompts[: trial_size(len(prompts), f"prompt set {name}")])


@dataclass
class PromptSetAnalysis:
    """Per prompt: response, judge score, group and mean projection; plus the group comparison."""

    rows: list[dict[str, Any]]
    comparison: "GroupComparison | None"
    trait: str
    layer: int
    groups: tuple[str, str]

    def to_dataframe(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.rows)


def analyze_prompt_set(
    model: Any,
    vector: TraitVector,
    prompt_set: str | os.PathLike[str] | PromptSet = "requests",
    *,
    judge: Any = "refusal",
    threshold: float = 50.0,
    layer: int | None = None,
    max_new_tokens: int = 48,
    limit: int | None = None,
    groups: tuple[str, str] = ("refused", "answered"),
) -> PromptSetAnalysis:
    """Generate answers, label them with a judge (score >= threshold is the first group) and
    compare the trait projection (mean over response tokens, centred) between the groups:
    e.g. the refusal direction on refused vs answered requests, with Cohen's d and AUROC."""

    chosen = prompt_set if isinstance(prompt_set, PromptSet) else load_prompt_set(prompt_set)
    prompts = chosen.prompts[:limit] if check_count(limit, "limit", MonitorError) else chosen.prompts
    texts = [p["text"] for p in prompts]
    layer = layer if layer is not None else vector.best_layer("auroc")
    name = _trait_name(vector)
    proj = project(model, {name: vector}, texts, layers=[layer], max_new_tokens=max_new_tokens)
    responses = [item.response for item in proj.items]
    scores = make_judge(judge, model=model).score(texts, responses)
    means = proj.response_means(name, layer)
    rows = []
    for p, response, score, mean in zip(prompts, responses, scores, means):
        group = None if score is None else (groups[0] if score >= threshold else groups[1])
        rows.append(
            {
                "id": p.get("id"),
                "note": p.get("note", ""),
                "prompt": p["text"],
                "response": response,
                "judge_score": score,
                "group": group,
                "projection": mean,
            }
        )
    return PromptSetAnalysis(rows, compare_rows(rows, groups), name, layer, groups)


def note_category(row: Mapping[str, Any]) -> str:
    """The part of a prompt's note before ':' ("harmful: vehicle theft" -> "harmful")."""
    return str(row.get("note") or "").split(":")[0].strip()


def compare_rows(
    rows: Sequence[Mapping[str, Any]],
    groups: tuple[str, str],
    key: Callable[[Mapping[str, Any]], Any] = lambda row: row["group"],
    value: str = "projection",
) -> "GroupComparison | None":
    """`compare_groups` on the rows whose key is groups[0] vs groups[1]; None when either has < 2 scores."""
    first = [r[value] for r in rows if key(r) == groups[0] and r[value] is not None and not math.isnan(r[value])]
    second = [r[value] for r in rows if key(r) == groups[1] and r[value] is not None and not math.isnan(r[value])]
    return compare_groups(first, second) if len(first) >= 2 and len(second) >= 2 else None


@dataclass(frozen=True)
class GroupComparison:
    """Two groups of scores compared: sizes, means, Cohen's d, AUROC (a above b), CI, Welch p."""

    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    cohens_d: float
    auroc: float
    d_ci: tuple[float, float]
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def compare_groups(
    scores_a: Sequence[float], scores_b: Sequence[float], *, n_boot: int = 2000, ci: float = 0.95, seed: int = 0
) -> GroupComparison:
    """Means, Cohen's d (pooled std), AUROC, a bootstrap CI for d and Welch's t-test p-value."""
    a = torch.tensor([float(x) for x in scores_a if not math.isnan(float(x))], dtype=torch.float64)
    b = torch.tensor([float(x) for x in scores_b if not math.isnan(float(x))], dtype=torch.float64)
    if len(a) < 2 or len(b) < 2:
        raise MonitorError(f"compare_groups needs at least 2 scores per group; got {len(a)} and {len(b)}")
    gen = torch.Generator().manual_seed(seed)
    ia = torch.randint(len(a), (n_boot, len(a)), generator=gen)
    ib = torch.randint(len(b), (n_boot, len(b)), generator=gen)
    boot = stats.cohens_d(a[ia], b[ib])  # batched over resamples
    lo, hi = torch.quantile(boot, torch.tensor([(1 - ci) / 2, (1 + ci) / 2], dtype=torch.float64)).tolist()
    return GroupComparison(
        len(a),
        len(b),
        float(a.mean()),
        float(b.mean()),
        float(stats.cohens_d(a, b)),
        float(stats.auroc(a, b)),
        (lo, hi),
        _welch_p(a, b),
    )


def _welch_p(a: Tensor, b: Tensor) -> float:
    sps = require("scipy.stats")

    return float(sps.ttest_ind(a.numpy(), b.numpy(), equal_var=False).pvalue)
