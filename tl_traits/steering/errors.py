"""The steering room's errors, in a module of their own so every steering module can raise them."""

from __future__ import annotations

from tl_traits.core.errors import TlTraitsError


class SteeringError(TlTraitsError):
    """Steering arguments that cannot work: both or neither of strength/coef, a bad layer, ..."""


class EvaluationError(TlTraitsError):
    """Evaluation arguments that cannot work (no trait judge, a log from another run or an older format, ...)."""
