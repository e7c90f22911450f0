"""The position grammar: `prompt[-1]`, `prompt[:]`, `response[:5]`, `response[:]`, `all`.

A spec selects token positions of each example from the spans `prepare_inputs` returns;
capture averages the activations over the selected positions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from tl_traits.core.errors import TlTraitsError
from tl_traits.core.prompts import PreparedInputs, Spans

_SPEC = re.compile(r"^\s*(prompt|response)\s*\[\s*([^\]]*)\s*\]\s*$")
_INT = r"\s*(-?\d+)?\s*"


class PositionError(TlTraitsError):
    """A position spec that does not parse, or selects nothing for some example."""


@dataclass(frozen=True)
class Position:
    """A parsed spec: which span, and a Python slice (or single index) into it."""

    spec: str
    span: str  # "prompt" | "response" | "all"
    index: slice | int

    def needs_response(self) -> bool:
        return self.span == "response"

    def select(self, spans: Spans, example: int | str = "?") -> range:
        """Absolute positions chosen in one row; an error naming the example if none."""
        if self.span == "all":
            lo, hi = spans.prompt[0], spans.end[1]
        else:
            lo, hi = getattr(spans, self.span)
        positions = range(lo, hi)
        if isinstance(self.index, int):
            n = len(positions)
            if not -n <= self.index < n:
                raise PositionError(
                    f"position '{self.spec}' is out of range for example {example}: its {self.span} has {n} tokens"
                )
            return range(positions[self.index], positions[self.index] + 1)
        chosen = positions[self.index]
        if len(chosen) == 0:
            what = "has no response tokens (give it a response)" if hi == lo else f"has {hi - lo} {self.span} tokens"
            raise PositionError(f"position '{self.spec}' selects no tokens of example {example}: it {what}")
        return chosen


def parse_position(spec: str | Position) -> Position:
    """Parse a spec; `PositionError` for anything that is not the grammar."""
    if isinstance(spec, Position):
        return spec
    if not isinstance(spec, str):
        raise PositionError(f"a position is a string like 'response[:5]', not {type(spec).__name__}")
    if spec.strip() == "all":
        return Position("all", "all", slice(None))
    match = _SPEC.match(spec)
    if match is None:
        raise PositionError(
            f"cannot parse position '{spec}'; use 'prompt[...]', 'response[...]' or 'all' with a "
            "Python index or slice inside the brackets, e.g. 'prompt[-1]', 'response[:5]', 'response[:]'"
        )
    span, inner = match.group(1), match.group(2)
    single = re.fullmatch(r"\s*(-?\d+)\s*", inner)
    if single:
        return Position(spec, span, int(single.group(1)))
    parts = re.fullmatch(_INT + ":" + _INT + "(?::" + _INT + ")?", inner)
    if parts is None:
        raise PositionError(
            f"cannot parse the index '[{inner}]' in position '{spec}'; use an integer or a slice such as "
            "[:5], [-3:], [2:10:2]"
        )
    start, stop, step = (int(g) if g is not None else None for g in parts.groups())
    if step == 0:
        raise PositionError(f"position '{spec}' has a slice step of 0")
    return Position(spec, span, slice(start, stop, step))


def position_weights(
    position: str | Position, batch: PreparedInputs, names: list[str] | None = None
) -> Float[Tensor, "batch seq"]:
    """Per row, 1/k on each of its k selected positions and 0 elsewhere (a mean as a weighting)."""
    parsed = parse_position(position)
    weights = torch.zeros(batch.input_ids.shape, dtype=torch.float32)
    for row, spans in enumerate(batch.spans):
        chosen = parsed.select(spans, names[row] if names else row)
        weights[row, list(chosen)] = 1.0 / len(chosen)
    return weights
