"""The quantization study: how much each backend bends a trait's directions, activations and steering effect.

Reference = the float32 model. Per backend: re-extracted directions (cosine to the reference
per layer and method), the reference vectors' held-out AUROC read from the quantized model's
activations, residual drift per layer, and the reference vector's steering when it steers the
quantized model: each model's setting is chosen on the dev questions and scored on the test
questions (the steering protocol), and its gain over that model's own unsteered answers is
reported as a fraction of float32's gain.
"""

from __future__ import annotations

import gc
import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from tl_traits.core.capture import capture
from tl_traits.core.errors import check_count
from tl_traits.core.figures import save_figure
from tl_traits.core.files import atomic_write_text
from tl_traits.core.hook_names import hook_name
from tl_traits.core.hook_points import forward_hooks
from tl_traits.core.models import model_device, model_identity
from tl_traits.core.progress import Stages
from tl_traits.core.prompts import prepare_inputs
from tl_traits.core.trait_sets import load_trait
from tl_traits.extraction.extract import extract, heldout_metrics
from tl_traits.judging.defaults import default_judges
from tl_traits.judging.judges import make_judge
from tl_traits.quantization.quantizer import QuantizationError, resolve_quantizer
from tl_traits.steering.evaluation import evaluate_steering
from tl_traits.steering.layers import (
    steering_layers as pick_layers,  # the argument below is also called steering_layers
)
from tl_traits.steering.protocol import SteeringProtocol

DEFAULT_BACKENDS = ("fp16", "bf16", "int8", "int4", "nf4")
REFERENCE = "float32"


@dataclass
class BackendResult:
    """One backend's measurements (or why it was skipped)."""

    backend: str
    skipped: str | None = None
    info: dict[str, Any] | None = None
    cosine: dict[str, list[float]] = field(default_factory=dict)  # method -> per layer, re-extracted vs reference
    # method -> per layer, ref vectors on these activations
    reference_auroc: dict[str, list[float]] = field(default_factory=dict)
    drift: list[float] = field(default_factory=list)  # per layer: mean |h_q - h_ref| / |h_ref|
    steering: dict[str, Any] | None = None  # SteeringResult.headline(): the setting chosen on dev, its test figures
    search: list[dict[str, Any]] = field(default_factory=list)  # the dev search per layer
    seconds: float = 0.0


