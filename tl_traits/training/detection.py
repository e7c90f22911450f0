"""Backdoor detection in activation space: an outlier score per training example, and its AUROC.

spectral: spectral signatures (Tran et al., 2018): within each group of examples, centre the
representations and score each by its squared projection on the top singular vector.
trait: projection on a mean_diff direction between triggered and untriggered prompts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from tl_traits.core.capture import capture, resolve_layers
from tl_traits.core.errors import TlTraitsError
from tl_traits.core.stats import auroc
from tl_traits.training.poisoning import PoisonedDataset

METHODS = ("spectral", "trait")
GroupBy = str | Callable[[Mapping[str, Any]], Any] | None


class DetectionError(TlTraitsError):
    """Detection asked for something the data cannot give (no rows, missing trait prompts, ...)."""


@dataclass
class DetectionResult:
    """Scores (higher = more suspicious) in dataset order, and AUROC against the known poisoned rows."""

    method: str
    layer: int
    position: str
    scores: Float[Tensor, " n"]
    auroc: float | None
    poisoned_indices: list[int] | None

    def top(self, k: int) -> list[int]:
        """The k most suspicious rows."""
        return self.scores.argsort(descending=True)[:k].tolist()

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "layer": self.layer,
            "position": self.position,
            "auroc": self.auroc,
            "n": len(self.scores),
            "n_poisoned": None if self.poisoned_indices is None else len(self.poisoned_indices),
        }


def spectral_scores(acts: Float[Tensor, "n d_model"], groups: Sequence[Any] | None = None) -> Float[Tensor, " n"]:
    """Squared projection of each centred row on its group's top right singular vector (0 for singleton groups)."""
    keys = list(groups) if groups is not None else [0] * len(acts)
    if len(keys) != len(acts):
        raise DetectionError(f"{len(acts)} activations but {len(keys)} group keys")
    scores = torch.zeros(len(acts), dtype=torch.float32)
    for key in dict.fromkeys(keys):
        index = torch.tensor([i for i, k in enumerate(keys) if k == key])
        if len(index) < 2:
            continue
        centred = acts[index].double() - acts[index].double().mean(dim=0)
        top = torch.linalg.svd(centred, full_matrices=False).Vh[0]
        scores[index] = (centred @ top).pow(2).float()
    return scores


def detect_poison(
    model: Any,
    dataset: PoisonedDataset | Sequence[Mapping[str, Any]],
    layer: int,
    method: str = "spectral",
    **kwargs: Any,
) -> DetectionResult:
    """Score every training row at one layer with one method; see `detection_scan` for the options."""
    return detection_scan(model, dataset, [layer], [method], **kwargs)[0]


def detection_scan(
    model: Any,
    dataset: PoisonedDataset | Sequence[Mapping[str, Any]],
    layers: Sequence[int],
    methods: Sequence[str] = ("spectral",),
    *,
    poisoned_indices: Sequence[int] | None = None,
    position: str | None = None,
    group_by: GroupBy = "response",
    triggered: Sequence[Any] | None = None,
    untriggered: Sequence[Any] | None = None,
    hook: str = "resid_post",
    batch_size: int = 16,
    progress: bool = True,
) -> list[DetectionResult]:
    """Every (method, layer) result from one capture per position; with known poisoned rows (given,
    or from a PoisonedDataset) each carries its AUROC.

    spectral: position defaults to "response[:]"; group_by is "response" (one group per target
        response, as in the paper), "task", None (all rows together) or a function of the row.
    trait: `triggered` and `untriggered` are prompts (strings, dicts or (prompt, response) pairs)
        of your choosing; position defaults to "prompt[:]", used for both the direction and the rows.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise DetectionError(
            f"unknown detection method {unknown[0] if unknown else None!r}; use one of {', '.join(METHODS)}"
        )
    rows = list(dataset)
    if not rows:
        raise DetectionError("detect_poison got no training rows")
    if "trait" in methods and (not triggered or not untriggered):
        raise DetectionError(
            "method='trait' needs triggered= and untriggered= prompts (e.g. test prompts with and without the trigger "
            "you suspect)"
        )
    if poisoned_indices is None and isinstance(dataset, PoisonedDataset):
        poisoned_indices = dataset.poisoned_indices
    layer_list = resolve_layers(model, list(layers))
    groups = _group_keys(rows, group_by) if "spectral" in methods else None
    acts: dict[tuple[str, str], Tensor] = {}

    def captured(what: str, items: Sequence[Any], where: str) -> Float[Tensor, "n layer d_model"]:
        if (what, where) not in acts:
            acts[(what, where)] = capture(
                model,
                list(items),
                layers=layer_list,
                hook=hook,
                position=where,
                batch_size=batch_size,
                progress=progress,
            ).acts
        return acts[(what, where)]

    results = []
    for method in methods:
        where = position or ("response[:]" if method == "spectral" else "prompt[:]")
        train_acts = captured("train", rows, where)
        if method == "trait":
            assert triggered is not None and untriggered is not None  # checked above
            direction = captured("triggered", triggered, where).mean(0) - captured(
                "untriggered", untriggered, where
            ).mean(0)
        for i, layer in enumerate(layer_list):
            if method == "spectral":
                scores = spectral_scores(train_acts[:, i], groups)
            else:
                unit = direction[i] / direction[i].norm().clamp_min(1e-12)
                scores = train_acts[:, i] @ unit
            results.append(
                DetectionResult(
                    method, layer, where, scores, _auroc(scores, poisoned_indices), _sorted(poisoned_indices)
                )
            )
    return results


def _group_keys(rows: list[Mapping[str, Any]], group_by: GroupBy) -> list[Any] | None:
    if group_by is None:
        return None
    if callable(group_by):
        return [group_by(r) for r in rows]
    missing = [i for i, r in enumerate(rows) if group_by not in r]
    if missing:
        raise DetectionError(
            f"group_by={group_by!r} but row {missing[0]} has no such key; use 'response', 'task', None or a function"
        )
    return [str(r[group_by]) for r in rows]


def _sorted(indices: Sequence[int] | None) -> list[int] | None:
    return None if indices is None else sorted(int(i) for i in indices)


def _auroc(scores: Tensor, poisoned: Sequence[int] | None) -> float | None:
    if poisoned is None:
        return None
    flags = torch.zeros(len(scores), dtype=torch.bool)
    flags[torch.as_tensor(list(poisoned), dtype=torch.long)] = True
    if flags.all() or not flags.any():
        return None
    return float(auroc(scores[flags], scores[~flags]))
