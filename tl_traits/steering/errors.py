"""The steering room's error, in a module of its own so every steering module can raise it."""

from __future__ import annotations

from tl_traits.core.errors import TlTraitsError


class SteeringError(TlTraitsError):
    """Steering arguments that cannot work: both or neither of strength/coef, a bad layer, ..."""
