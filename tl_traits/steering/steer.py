"""Steering: add (or ablate) a trait direction at chosen layers through TL hooks, removed on exit.

One primitive (`steering.hooks.attach`) attaches hooks and returns a handle; `steer()` is the
context manager over it and also an iterable of `(hook_name, fn)` pairs for `run_with_hooks`.
Vectors are applied in float32 and cast back. During KV-cached generation a hook sees
`[batch, 1, d]` after the first step, so each hook tracks the absolute position itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from tl_traits.core.foreign import layer_list, read_tensor, sum_by_layer
from tl_traits.core.generation import decode_new_text, generate_tokens
from tl_traits.core.hook_names import hook_name
from tl_traits.core.numeric import check_number
from tl_traits.core.prompts import PromptInput, as_batch
from tl_traits.core.vectors import TraitVector
from tl_traits.steering.errors import SteeringError
from tl_traits.steering.hooks import POSITION_CODES, LayerEdit, PositionTracker, Steering, make_hook
from tl_traits.steering.layers import default_steering_layer

Operator = Literal["add", "ablate", "ablate_then_add"]
Positions = Literal["all", "prompt", "response"]
OPERATORS = ("add", "ablate", "ablate_then_add")
POSITIONS = ("all", "prompt", "response")


def steer(
    model: Any,
    vector: TraitVector | Tensor | Mapping[int, Tensor],
    layers: int | Sequence[int] | None = None,
    *,
    strength: float | None = None,
    coef: float | None = None,
    normalize: bool = False,
    positions: Positions = "all",
    operator: Operator = "add",
    hook: str | None = None,
    check_model: bool = True,
    spread: bool = False,
) -> Steering:
    """Steer `model` along `vector` at `layers`.

    vector, and what each unit means:
      - a TraitVector: `strength` is in units of the mean activation norm it recorded at each
        layer (0.5 adds half a typical residual's length); `coef` multiplies its direction
        (unit length for an extracted vector). Its hook is used and its model identity checked.
        `layers` defaults to the extracted layer nearest 40% depth (the rule the main job uses),
        or for an imported vector (`import_gguf`, `from_steering_vector`) to all its layers.
      - a raw `[d_model]` tensor: added as it is, in residual-stream units; `coef` (default 1)
        scales it, `normalize=True` makes it unit length first. `hook` defaults to resid_post.
      - a `{layer: tensor}` dict (steering-vectors' and repeng's shape): each layer gets its
        own tensor, as a raw tensor does; `layers` defaults to the dict's keys. Keys may be ints, numpy
        integers or names like "layer.12"; -1 is the last layer, and keys naming one layer (-1 and 29 on
        30 layers) are summed, as steering-vectors adds both. Each tensor is exactly [d_model].
    positions: "all", "prompt" (the prompt's positions) or "response" (generated tokens).
    operator: "add" (h + c v), "ablate" (project v out), "ablate_then_add" (project out, then add c v).
    spread: divide the strength (or coef) evenly over `layers`, a band that adds in total what one
        layer adds (the search's band settings); by default every layer gets the whole strength.
    """
    edits, hook_kind = _resolve(model, vector, layers, strength, coef, operator, hook, check_model, normalize, spread)
    if positions not in POSITIONS:
        raise SteeringError(f"positions must be one of {', '.join(POSITIONS)}, not {positions!r}")
    hooks, trackers = [], []
    for layer, edit in edits.items():
        tracker = PositionTracker(positions)
        trackers.append(tracker)
        hooks.append((hook_name(layer, hook_kind), make_hook(edit, operator, tracker)))
    desc = f"{operator} at layers {list(edits)}, " + (
        f"strength {strength}" if strength is not None else f"coef {coef}"
    )
    return Steering(model, hooks, trackers, desc + f", positions {positions}")


def _resolve(
    model: Any,
    vector: TraitVector | Tensor | Mapping[int, Tensor],
    layers: int | Sequence[int] | None,
    strength: float | None,
    coef: float | None,
    operator: str,
    hook: str | None,
    check_model: bool,
    normalize: bool = False,
    spread: bool = False,
) -> tuple[dict[int, LayerEdit], str]:
    if operator not in OPERATORS:
        raise SteeringError(f"operator must be one of {', '.join(OPERATORS)}, not {operator!r}")
    if strength is not None and coef is not None:
        raise SteeringError("give strength (relative to the layer's activation norm) or coef (absolute), not both")
    strength, coef = (
        check_number(value, name, SteeringError, optional=True, hint=f"; e.g. {name}=0.5")
        for name, value in (("strength", strength), ("coef", coef))
    )
    n_layers, d_model = int(model.cfg.n_layers), int(model.cfg.d_model)
    if isinstance(vector, TraitVector):
        if strength is None and coef is None and operator != "ablate":
            raise SteeringError("give strength=... (e.g. 0.5 x the mean activation norm) or coef=... for this operator")
        if check_model:
            vector.check_model(model)
        if layers is None:  # an imported vector steers at all its layers, as the tool that made it does
            layers = vector.layers if vector.units == "absolute" else default_steering_layer(n_layers, vector.layers)
        edits = {}
        for layer in _layer_list(layers, n_layers):
            direction = vector.direction(layer)
            c = coef if coef is not None else (strength or 0.0) * vector.norm(layer)
            edits[layer] = LayerEdit(direction.float(), float(c))
        return _spread(edits, spread), hook or vector.hook
    if strength is not None:
        raise SteeringError(
            "strength needs the activation norms a TraitVector records; a raw tensor or a {layer: "
            "tensor} dict is in residual units: pass coef (default 1: add it as it is)"
        )
    if isinstance(vector, Mapping):
        if not vector:
            raise SteeringError("the {layer: tensor} dict is empty")
        # keys naming one layer (-1 and 29 on 30 layers) are summed, as steering-vectors adds both
        per_layer = {
            layer: _unit(t) if normalize else t
            for layer, t in sum_by_layer(vector, n_layers, d_model, error=SteeringError).items()
        }
        chosen = list(per_layer) if layers is None else _layer_list(layers, n_layers)
        missing = [layer for layer in chosen if layer not in per_layer]
        if missing:
            raise SteeringError(f"the dict has no tensor for layer(s) {missing}; it holds {sorted(per_layer)}")
        edits = {layer: LayerEdit(per_layer[layer], float(1.0 if coef is None else coef)) for layer in chosen}
        return _spread(edits, spread), hook or "resid_post"
    if layers is None:
        raise SteeringError("a raw tensor needs layers=...: the layer(s) to add it at")
    direction = _raw_direction(vector, d_model, normalize, "a raw steering vector")
    edits = {
        layer: LayerEdit(direction, float(1.0 if coef is None else coef)) for layer in _layer_list(layers, n_layers)
    }
    return _spread(edits, spread), hook or "resid_post"


def _spread(edits: dict[int, LayerEdit], spread: bool) -> dict[int, LayerEdit]:
    """With `spread`, each of several layers gets an equal share of the coefficient (a band). Each coefficient
    times its direction must stay finite in float32 (strength 1e37 x a norm of 50 is inf)."""
    for layer, edit in edits.items():
        edit.coef = check_number(
            float(edit.coef) / (len(edits) if spread else 1),
            f"the coefficient at layer {layer}",
            SteeringError,
            scale=float(edit.direction.abs().max()),
        )
    return edits


def _raw_direction(tensor: Any, d_model: int, normalize: bool, what: str) -> Float[Tensor, " d_model"]:
    direction = read_tensor(tensor, d_model, what=what, error=SteeringError)
    return _unit(direction) if normalize else direction


def _unit(direction: Tensor) -> Tensor:
    return direction / direction.norm().clamp_min(1e-12)


def _layer_list(layers: Any, n_layers: int) -> list[int]:
    """`layers=` (one layer or several; -1 the last, numpy integers too) as layers 0..n_layers-1, each once."""
    return layer_list(layers, n_layers, error=SteeringError)


# -- sweeps ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Setting:
    """One steering setting of a sweep: a layer (or a band of layers) and a strength (or absolute coef).

    A band spreads the strength evenly over its layers (`spread` in `steer`), so a band at strength s
    adds in total what one layer at s adds. `vector` replaces the sweep's vector for this setting
    (to compare methods in one batch); `positions` is "all", "prompt" or "response".
    """

    layer: int | tuple[int, ...]
    strength: float | None = None
    coef: float | None = None
    vector: TraitVector | None = field(default=None, compare=False)
    positions: Positions = "all"

    def __post_init__(self) -> None:  # a bad number fails where it is written; np.float32(0.5) is kept as 0.5
        for name in ("strength", "coef"):
            object.__setattr__(
                self, name, check_number(getattr(self, name), f"Setting {name}", SteeringError, optional=True)
            )

    @property
    def layers(self) -> tuple[int, ...]:
        return tuple(self.layer) if isinstance(self.layer, (tuple, list)) else (self.layer,)


def setting_edits(
    model: Any, setting: Setting, vector: TraitVector | None = None, check_model: bool = True
) -> tuple[dict[int, LayerEdit], str]:
    """What `setting` adds, per layer (its band spread), and at which hook kind."""
    own = setting.vector if setting.vector is not None else vector
    if own is None:
        raise SteeringError("this setting has no vector: pass one or set Setting(vector=...)")
    if setting.positions not in POSITIONS:
        raise SteeringError(f"positions must be one of {', '.join(POSITIONS)}, not {setting.positions!r}")
    return _resolve(
        model, own, list(setting.layers), setting.strength, setting.coef, "add", None, check_model, spread=True
    )


def sweep_generate(
    model: Any,
    vector: TraitVector | None,
    settings: Sequence[Setting | tuple[int, float]],
    prompts: PromptInput | Sequence[PromptInput],
    *,
    operator: Operator = "add",
    max_new_tokens: int = 64,
    greedy: bool = True,
    seed: int | None = None,
) -> list[list[str]]:
    """Generate every prompt under every setting as slices of ONE batch: `[setting][prompt] -> text`.

    Each slice of rows carries its own coefficients at its own layers and positions, so a search
    step costs one batched generate instead of one per setting. A tuple `(layer, strength)`
    stands for `Setting(layer, strength=...)`.
    """
    chosen = [s if isinstance(s, Setting) else Setting(s[0], strength=s[1]) for s in settings]
    if not chosen:
        raise SteeringError("sweep_generate needs at least one setting")
    prompt_list = as_batch(prompts)
    n = len(prompt_list)
    if n == 0:
        raise SteeringError("sweep_generate needs at least one prompt")
    total = len(chosen) * n
    per_layer: dict[int, LayerEdit] = {}
    hook_kinds = set()
    for i, s in enumerate(chosen):
        own = s.vector if s.vector is not None else vector
        if own is None:
            raise SteeringError(f"setting {i} has no vector: pass one to sweep_generate or in Setting(vector=...)")
        if s.positions not in POSITIONS:
            raise SteeringError(f"setting {i}: positions must be one of {', '.join(POSITIONS)}, not {s.positions!r}")
        edits, hook_kind = _resolve(
            model, own, list(s.layers), s.strength, s.coef, operator, None, i == 0 or s.vector is not None, spread=True
        )
        rows = slice(i * n, (i + 1) * n)
        for layer, one in edits.items():
            edit = per_layer.setdefault(
                layer,
                LayerEdit(
                    one.direction,
                    torch.zeros(total),
                    torch.zeros(total, dtype=torch.bool),
                    torch.zeros(total, dtype=torch.long),
                ),
            )
            if edit.direction.dim() == 1 and not torch.equal(edit.direction, one.direction):
                edit.direction = edit.direction.expand(total, -1).clone()  # this layer now mixes vectors: one per row
            if edit.direction.dim() == 2:
                edit.direction[rows] = one.direction
            assert isinstance(edit.coef, Tensor) and edit.rows is not None and edit.positions is not None  # as built
            edit.coef[rows] = one.coef
            edit.rows[rows] = True
            edit.positions[rows] = POSITION_CODES[s.positions]
        hook_kinds.add(hook_kind)
    if len(hook_kinds) > 1:
        raise SteeringError(
            f"these settings steer at different hooks ({sorted(hook_kinds)}); sweep each hook separately"
        )
    hooks, trackers = [], []
    for layer, edit in per_layer.items():
        tracker = PositionTracker("all")
        trackers.append(tracker)
        hooks.append((hook_name(layer, hook_kind), make_hook(edit, operator, tracker)))
    with Steering(model, hooks, trackers, f"sweep of {len(chosen)} settings"):
        tokens = generate_tokens(
            model,
            prompt_list * len(chosen),
            max_new_tokens=max_new_tokens,
            greedy=greedy,
            seed=seed,
            batch_size=len(chosen) * n,
        )
    texts = decode_new_text(model, tokens)
    return [texts[i * n : (i + 1) * n] for i in range(len(chosen))]