@dataclass
class QuantStudy:
    """Everything the study measured; `table()` is the per (backend, method) summary.

    Retained steering = this model's test-half steering-score gain over its own unsteered answers / float32's
    gain (each with its setting chosen on its own dev questions); undefined when float32 gains nothing.
    """

    trait: str
    layers: list[int]
    methods: list[str]
    steer_method: str
    steering_layers: list[int]
    reference: BackendResult
    backends: list[BackendResult]
    model: dict[str, Any]

    @staticmethod
    def _figure(result: BackendResult, key: str) -> Any:
        return (result.steering or {}).get(key)

    def table(self) -> list[dict[str, Any]]:
        """Per backend and method: mean/min cosine to float32, reference AUROC, drift, and (for the steering method)
        the test-half steering score, gain over unsteered with its interval, and the retained fraction."""
        ref_gain = self._figure(self.reference, "gain")
        rows: list[dict[str, Any]] = []
        for result in [self.reference, *self.backends]:
            if result.skipped:
                rows.append({"backend": result.backend, "method": None, "skipped": result.skipped})
                continue
            gain = self._figure(result, "gain")
            retained = gain / ref_gain if ref_gain and ref_gain > 0 and gain is not None else None
            for method in self.methods:
                cos = result.cosine.get(method, [1.0] * len(self.layers))
                auroc = result.reference_auroc.get(method, [])
                steers = method == self.steer_method  # steering columns belong to the method that steered

                def figure(key: str, result=result, steers=steers) -> Any:
                    return self._figure(result, key) if steers else None

                rows.append(
                    {
                        "backend": result.backend,
                        "method": method,
                        "mean_cosine": sum(cos) / len(cos),
                        "min_cosine": min(cos),
                        "min_cosine_layer": self.layers[cos.index(min(cos))],
                        "ref_auroc_mean": sum(auroc) / len(auroc) if auroc else None,
                        "max_drift": max(result.drift) if result.drift else 0.0,
                        "steering_layer": (figure("layers") or [None])[0] if steers else None,
                        "strength": figure("strength"),
                        "unsteered_score": figure("unsteered_test_score"),
                        "steering_score": figure("test_score"),
                        "score_gain": gain if steers else None,
                        "gain_interval": figure("gain_interval"),
                        "unsteered_trait": figure("unsteered_trait"),
                        "steered_trait": figure("trait"),
                        "retained": retained if steers else None,
                    }
                )
        return rows

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {
            "trait": self.trait,
            "layers": self.layers,
            "methods": self.methods,
            "steer_method": self.steer_method,
            "steering_layers": self.steering_layers,
            "model": self.model,
            "table": self.table(),
            "results": [asdict(r) for r in [self.reference, *self.backends]],
        }

    def to_markdown(self) -> str:
        header = [
            "backend",
            "method",
            "mean cos",
            "min cos (layer)",
            "ref AUROC (mean)",
            "max drift",
            "setting (dev)",
            "unsteered",
            "steered",
            "score gain (95%)",
            "retained",
        ]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for r in self.table():
            if r.get("skipped"):
                lines.append(f"| {r['backend']} | skipped: {r['skipped']} |" + " |" * (len(header) - 2))
                continue
            setting = "n/a" if r["strength"] is None else f"layer {r['steering_layer']}, {r['strength']:.3g}"
            low, high = r["gain_interval"] or (None, None)
            gain = _fmt(r["score_gain"], "+.1f") + ("" if low is None else f" ({low:+.1f} to {high:+.1f})")
            lines.append(
                "| "
                + " | ".join(
                    [
                        r["backend"],
                        r["method"],
                        f"{r['mean_cosine']:.4f}",
                        f"{r['min_cosine']:.4f} ({r['min_cosine_layer']})",
                        _fmt(r["ref_auroc_mean"], ".3f"),
                        f"{r['max_drift']:.4f}",
                        setting if r["method"] == self.steer_method else "",
                        _fmt(r["unsteered_score"], ".1f"),
                        _fmt(r["steering_score"], ".1f"),
                        gain if r["method"] == self.steer_method else "n/a",
                        _fmt(r["retained"], ".2f"),
                    ]
                )
                + " |"
            )
        return "\n".join(lines)

    def figure(self) -> Any:
        from tl_traits.quantization.figures import quantization_figure  # plots need the [report] extra

        return quantization_figure(self)

    def save(self, out: str | os.PathLike[str]) -> dict[str, Path]:
        """study.json, study.md and study.png in `out`, each written atomically."""
        out = Path(out)
        paths = {
            "json": atomic_write_text(out / "study.json", json.dumps(self.to_dict(), indent=2)),
            "md": atomic_write_text(out / "study.md", f"# Quantization study: {self.trait}\n\n{self.to_markdown()}\n"),
        }
        paths["png"] = save_figure(self.figure(), out / "study.png")
        return paths


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def quantization_study(
    load_model: Callable[[], Any] | Any,
    trait: Any,
    backends: Sequence[Any] = DEFAULT_BACKENDS,
    methods: Sequence[str] = ("mean_diff", "probe"),
    layers: int | Sequence[int] | str = "all",
    *,
    position: str = "response[:]",
    steer_method: str | None = None,
    steering_layers: Sequence[int] | None = None,
    judges: Sequence[Any] | None = None,
    questions: int = 8,
    max_new_tokens: int = 32,
    protocol: SteeringProtocol | None = None,
    steer: bool = True,
    drift_examples: int = 16,
    backend_options: Mapping[str, Mapping[str, Any]] | None = None,
    limit: int | None = None,
    seed: int = 0,
    stages: Stages | None = None,
    progress: bool = True,
) -> QuantStudy:
    """Run the study: `load_model` is a zero-argument function giving the float32 model, or the model itself.

    backends: quantizer names (or quantizers, classes or functions: see `resolve_quantizer`); one that is
        not available here (e.g. bitsandbytes without CUDA) is skipped with its reason.
    steer_method: the method whose reference vector steers (default the first of `methods`);
        steering_layers: the layers its search tries (default three layers at 25-55% depth); judges
        default to the trait's own.
    questions, max_new_tokens: the steering protocol's dev and test questions (each) and answer
        length; `protocol` replaces them with a whole `SteeringProtocol`.
    progress: a bar per stage on stderr (the CLI passes its own `stages`).
    """
    stages = stages or Stages(enabled=progress)
    method_list = list(methods)
    steer_method = steer_method or method_list[0]
    if steer_method not in method_list:
        raise QuantizationError(f"steer_method '{steer_method}' is not among methods {method_list}")
    plugins = {}  # unknown backends fail before any work
    for spec in backends:
        plugin = resolve_quantizer(spec)
        plugins[spec if isinstance(spec, str) else plugin.name] = plugin
    options = dict(backend_options or {})
    dataset = load_trait(trait).validate()
    if kept := check_count(limit, "limit", QuantizationError):
        dataset = dataset.limit(kept)
    with stages.stage("load float32 model"):
        reference = load_model if isinstance(load_model, torch.nn.Module) else load_model()
    identity = model_identity(reference)
    with stages.stage(f"reference: extract {dataset.name}"):
        ref_acts = capture(reference, dataset, layers=layers, position=position, progress=False)
        ref_vecs = extract(reference, dataset, method_list, activations=ref_acts, seed=seed, progress=False)
    layer_list = list(ref_acts.layers)
    steer_layers = pick_layers(identity.n_layers, layer_list, steering_layers)
    # Judges are built once on the float32 model: a perplexity judge run by each quantized model
    # would grade its own text with its own (bent) weights, and retained effects would not compare.
    judge_objs = [make_judge(spec, model=reference, trait=dataset) for spec in (judges or default_judges(dataset))]
    drift_batch = prepare_inputs(
        reference,
        [ex.prompt for ex in dataset.examples[:drift_examples]],
        [ex.response for ex in dataset.examples[:drift_examples]],
    )
    ref_resid = _residuals(reference, drift_batch, layer_list)

    chosen_protocol = protocol or SteeringProtocol(
        dev_questions=questions, test_questions=questions, max_new_tokens=max_new_tokens
    )

    def steering(model: Any, label: str, into: BackendResult) -> None:
        if not steer:
            return
        with stages.stage(f"{label}: steer", total=1) as advance, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*weights of .* differ.*")  # the point of the study
            result = evaluate_steering(
                model,
                ref_vecs[steer_method],
                dataset,
                layers=steer_layers,
                judges=judge_objs,
                protocol=chosen_protocol,
                progress=False,
                on_step=advance,
            )
        into.steering, into.search = result.headline(), result.table().to_dicts()

    start = time.perf_counter()
    ref_result = BackendResult(
        REFERENCE,
        info=identity.quantization,
        drift=[0.0] * len(layer_list),
        cosine={m: [1.0] * len(layer_list) for m in method_list},
        reference_auroc={m: ref_vecs[m].metrics["auroc"].tolist() for m in method_list},
    )
    steering(reference, REFERENCE, ref_result)
    ref_result.seconds = round(time.perf_counter() - start, 1)

    results = []
    for name, plugin in plugins.items():
        ok, why = plugin.available()
        if not ok:
            results.append(BackendResult(name, skipped=why))
            continue
        start = time.perf_counter()
        with stages.stage(f"{name}: quantize"):
            model = plugin.quantize(reference, **options.get(name, {}))
        result = BackendResult(name, info=model_identity(model).quantization)
        with stages.stage(f"{name}: extract"):
            acts = capture(model, dataset, layers=layer_list, position=position, progress=False)
            vecs = extract(model, dataset, method_list, activations=acts, seed=seed, progress=False)
        for method in method_list:
            result.cosine[method] = _cosine(vecs[method].directions, ref_vecs[method].directions).tolist()
            result.reference_auroc[method] = heldout_metrics(ref_vecs[method].directions, acts, dataset, seed=seed)[
                "auroc"
            ].tolist()
        result.drift = _relative_drift(
            _residuals(model, drift_batch, layer_list), ref_resid, drift_batch.attention_mask
        ).tolist()
        steering(model, name, result)
        result.seconds = round(time.perf_counter() - start, 1)
        results.append(result)
        del model, acts, vecs
        gc.collect()
    return QuantStudy(
        dataset.name, layer_list, method_list, steer_method, steer_layers, ref_result, results, identity.to_dict()
    )


