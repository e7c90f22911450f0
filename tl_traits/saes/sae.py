"""Sparse autoencoders (sae-lens) and trait directions: load an SAE, read a direction as features, steer by one.

An SAE is given as a sae-lens `SAE` object, a local folder (`SAE.save_model` output, read with
`SAE.load_from_disk`) or a pretrained `(release, sae_id)` pair (`SAE.from_pretrained`, needs the hub).
sae-lens is imported only when an SAE is actually used.
"""

from __future__ import annotations

import hashlib
import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from tl_traits.core.embedded import cache_dir
from tl_traits.core.errors import TlTraitsError
from tl_traits.core.extras import require
from tl_traits.core.hook_names import hook_name, parse_hook_name
from tl_traits.core.pages import Page
from tl_traits.core.vectors import TraitVector


class SAEError(TlTraitsError):
    """An SAE that cannot be loaded or does not fit the activations, direction or feature asked for."""


# -- loading and identity ---------------------------------------------------------------------------
def load_sae(spec: Any, *, device: str = "cpu") -> Any:
    """A sae-lens SAE from an `SAE` object (returned as is), a folder, or a `(release, sae_id)` pair.

    The SAE remembers where it came from (`sae_source(sae)`), so vectors made with it can record it.
    """
    SAE = require("sae_lens").SAE

    if isinstance(spec, SAE):
        return spec
    if isinstance(spec, (str, os.PathLike)):
        folder = Path(spec)
        if not folder.is_dir():
            raise SAEError(
                f"SAE '{spec}' is not a folder; give a folder written by sae-lens (SAE.save_model), an SAE "
                "object, or a pretrained SAE as a (release, sae_id) pair"
            )
        sae = SAE.load_from_disk(folder, device=device)
        _set_source(sae, {"path": str(folder.resolve())})
        return sae
    if isinstance(spec, (tuple, list)) and len(spec) == 2 and all(isinstance(s, str) for s in spec):
        release, sae_id = spec
        sae = SAE.from_pretrained(release, sae_id, device=device)  # needs the Hugging Face hub (or its cache)
        _set_source(sae, {"release": release, "sae_id": sae_id})
        return sae
    raise SAEError(
        f"cannot read an SAE from {type(spec).__name__} {spec!r}; give a sae-lens SAE object, a folder "
        "(SAE.save_model output) or a pretrained SAE as a (release, sae_id) pair"
    )


def _set_source(sae: Any, source: dict[str, str]) -> None:
    sae._tl_traits_source = source  # a plain attribute; nn.Module keeps non-tensor attributes as they are


def sae_source(sae: Any) -> dict[str, str]:
    """Where `sae` was loaded from: {'path': ...} or {'release': ..., 'sae_id': ...}; {} for an object built in code."""
    return dict(getattr(sae, "_tl_traits_source", {}) or {})


def sae_identity(sae: Any) -> dict[str, Any]:
    """JSON-safe identity of an SAE: source, architecture, hook name, model, d_in, d_sae and a decoder digest."""
    cfg = sae.cfg
    meta = getattr(cfg, "metadata", None)
    w_dec = sae.W_dec.detach().float().cpu().contiguous()
    return {
        **sae_source(sae),
        "architecture": cfg.architecture(),
        "hook_name": _meta(meta, "hook_name"),
        "model_name": _meta(meta, "model_name"),
        "d_in": int(cfg.d_in),
        "d_sae": int(cfg.d_sae),
        "w_dec_sha256": hashlib.sha256(w_dec.numpy().tobytes()).hexdigest()[:16],
    }


def _meta(meta: Any, key: str) -> Any:
    value = None if meta is None else meta.get(key) if hasattr(meta, "get") else getattr(meta, key, None)
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


