"""The one check of a number a user gives (a strength, a coefficient, a scale, a gate): a real number, finite,
and finite in float32 once it multiplies what it scales.

`math.isfinite(1e39)` is true, but 1e39 is inf in float32: a steering vector scaled by it is inf, generation
returns empty text and a GGUF file holds inf. numpy scalars (`np.float32(0.5)`, `np.int64(2)`) are numbers
like the Python numbers they hold; `True` is not a number here.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from tl_traits.core.errors import TlTraitsError

FLOAT32_MAX = 3.4028234663852886e38  # torch.finfo(torch.float32).max


def is_number(value: Any) -> bool:
    """A real number as a user writes one: int, float, Fraction, numpy integer and float scalars; not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_number(
    value: Any,
    name: str,
    error: type[TlTraitsError] = TlTraitsError,
    *,
    scale: float = 1.0,
    hint: str = "",
    optional: bool = False,
) -> Any:
    """`value` as the Python float it holds (None passes when `optional`), or `error` saying what is wrong.

    scale: the largest magnitude `value` multiplies (e.g. max |direction| x the activation norm): the product
    must stay finite in float32 too. hint: appended to the message, e.g. "; e.g. strength=0.5".
    """
    if value is None and optional:
        return None
    if not is_number(value):
        raise error(f"{name} must be a finite number, not {value!r}{hint}")
    try:
        number = float(value)
    except OverflowError:  # an int too large for any float
        raise error(f"{name} is an integer of {len(str(abs(int(value))))} digits; it overflows float32{hint}") from None
    if not math.isfinite(number):
        raise error(f"{name} must be a finite number, not {value!r}{hint}")
    if abs(number) > FLOAT32_MAX:
        raise error(f"{name} {number:g} overflows float32 (whose largest number is {FLOAT32_MAX:.3g}){hint}")
    if not abs(number) * abs(float(scale)) <= FLOAT32_MAX:
        raise error(
            f"{name} {number:g} times {float(scale):.3g} (the largest value it scales) overflows float32 "
            f"(whose largest number is {FLOAT32_MAX:.3g}): the vector would be inf{hint}"
        )
    return number
