"""Arithmetic on trait vectors, as repeng users write it (`happy - sad`, `2 * v`, `joy + formality`), in steering units.

A vector has units. An extracted vector is relative: strength s adds s x the layer's mean activation
norm x its unit direction. An imported one (`units == "absolute"`: `import_gguf`,
`import_safetensors`, `from_steering_vector`) adds s x its tensor. Arithmetic keeps the units, refuses
to mix them, and `in_absolute_units` converts a vector explicitly. `TraitVector` takes these methods
from `VectorArithmetic`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor

from tl_traits.core.errors import VectorError
from tl_traits.core.numeric import check_number, is_number

if TYPE_CHECKING:
    from tl_traits.core.vectors import TraitVector

KEPT = ("model", "prompt_settings", "position")  # what a combination keeps of its parts' metadata
Units = Literal["relative", "absolute"]
UNITS: dict[str, str] = {
    "relative": "strength s adds s x the layer's mean activation norm x its direction",
    "absolute": "strength s adds s x its tensor",
}


class VectorArithmetic:
    """`+`, `-`, `*` by a number, unary `-`, and the units they keep, for `TraitVector`.

    The result of `a + b` at strength s adds exactly what `a` at s and `b` at s add together (up to
    float32 rounding): its activation norm (the unit of strength) is the mean of the parts', and its
    direction carries each part's own norm. `2 * v` at s adds what `v` adds at 2s. The result has no
    held-out metrics (they belonged to the parts); `metadata["expression"]` records how it was made.
    """

    directions: Tensor
    layers: list[int]
    act_norm: Tensor
    metadata: dict[str, Any]

    @property
    def label(self) -> str:  # TraitVector names itself (its trait and method, or its expression)
        raise NotImplementedError

    hook: str
    units: Units  # "absolute" (imported: s adds s x its tensor) or "relative" (extracted: s x norm x direction)

    def __add__(self, other: Any) -> "TraitVector":
        return self._combine(other, 1.0, "+")

    def __sub__(self, other: Any) -> "TraitVector":
        return self._combine(other, -1.0, "-")

    def __mul__(self, scale: Any) -> "TraitVector":
        if not is_number(scale):
            return NotImplemented
        largest = float(self.directions.abs().max()) if self.directions.numel() else 0.0
        factor = check_number(scale, "the scale of a vector", VectorError, scale=largest)
        return self._derived(
            self.directions * factor,
            list(self.layers),
            self.act_norm.clone(),
            f"{factor:g} * ({self.label})",
            self.units,
        )

    __rmul__ = __mul__

    def __neg__(self) -> "TraitVector":
        return self._derived(-self.directions, list(self.layers), self.act_norm.clone(), f"-({self.label})", self.units)

    def in_absolute_units(self, strength: float = 1.0) -> "TraitVector":
        """This vector in absolute units: the result at strength s adds what this one adds at s x `strength`.

        The explicit conversion before mixing an extracted vector with an imported one:
        `joy.in_absolute_units() + imported` adds at strength s what `joy` and `imported` add at s each.
        Its activation norm is 1 at every layer, so `coef` and `strength` mean the same on it."""
        tensors = self.act_norm.float()[:, None] * self.directions.float()
        largest = float(tensors.abs().max()) if tensors.numel() else 0.0
        s = check_number(strength, "strength", VectorError, scale=largest)
        expression = self.label if s == 1.0 else f"{s:g} * ({self.label})"
        return self._derived(
            s * tensors, list(self.layers), torch.ones(len(self.layers)), f"absolute({expression})", "absolute"
        )

    def _combine(self, other: Any, sign: float, op: str) -> "TraitVector":
        if not isinstance(other, VectorArithmetic):
            return NotImplemented
        mine, theirs = self.metadata.get("model") or {}, other.metadata.get("model") or {}
        for key in ("name", "n_layers", "d_model"):
            if mine.get(key) != theirs.get(key):
                raise VectorError(
                    f"cannot combine vectors from different models ({key}: {mine.get(key)!r} vs {theirs.get(key)!r})"
                )
        if self.hook != other.hook:
            raise VectorError(f"cannot combine vectors read at different hooks ({self.hook} vs {other.hook})")
        if self.units != other.units:
            relative = self if self.units == "relative" else other
            example = (
                f"extracted.in_absolute_units() {op} imported"
                if relative is self
                else f"imported {op} extracted.in_absolute_units()"
            )
            raise VectorError(
                f"cannot combine vectors in different units: {self.label} is {self.units} ({UNITS[self.units]}), "
                f"{other.label} is {other.units} ({UNITS[other.units]}); the result would mean neither. Convert "
                f"{relative.label} explicitly first, e.g. `{example}`: in_absolute_units() adds at strength 1 what "
                "the vector adds at strength 1"
            )
        layers = [layer for layer in self.layers if layer in other.layers]
        if not layers:
            raise VectorError(
                f"the vectors share no layer ({layer_ranges(self.layers)} vs {layer_ranges(other.layers)})"
            )
        rows_a = [self.layers.index(x) for x in layers]
        rows_b = [other.layers.index(x) for x in layers]
        norm_a, norm_b = self.act_norm[rows_a].float(), other.act_norm[rows_b].float()
        act_norm = (norm_a + norm_b) / 2
        added = (
            norm_a[:, None] * self.directions[rows_a].float()
            + sign * norm_b[:, None] * other.directions[rows_b].float()
        )
        directions = added / act_norm.clamp_min(1e-12)[:, None]  # strength s x act_norm x direction = the parts' sum
        if not bool(torch.isfinite(directions).all()):
            raise VectorError(f"({self.label}) {op} ({other.label}) overflows float32; scale the parts down first")
        return self._derived(directions, layers, act_norm, f"({self.label}) {op} ({other.label})", self.units)

    def _derived(
        self, directions: Tensor, layers: list[int], act_norm: Tensor, expression: str, units: Units
    ) -> "TraitVector":
        """A combination of the same type, keeping the model, hook, prompt settings, position and units."""
        meta = {k: v for k, v in self.metadata.items() if k in KEPT}
        meta.update({"expression": expression, "method": "combined"})
        vector_type: Any = type(self)  # TraitVector (the dataclass that inherits these methods)
        return vector_type("combined", directions, layers, act_norm, {}, meta, hook=self.hook, units=units)


def layer_ranges(layers: list[int]) -> str:
    """`0..5` for a run of layers, else the list."""
    if not layers:
        return "[]"
    if layers == list(range(layers[0], layers[-1] + 1)):
        return f"{layers[0]}..{layers[-1]}"
    return str(layers)