def sae_hook(sae: Any) -> tuple[int, str] | None:
    """(layer, hook) the SAE was trained on, from its metadata's hook name; None when unknown or not per-layer."""
    name = _meta(getattr(sae.cfg, "metadata", None), "hook_name")
    if not name:
        return None
    try:
        return parse_hook_name(name)
    except ValueError:
        return None


# -- features of a direction ------------------------------------------------------------------------
def feature_direction(sae: Any, feature: int) -> Float[Tensor, " d_model"]:
    """Decoder row `feature` of `sae` at unit norm (float32, CPU): steer with `tt.steer(model, it, layer, coef=...)`."""
    sae = load_sae(sae)
    d_sae = int(sae.cfg.d_sae)
    if isinstance(feature, bool) or not isinstance(feature, int) or not 0 <= feature < d_sae:
        raise SAEError(f"feature {feature!r} is out of range: this SAE has {d_sae} features (0..{d_sae - 1})")
    row = sae.W_dec[feature].detach().float().cpu()
    norm = row.norm()
    if norm == 0:
        raise SAEError(f"feature {feature} has a zero decoder row (a dead or pruned feature); it has no direction")
    return row / norm


@dataclass
class FeatureTable:
    """The SAE features that make up a direction, strongest first; `.rows` are dicts, `.to_html()` a table."""

    rows: list[dict[str, Any]]
    sae: dict[str, Any]
    layer: int | None
    columns: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    def features(self) -> list[int]:
        return [row["feature"] for row in self.rows]

    def __str__(self) -> str:
        head = "  ".join(f"{c:>10}" for c in self.columns)
        lines = [head] + ["  ".join(_fmt(row[c], 10) for c in self.columns) for row in self.rows]
        return "\n".join(lines)

    def to_html(self) -> str:
        """A self-contained table; signed bars (blue +, red -) scaled per column."""
        scale = {
            c: max((abs(r[c]) for r in self.rows if isinstance(r.get(c), float)), default=0.0) or 1.0
            for c in self.columns
        }
        head = "".join(f"<th style='text-align:left;padding:2px 8px'>{html.escape(c)}</th>" for c in self.columns)
        body = []
        for row in self.rows:
            cells = []
            for c in self.columns:
                value = row[c]
                if isinstance(value, float) and c != "decoder_norm":
                    width = 60 * abs(value) / scale[c]
                    color = "#4a7bd0" if value >= 0 else "#d05a4a"
                    bar = (
                        f"<span style='display:inline-block;height:.8em;width:{width:.1f}px;background:{color}'></span>"
                    )
                    cells.append(f"<td style='padding:2px 8px;white-space:nowrap'>{bar} {value:+.4f}</td>")
                else:
                    cells.append(f"<td style='padding:2px 8px'>{html.escape(_fmt(value, 0).strip())}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        shown = ("release", "sae_id", "path", "hook_name", "architecture", "d_sae")
        where = ", ".join(f"{k} {self.sae[k]}" for k in shown if self.sae.get(k) is not None)
        caption = f"<p class='meta'>{html.escape(where)}{'' if self.layer is None else f', layer {self.layer}'}</p>"
        return f"{caption}<table style='border-collapse:collapse;font-size:.9em'><tr>{head}</tr>{''.join(body)}</table>"

    def _repr_html_(self) -> str:
        return self.to_html()

    def page(self, title: str = "SAE features of a direction") -> Any:
        """A `tl_traits.core.pages.Page` (offline HTML; `.save(path)`)."""

        return Page(title, self.to_html())


def _fmt(value: Any, width: int) -> str:
    if isinstance(value, float):
        return f"{value:>{width}.4f}"
    return f"{value!s:>{width}}"


def decompose(
    vector: TraitVector | Tensor,
    sae: Any,
    layer: int | None = None,
    top: int = 20,
    acts_pos: Tensor | None = None,
    acts_neg: Tensor | None = None,
    *,
    by: str = "cosine",
) -> FeatureTable:
    """The `top` SAE features closest to a direction: decoder cosine, and with group activations their mean difference.

    vector: a TraitVector (its direction at `layer`; `layer` defaults to the SAE's own layer or the
        vector's only layer) or a `[d_model]` tensor.
    acts_pos / acts_neg: activations `[n, d_model]` (or `[n, layers, d_model]` aligned with the
        TraitVector's layers) of the two groups; adds `act_diff` = mean feature activation (pos - neg).
    by: rank by |cosine| ("cosine") or by |act_diff| ("act_diff", needs the activations).
    """
    sae = load_sae(sae)
    d_in, d_sae = int(sae.cfg.d_in), int(sae.cfg.d_sae)
    direction, layer, row = _direction(vector, sae, layer)
    if direction.shape != (d_in,):
        raise SAEError(
            f"the direction has d_model {direction.shape[-1]} but the SAE reads d_in = {d_in}; use an SAE trained "
            "on this model's residual stream"
        )
    if not isinstance(top, int) or top < 1:
        raise SAEError(f"top must be a positive integer, got {top!r}")
    if by not in ("cosine", "act_diff"):
        raise SAEError(f"by must be 'cosine' or 'act_diff', not {by!r}")
    w_dec = sae.W_dec.detach().float().cpu()
    dec_norm = w_dec.norm(dim=-1)
    cosine = (w_dec @ (direction / direction.norm().clamp_min(1e-12))) / dec_norm.clamp_min(1e-12)
    columns = ["rank", "feature", "cosine", "decoder_norm"]
    diff = None
    if (acts_pos is None) != (acts_neg is None):
        raise SAEError("give both acts_pos and acts_neg (the two groups' activations) or neither")
    if acts_pos is not None:
        diff = mean_feature_diff(sae, _pick(acts_pos, row, "acts_pos", d_in), _pick(acts_neg, row, "acts_neg", d_in))
        columns.append("act_diff")
    elif by == "act_diff":
        raise SAEError("by='act_diff' needs acts_pos and acts_neg")
    key = diff if by == "act_diff" and diff is not None else cosine  # act_diff without diff raised above
    order = key.abs().argsort(descending=True, stable=True)[: min(top, d_sae)]
    rows = []
    for rank, f in enumerate(order.tolist(), start=1):
        entry = {"rank": rank, "feature": f, "cosine": float(cosine[f]), "decoder_norm": float(dec_norm[f])}
        if diff is not None:
            entry["act_diff"] = float(diff[f])
        rows.append(entry)
    return FeatureTable(rows, sae_identity(sae), layer, columns)


def _direction(vector: Any, sae: Any, layer: int | None) -> tuple[Tensor, int | None, int | None]:
    """(direction [d], layer, row of that layer in the vector's layers) for a TraitVector or a raw tensor."""
    if isinstance(vector, TraitVector):
        if layer is None:
            own = sae_hook(sae)
            if own is not None and own[0] in vector.layers:
                layer = own[0]
            elif len(vector.layers) == 1:
                layer = vector.layers[0]
            else:
                raise SAEError(
                    f"which layer? the vector has layers {vector.layers} and the SAE's hook does not name one of "
                    "them; pass layer=..."
                )
        if layer not in vector.layers:
            raise SAEError(f"layer {layer} is not among the vector's layers {vector.layers}")
        return vector.direction(layer).detach().float().cpu(), layer, vector.layers.index(layer)
    direction = torch.as_tensor(vector).detach().float().cpu()
    if direction.ndim == 2 and direction.shape[0] == 1:
        direction = direction[0]
    if direction.ndim != 1:
        raise SAEError(f"a raw direction must have shape [d_model], got {tuple(direction.shape)}")
    if not torch.isfinite(direction).all() or direction.norm() == 0:
        raise SAEError("the direction is zero or not finite")
    return direction, layer, None


def _pick(acts: Any, row: int | None, label: str, d_in: int) -> Tensor:
    acts = torch.as_tensor(acts)
    if acts.ndim == 3:
        if row is None:
            raise SAEError(f"{label} is [n, layers, d_model]; with a raw direction pass one layer's [n, d_model] slice")
        acts = acts[:, row, :]
    if acts.ndim != 2 or acts.shape[-1] != d_in or acts.shape[0] == 0:
        raise SAEError(f"{label} must be non-empty [n, d_model = {d_in}] activations, got {tuple(acts.shape)}")
    return acts


@torch.no_grad()
def mean_feature_diff(
    sae: Any, pos: Float[Tensor, "n d_model"], neg: Float[Tensor, "m d_model"], *, batch_size: int = 512
) -> Float[Tensor, " d_sae"]:
    """mean(encode(pos)) - mean(encode(neg)) per feature, float32 on CPU (encoded in batches on the SAE's device)."""
    return _mean_code(sae, pos, batch_size) - _mean_code(sae, neg, batch_size)


def _mean_code(sae: Any, x: Tensor, batch_size: int) -> Tensor:
    device, dtype = sae.W_dec.device, sae.W_dec.dtype
    total = torch.zeros(int(sae.cfg.d_sae), dtype=torch.float64)
    for chunk in torch.as_tensor(x).split(batch_size):
        total += sae.encode(chunk.to(device=device, dtype=dtype)).double().sum(dim=0).cpu()
    return (total / x.shape[0]).float()


# -- the SAE store: SAEs trained here, found by model name and hook ---------------------------------
def sae_store(root: str | os.PathLike[str] | None = None) -> Path:
    """Where `tl-traits train-sae` keeps SAEs: `$TL_TRAITS_CACHE/saes` unless `root` is given."""
    if root is not None:
        return Path(root)

    return cache_dir() / "saes"


def stored_sae_folder(
    model_name: str, layer: int, hook: str = "resid_post", root: str | os.PathLike[str] | None = None
) -> Path:
    """The store's folder for `model_name`'s SAE at `blocks.{layer}.hook_{hook}` (it may not exist yet)."""
    return sae_store(root) / model_name.replace("/", "--") / hook_name(layer, hook)


def stored_saes(
    model_name: str, hook: str = "resid_post", root: str | os.PathLike[str] | None = None
) -> dict[int, Path]:
    """{layer: folder} of the store's SAEs for `model_name` at `hook` (complete folders only)."""
    base = sae_store(root) / model_name.replace("/", "--")
    found = {}
    for folder in sorted(base.glob(f"blocks.*.hook_{hook}")) if base.is_dir() else []:
        layer, found_hook = parse_hook_name(folder.name)
        if found_hook == hook and (folder / "cfg.json").is_file():
            found[layer] = folder
    return found


def resolve_saes(
    saes: Any, layers: Sequence[int], *, model_name: str | None = None, hook: str | None = None
) -> dict[int, Any]:
    """`saes` as {layer: SAE}: a mapping layer -> SAE/folder/(release, id), or one SAE when there is one layer.

    saes=None takes the SAE store's SAEs for `model_name` (those `tl-traits train-sae` made).
    """
    if saes is None:
        stored = stored_saes(model_name, hook or "resid_post") if model_name else {}
        if not stored:
            where = f" for {model_name}" if model_name else ""
            raise SAEError(
                f"the sae extractor needs SAEs and none are stored{where}: train one with `tl-traits train-sae` "
                "(`make sae` for the embedded model), or pass saes={layer: SAE, folder or (release, sae_id)}"
            )
        return {layer: load_sae(folder) for layer, folder in stored.items() if layer in layers}
    if not isinstance(saes, dict):
        if len(layers) != 1:
            raise SAEError(f"one SAE given but activations hold layers {list(layers)}; pass saes={{layer: sae, ...}}")
        saes = {layers[0]: saes}
    return {int(layer): load_sae(spec) for layer, spec in saes.items()}
