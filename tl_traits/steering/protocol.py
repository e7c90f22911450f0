"""SteeringProtocol: how a steering evaluation searches on the dev questions and reports on the test questions.

One settings object for `evaluate_steering`, `compare_steering`, the main job, the quantization study
and the SAE benchmark, so a figure from any of them means the same thing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from tl_traits.core.errors import TlTraitsError
from tl_traits.steering.steer import POSITIONS

SEARCHES = ("calibrated", "adaptive", "grid")
OBJECTIVES = ("combined", "coherent_delta")


class ProtocolError(TlTraitsError):
    """A protocol setting that cannot work (an unknown search, a non-positive KL target, ...)."""


@dataclass(frozen=True)
class SteeringProtocol:
    """Where and how strongly to steer is chosen on the dev questions; every reported figure is the test half's.

    dev_questions / test_questions: how many of each split to use (None: all of it).
    max_new_tokens: greedy generation length of every answer.
    search: "calibrated" (default): for each candidate setting, place strengths by how far they move the
        model's next-token distributions (mean KL per answer token against the unsteered model, on
        `kl_prompts` dev prompts, no generation) at `kl_targets`, then judge them in rising order,
        stopping a candidate once its answers fall below the coherence `threshold` and its score
        falls; when the best is at either end the grid extends (up to `extend` more targets that
        way), then `refine` adds the geometric midpoints either side of each group's best.
        "adaptive": the seed workflow's rule, from `start` x the vector's unit (x `up` while the mean
        coherence passes `threshold`, else x `down`, with `momentum`) for `steps` steps.
        "grid": every strength in `strengths`.
    bands: band widths searched at each layer (1 = one layer; 5 = the layer and two either side,
        the strength spread over them). positions: "all" and/or "response" (generated tokens only).
    centred: False and/or True (a mean-centred vector: the trait side's mean activation minus the mean
        activation of the model's own unsteered dev answers, Jorgensen et al. 2023).
    objective: "combined" (highest mean steering score) or "coherent_delta" (largest trait change among
        runs whose mean coherence passes `threshold`) picks the best run.
    resamples, seed: the bootstrap behind every 95% interval.
    """

    dev_questions: int | None = None
    test_questions: int | None = None
    max_new_tokens: int = 64
    search: str = "calibrated"
    kl_targets: tuple[float, ...] = (0.03, 0.1, 0.3, 1.0, 3.0)
    kl_prompts: int = 8
    extend: int = 2
    refine: bool = True
    strengths: tuple[float, ...] = ()
    start: float = 0.7
    up: float = 1.3
    down: float = 0.85
    momentum: float = 0.0
    steps: int = 8
    threshold: float = 70.0
    objective: str = "combined"
    bands: tuple[int, ...] = (1,)
    positions: tuple[str, ...] = ("all",)
    centred: tuple[bool, ...] = (False,)
    resamples: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("kl_targets", "strengths", "bands", "positions", "centred"):
            value = getattr(self, name)
            object.__setattr__(self, name, tuple(value) if isinstance(value, (list, tuple)) else (value,))
        self.check()

    def check(self) -> None:
        def fail(message: str) -> None:
            raise ProtocolError(message)

        if self.search not in SEARCHES:
            fail(f"search must be one of {', '.join(SEARCHES)}, not {self.search!r}")
        if self.objective not in OBJECTIVES:
            fail(f"objective must be one of {', '.join(OBJECTIVES)}, not {self.objective!r}")
        for name in ("dev_questions", "test_questions"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                fail(f"{name} must be a whole number >= 1 or None (the whole split), not {value!r}")
        for name in ("max_new_tokens", "kl_prompts", "steps", "resamples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                fail(f"{name} must be a whole number >= 1, not {value!r}")
        if not self.kl_targets or any(not _positive(t) for t in self.kl_targets):
            fail(
                "kl_targets must be positive numbers (nats per token), e.g. (0.03, 0.1, 0.3, 1.0), not "
                f"{self.kl_targets!r}"
            )
        if list(self.kl_targets) != sorted(set(self.kl_targets)):
            fail(f"kl_targets must rise without repeats, not {self.kl_targets!r}")
        if self.search == "grid" and not self.strengths:
            fail("search='grid' needs strengths=(...), e.g. (0.05, 0.1, 0.2)")
        if any(not _positive(s) for s in self.strengths):
            fail(f"strengths must be positive numbers (the direction gives the sign), not {self.strengths!r}")
        for name in ("start", "up", "down"):
            if not _positive(getattr(self, name)):
                fail(f"{name} must be a positive number, not {getattr(self, name)!r}")
        if not 0 <= self.momentum < 1:
            fail(f"momentum must be in [0, 1), not {self.momentum!r}")
        if not self.bands or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in self.bands):
            fail(f"bands must be whole numbers >= 1 (1 = a single layer), not {self.bands!r}")
        if not self.positions or any(p not in ("all", "response") for p in self.positions):
            fail(f"positions must be 'all' and/or 'response' (of {', '.join(POSITIONS)}), not {self.positions!r}")
        if not self.centred or any(not isinstance(c, bool) for c in self.centred):
            fail(f"centred must be False and/or True, not {self.centred!r}")
        if not isinstance(self.extend, int) or self.extend < 0:
            fail(f"extend must be a whole number >= 0, not {self.extend!r}")
        if not _finite(self.threshold):
            fail(f"threshold must be a finite number, not {self.threshold!r}")

    def with_(self, **changes: Any) -> "SteeringProtocol":
        """A copy with some settings changed (checked like the original)."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ProtocolError(f"SteeringProtocol has no setting {sorted(unknown)}; see help(SteeringProtocol)")
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SteeringProtocol":
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known}
        return cls(**values)


def _finite(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _positive(value: Any) -> bool:
    return _finite(value) and value > 0


DEFAULT_PROTOCOL = SteeringProtocol()
