"""TraitVectors: per-method, per-layer unit directions with their statistics, saved as safetensors + JSON.

A file records the model identity, hook, position, dataset hash and prompt settings, so a
vector is never silently applied to another model or mixed with other tokenization.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from tl_traits.core.errors import VectorError  # noqa: F401  (re-exported: tl_traits.core.vectors.VectorError)
from tl_traits.core.files import atomic_write_bytes, parse_json_object
from tl_traits.core.foreign import layer_list, sum_by_layer
from tl_traits.core.models import model_identity
from tl_traits.core.numeric import check_number
from tl_traits.core.hook_names import HOOKS
from tl_traits.core.vector_arithmetic import UNITS, Units, VectorArithmetic
from tl_traits.core.vector_arithmetic import layer_ranges as _ranges
from tl_traits.core.vector_checks import check_model, check_rows, header_digest, tensor_digest

FORMAT = "tl_traits.core.vectors/1"
METRICS = ("auroc", "accuracy", "cohens_d", "polarity", "baseline")
HEADER_KEY = "tl_traits"
DEFAULT_HOOK = "resid_post"
MID_DEPTH = 0.4  # the fraction of depth where steering works best: the default layer, and best_layer's last tie-break


def has_vectors_header(path: str | os.PathLike[str]) -> bool:
    """Whether a safetensors file is a TraitVectors file (its metadata holds our header), not another tool's.

    A file safetensors cannot read raises the reader's own error, for the caller to name.
    """
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return HEADER_KEY in (fh.metadata() or {})


def nearest_layer(n_layers: int, layers: Sequence[int], depth: float) -> int:
    """The layer in `layers` nearest `depth` (a fraction) of an `n_layers` model; the first of two as near."""
    return min(layers, key=lambda layer: abs(layer - round(depth * (n_layers - 1))))


@dataclass
class TraitVector(VectorArithmetic):
    """One method's directions for every extracted layer, plus per-layer statistics.

    `hook`: where it was read and where it steers. `units`: "relative" (extracted: strength s adds s x the
    layer's mean activation norm x its direction) or "absolute" (imported or trained: s x its tensor).
    Arithmetic (`a + b`, `a - b`, `2 * a`, `-a`) and `in_absolute_units` come from `VectorArithmetic`
    (core/vector_arithmetic.py)."""

    method: str
    directions: Float[Tensor, "layer d_model"]
    layers: list[int]
    act_norm: Float[Tensor, " layer"]  # mean per-token residual norm at each layer
    metrics: dict[str, Float[Tensor, " layer"]]
    metadata: dict[str, Any] = field(default_factory=dict)
    hook: str = DEFAULT_HOOK
    units: Units = "relative"

    def __post_init__(self) -> None:
        # A file (and a caller that built the metadata by hand) carries "hook" / "units" in the metadata: they
        # move into the typed fields, so there is one place to read them.
        metadata = dict(self.metadata)
        for key, default in (("hook", DEFAULT_HOOK), ("units", "relative")):
            if key in metadata:
                given = metadata.pop(key)
                if getattr(self, key) not in (default, given):
                    raise VectorError(
                        f"{key} given twice and differently: {getattr(self, key)!r} and metadata {given!r}"
                    )
                setattr(self, key, given)
        self.metadata = metadata
        if self.hook not in HOOKS:
            raise VectorError(f"unknown hook {self.hook!r} for a trait vector; use one of {', '.join(HOOKS)}")
        if self.units not in UNITS:
            raise VectorError(f"unknown units {self.units!r}; use one of {', '.join(UNITS)}")

    def stored_metadata(self) -> dict[str, Any]:
        """The metadata as a file stores it: with the hook and the units."""
        return {**self.metadata, "hook": self.hook, "units": self.units}

    def __repr__(self) -> str:
        dataset = (self.metadata.get("dataset") or {}).get("name")
        model = (self.metadata.get("model") or {}).get("name")
        extra = "".join(f", {k}={v!r}" for k, v in (("trait", dataset), ("model", model)) if v)
        return (
            f"TraitVector({self.method!r}, layers={_ranges(self.layers)}, d_model={self.directions.shape[-1]}{extra})"
        )

    @property
    def label(self) -> str:
        """How it was made: `trait:method`, or the expression that combined vectors."""
        return (
            self.metadata.get("expression") or f"{(self.metadata.get('dataset') or {}).get('name', '?')}:{self.method}"
        )

    # -- in residual units: what travels to other tools ------------------------------------------
    def layer_tensors(
        self, strength: float = 1.0, layers: list[int] | None = None
    ) -> dict[int, Float[Tensor, " d_model"]]:
        """`{layer: tensor}`: exactly what `steer(model, self, layer, strength=strength)` adds at each layer.

        This is the shape steering-vectors and repeng hold; `steer(model, v.layer_tensors(0.5))`
        steers as `steer(model, v, v.layers, strength=0.5)` does."""
        largest = float((self.act_norm.float()[:, None] * self.directions.float()).abs().max()) if self.layers else 0.0
        strength = check_number(strength, "strength", VectorError, scale=largest)  # finite in float32 once scaled
        n_layers = (self.metadata.get("model") or {}).get("n_layers")
        chosen = (
            list(self.layers)
            if layers is None
            else layer_list(layers, None if n_layers is None else int(n_layers), error=VectorError)
        )  # -1: the last layer
        return {layer: (float(strength) * self.norm(layer) * self.direction(layer)).float().clone() for layer in chosen}

    @classmethod
    def from_layer_tensors(
        cls,
        model: Any,
        tensors: Mapping[Any, Any],
        *,
        hook: str = "resid_post",
        name: str = "imported",
        source: str | None = None,
    ) -> "TraitVector":
        """A vector made elsewhere, `{layer: tensor}` in residual units, bound to `model`.

        Its units are absolute: strength s adds s times each layer's tensor (strength 1 steers as
        the other tool does at multiplier 1). It has no held-out metrics. Layer keys and tensors are
        read by `core.foreign`: ints, numpy integers or names like "layer.12"; -1 is the last layer;
        keys naming one layer (-1 and 29 on 30 layers) are summed, as steering-vectors and llama.cpp
        add both; each tensor must be exactly [d_model]."""
        here = model_identity(model)
        if not isinstance(tensors, Mapping):
            raise VectorError(
                f"{source or 'the vector'} must be a {{layer: tensor}} mapping, not {type(tensors).__name__}"
            )
        if not tensors:
            raise VectorError(f"{source or 'the vector'} holds no layer tensors")
        summed = sum_by_layer(
            tensors,
            here.n_layers,
            here.d_model,
            where=f"{source}: " if source else "",
            error=VectorError,
            model=here.name,
        )
        rows, layers = list(summed.values()), list(summed)
        metadata = {
            "model": here.to_dict(),
            "dataset": {"name": name},
            "method": "imported",
            **({"source": source} if source else {}),
        }
        return cls(
            "imported", torch.stack(rows), layers, torch.ones(len(layers)), {}, metadata, hook=hook, units="absolute"
        )

    def _row(self, layer: int) -> int:
        if layer not in self.layers:
            raise VectorError(
                f"no '{self.method}' vector for layer {layer}; this one has layers {_ranges(self.layers)}"
            )
        return self.layers.index(layer)

    def direction(self, layer: int) -> Float[Tensor, " d_model"]:
        return self.directions[self._row(layer)]

    def norm(self, layer: int) -> float:
        """Mean activation norm recorded at `layer` (the unit of steering strength)."""
        return float(self.act_norm[self._row(layer)])

    def baseline(self, layer: int) -> float:
        """The mean projection extract recorded at `layer` (what a centred projection subtracts)."""
        if "baseline" not in self.metrics:
            raise VectorError(
                f"vector '{self.method}' has no recorded baseline (it was not made by extract, e.g. "
                "imported from another tool), so its centred projection is undefined; extract the trait "
                "with tt.extract to monitor it"
            )
        return float(self.metrics["baseline"][self._row(layer)])

    def best_layer(self, metric: str = "auroc") -> int:
        """The layer with the highest `metric`, never picked on a NaN.

        Ties (AUROC often saturates at 1.0) go to the higher AUROC, then accuracy, then Cohen's d, each
        counted only where it is a number (d is NaN on a few held-out examples); a tie left after all
        of them goes to the layer nearest 40% of the depth, where steering works best (then the lower one).
        """
        if metric not in self.metrics:
            raise VectorError(f"unknown metric '{metric}'; use one of {', '.join(self.metrics)}")
        keys = [metric] + [k for k in ("auroc", "accuracy", "cohens_d") if k != metric and k in self.metrics]
        candidates = list(range(len(self.layers)))
        for key in keys:
            values = [float(v) for v in self.metrics[key]]
            scored = [i for i in candidates if math.isfinite(values[i])]
            if scored:
                top = max(values[i] for i in scored)
                candidates = [i for i in scored if values[i] >= top - 1e-9]
            if len(candidates) == 1:
                break
        n_layers = int((self.metadata.get("model") or {}).get("n_layers") or max(self.layers) + 1)
        return nearest_layer(n_layers, sorted(self.layers[i] for i in candidates), MID_DEPTH)

    def check_model(self, model: Any, *, strict: bool = True) -> None:
        """Refuse a model with another name, layer count or width; warn on other weights."""
        check_model(self.metadata, model, strict=strict)


class TraitVectors:
    """Vectors from several methods, extracted together from one dataset and one capture."""

    def __init__(self, vectors: dict[str, TraitVector], metadata: dict[str, Any]) -> None:
        if not vectors:
            raise VectorError("TraitVectors needs at least one method")
        self.vectors = vectors
        self.metadata = metadata

    def __getitem__(self, method: str) -> TraitVector:
        if method not in self.vectors:
            raise VectorError(f"no method '{method}' here; this file has {', '.join(self.vectors)}")
        return self.vectors[method]

    def __iter__(self) -> Iterator[str]:
        return iter(self.vectors)

    def __len__(self) -> int:
        return len(self.vectors)

    @property
    def methods(self) -> list[str]:
        return list(self.vectors)

    @property
    def layers(self) -> list[int]:
        return next(iter(self.vectors.values())).layers

    def best(self, method: str, metric: str = "auroc") -> int:
        """The layer where `method` scores highest on a held-out `metric`."""
        return self[method].best_layer(metric)

    def report(self, metric: str = "auroc") -> str:
        """A per-method summary at each best layer, then `metric` for every layer and method."""
        lines = [
            f"{self.metadata.get('dataset', {}).get('name', '?')} on "
            f"{self.metadata.get('model', {}).get('name', '?')}: {self.metadata.get('hook')} at "
            f"{self.metadata.get('position')}, held-out metrics ({self.metadata.get('dataset', {}).get('n_val', '?')} "
            "validation examples)",
            "",
            f"{'method':<16}{'best layer':>11}{'AUROC':>8}{'acc':>7}{'d':>8}{'polarity':>10}",
        ]
        for name, vec in self.vectors.items():
            layer = vec.best_layer("auroc")
            row = vec._row(layer)
            m = {k: float(v[row]) for k, v in vec.metrics.items()}
            lines.append(
                f"{name:<16}{layer:>11}{m['auroc']:>8.3f}{m['accuracy']:>7.3f}{m['cohens_d']:>8.2f}"
                f"{'ok' if m['polarity'] > 0.5 else 'flipped':>10}"
            )
        lines += ["", f"{metric} by layer", "layer " + "".join(f"{n[:11]:>12}" for n in self.vectors)]
        for i, layer in enumerate(self.layers):
            lines.append(
                f"{layer:>5} " + "".join(f"{float(v.metrics[metric][i]):>12.3f}" for v in self.vectors.values())
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"TraitVectors(methods={self.methods}, layers={_ranges(self.layers)})"

    # -- disk ------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write one safetensors file (tensors + JSON metadata), atomically."""
        from safetensors.torch import save

        tensors: dict[str, Tensor] = {}
        for name, vec in self.vectors.items():
            tensors[f"{name}/directions"] = vec.directions.float().contiguous()
            tensors[f"{name}/act_norm"] = vec.act_norm.float().contiguous()
            for metric, values in vec.metrics.items():
                tensors[f"{name}/{metric}"] = values.float().contiguous()
        header = {
            "format": FORMAT,
            **self.metadata,
            "layers": self.layers,
            "methods": {name: vec.stored_metadata() for name, vec in self.vectors.items()},
            "method_order": list(self.vectors),  # the JSON header is key-sorted
            "tensor_sha256": tensor_digest(tensors),
        }
        header["header_sha256"] = header_digest(header)  # the layer list and metadata are checked too
        return atomic_write_bytes(path, save(tensors, metadata={HEADER_KEY: json.dumps(header, sort_keys=True)}))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "TraitVectors":
        """Read a file written by `save`; a truncated, altered or foreign file is an error."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise VectorError(f"no vectors file at {path}")
        try:
            with safe_open(str(path), framework="pt") as fh:
                raw = (fh.metadata() or {}).get(HEADER_KEY)
                tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        except Exception as exc:
            raise VectorError(
                f"{path} is incomplete or not a safetensors file ({exc}); extract or copy it again"
            ) from exc
        if raw is None:
            raise VectorError(
                f"{path} is a safetensors file but not tl_traits vectors (no '{HEADER_KEY}' metadata); "
                "for another tool's {layer: tensor} file use tt.import_safetensors(path, model)"
            )
        header = parse_json_object(raw, f"the header of {path}", VectorError, fix="extract or copy it again")
        if header.get("format") != FORMAT:
            raise VectorError(f"{path} has format {header.get('format')!r}; this tl_traits reads {FORMAT}")
        missing = [
            k for k in ("layers", "methods", "method_order", "tensor_sha256", "header_sha256") if k not in header
        ]
        if missing:
            raise VectorError(f"{path} is corrupt: its header lacks {', '.join(missing)}; extract or copy it again")
        if header.pop("header_sha256") != header_digest(header):
            raise VectorError(
                f"{path} is corrupt: its header (layers, metadata) does not match the checksum written with it"
            )
        if tensor_digest(tensors) != header.pop("tensor_sha256"):
            raise VectorError(f"{path} is corrupt: its tensors do not match the checksum written with them")
        check_rows(path, header["layers"], header["method_order"], tensors)
        layers = header.pop("layers")
        methods = header.pop("methods")
        order = header.pop("method_order")
        header.pop("format")
        vectors = {}
        for name in order:
            vec_meta = methods[name]
            metrics = {
                m.split("/", 1)[1]: t
                for m, t in tensors.items()
                if m.startswith(name + "/") and m.split("/", 1)[1] not in ("directions", "act_norm")
            }
            vectors[name] = TraitVector(
                name,
                tensors[f"{name}/directions"],
                list(layers),
                tensors[f"{name}/act_norm"],
                metrics,
                {**header, **vec_meta},
            )
        return cls(vectors, header)
