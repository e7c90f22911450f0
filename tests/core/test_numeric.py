"""check_number: the one check of a number a user gives (strength, coef, a vector's scale, a gate)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from tl_traits.core.errors import TlTraitsError
from tl_traits.core.numeric import FLOAT32_MAX, check_number, is_number


@pytest.mark.parametrize(
    "value, expected",
    [
        (0.5, 0.5),
        (2, 2.0),
        (-3, -3.0),
        (np.float32(0.25), 0.25),
        (np.float64(-1.5), -1.5),
        (np.int64(3), 3.0),
        (Fraction(1, 4), 0.25),
        (FLOAT32_MAX, FLOAT32_MAX),
    ],
)
def test_numbers_and_numpy_scalars_come_back_as_the_python_float_they_hold(value, expected):
    out = check_number(value, "strength")
    assert out == expected and type(out) is float


@pytest.mark.parametrize(
    "bad, message",
    [
        (float("nan"), "finite"),
        (float("inf"), "finite"),
        (-math.inf, "finite"),
        (np.float32("nan"), "finite"),
        (True, "finite"),
        ("0.5", "finite"),
        (None, "finite"),
        ([1.0], "finite"),
        (1e39, "overflows float32"),
        (-1e39, "overflows float32"),
        (np.float64(1e300), "overflows float32"),
        (10**400, "overflows float32"),
    ],
)
def test_what_is_not_a_finite_float32_number_is_refused_by_name(bad, message):
    """1e39 passes math.isfinite but is inf in float32: a vector scaled by it steered to empty text."""
    with pytest.raises(TlTraitsError, match=f"^strength .*{message}"):
        check_number(bad, "strength")


def test_the_product_with_what_it_scales_must_fit_float32_too():
    assert check_number(1e37, "strength", scale=10.0) == 1e37
    with pytest.raises(TlTraitsError, match="times 50 .* overflows float32.*inf"):
        check_number(1e37, "strength", scale=50.0)  # strength x a mean activation norm of 50


def test_none_passes_only_when_optional_and_the_error_class_and_hint_are_the_callers():
    class MyError(TlTraitsError):
        pass

    assert check_number(None, "coef", optional=True) is None
    with pytest.raises(MyError, match="coef must be a finite number, not nan; e.g. coef=2"):
        check_number(float("nan"), "coef", MyError, hint="; e.g. coef=2")
    assert is_number(np.int8(1)) and not is_number(True) and not is_number(np.bool_(True)) and not is_number("1")