def _cosine(a: Float[Tensor, "layer d"], b: Float[Tensor, "layer d"]) -> Float[Tensor, " layer"]:
    return torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1)


@torch.no_grad()
def _residuals(model: Any, batch: Any, layers: list[int]) -> Float[Tensor, "layer batch seq d"]:
    """resid_post at every requested layer for one prepared batch, float32 on the CPU."""
    seen: dict[int, Tensor] = {}

    def keep(layer: int) -> Callable:
        def fn(act: Tensor, hook: Any) -> None:
            seen[layer] = act.detach().float().cpu()

        return fn

    device = model_device(model)
    with forward_hooks(model, [(hook_name(layer, "resid_post"), keep(layer)) for layer in layers]):
        model(batch.input_ids.to(device), attention_mask=batch.attention_mask.to(device), stop_at_layer=max(layers) + 1)
    return torch.stack([seen[layer] for layer in layers])


def _relative_drift(
    quantized: Float[Tensor, "layer batch seq d"], reference: Float[Tensor, "layer batch seq d"], mask: Tensor
) -> Float[Tensor, " layer"]:
    """Mean over real tokens of |h_q - h_ref| / |h_ref| per layer."""
    err = (quantized - reference).norm(dim=-1) / reference.norm(dim=-1).clamp_min(1e-6)  # [layer, batch, seq]
    keep = mask.bool().unsqueeze(0).expand_as(err)
    return (err * keep).sum(dim=(1, 2)) / keep.sum(dim=(1, 2))
