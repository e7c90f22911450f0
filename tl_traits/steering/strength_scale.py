"""How far a steering setting moves the model, as the KL of its next-token distributions; the strength for a target KL.

One teacher-forced forward per strength, on a few dev prompts with the unsteered answers: no
generation. The search places its strengths by KL, so it needs no hand-set start on any model or
in any vector's units (a recorded-norm TraitVector, an imported one in absolute units).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Sequence

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from tl_traits.core.hook_names import hook_name
from tl_traits.core.hook_points import forward_hooks
from tl_traits.core.models import model_device
from tl_traits.core.prompts import prepare_inputs
from tl_traits.core.vectors import TraitVector
from tl_traits.steering.errors import SteeringError
from tl_traits.steering.steer import Setting, setting_edits

START_FRACTION = 0.01  # the ladder starts where the setting adds 1% of the residual stream's mean norm
MAX_DOUBLINGS = 24


@dataclass(frozen=True)
class KLPoint:
    strength: float
    kl: float  # mean KL(unsteered || steered) per response token, in nats


class TeacherForced:
    """A few prompts with their unsteered answers, tokenized once, and the unsteered log-probabilities."""

    def __init__(self, model: Any, prompts: Sequence[Any], responses: Sequence[str]) -> None:
        if not prompts or len(prompts) != len(responses):
            raise SteeringError("the KL scale needs prompts and one unsteered response each")
        self.model = model
        batch = prepare_inputs(model, list(prompts), list(responses), padding_side="right")
        device = model_device(model)
        self.input_ids = batch.input_ids.to(device)
        self.attention_mask = batch.attention_mask.to(device)
        seq = self.input_ids.shape[1]
        # logits at position t predict token t+1: the response tokens are predicted from [start-1, end-1)
        self.scored: Bool[Tensor, "batch seq"] = torch.zeros(len(batch), seq, dtype=torch.bool, device=device)
        self.response: Bool[Tensor, "batch seq"] = torch.zeros_like(self.scored)
        self.prompt: Bool[Tensor, "batch seq"] = torch.zeros_like(self.scored)
        for row, spans in enumerate(batch.spans):
            start, end = spans.response
            self.scored[row, max(start - 1, 0) : max(end - 1, 0)] = True
            self.response[row, start:end] = True
            self.prompt[row, spans.prompt[0] : start] = True
        if not bool(self.scored.any()):
            raise SteeringError("the unsteered responses are all empty: there is no token to measure a KL on")
        self.reference = self._log_probs([])

    @torch.no_grad()
    def _log_probs(self, hooks: list[tuple[str, Any]]) -> Float[Tensor, "token vocab"]:
        kwargs = {"attention_mask": self.attention_mask} if _takes_mask(self.model) else {}
        with forward_hooks(self.model, hooks):
            logits = self.model(self.input_ids, **kwargs)
        return logits[self.scored].float().log_softmax(-1)

    @torch.no_grad()
    def residual_norm(self, layer: int, kind: str) -> float:
        """The mean norm of the residual stream at `layer` over the answers' tokens (unsteered)."""
        seen: list[Tensor] = []

        def keep(act: Tensor, hook: Any) -> None:
            seen.append(act[self.response].float().norm(dim=-1).mean())

        self._log_probs([(hook_name(layer, kind), keep)])
        return float(seen[0])

    def kl(self, setting: Setting, vector: TraitVector | None = None) -> float:
        """Mean KL(unsteered || steered) per answer token under `setting` (its strength or coef, band, positions)."""
        edits, kind = setting_edits(self.model, setting, vector, check_model=False)
        where = {"all": self.attention_mask.bool(), "response": self.response, "prompt": self.prompt}[setting.positions]
        hooks = [
            (hook_name(layer, kind), _adder(edit.direction, float(edit.coef), where)) for layer, edit in edits.items()
        ]
        steered = self._log_probs(hooks)
        return float((self.reference.exp() * (self.reference - steered)).sum(-1).mean().clamp_min(0.0))


def _adder(direction: Tensor, coef: float, where: Tensor):
    def fn(act: Tensor, hook: Any) -> Tensor:
        added = (coef * direction.to(act.device, torch.float32))[None, None, :] * where[..., None]
        return (act.float() + added).to(act.dtype)

    return fn


def _takes_mask(model: Any) -> bool:
    from tl_traits.core.models import model_kind

    return model_kind(model) == "bridge"


def kl_ladder(
    forced: TeacherForced,
    setting: Setting,
    top: float,
    *,
    vector: TraitVector | None = None,
    direction: int = 1,
) -> list[KLPoint]:
    """KL at strengths doubling from where the setting adds 1% of the residual norm, until the KL reaches `top`.

    `setting.strength` is ignored (each rung sets its own); `direction` signs the strengths.
    """
    own = setting.vector if setting.vector is not None else vector
    unit, kind = setting_edits(forced.model, replace(setting, strength=1.0, coef=None), own)
    added = sum(abs(float(e.coef)) * float(e.direction.norm()) for e in unit.values())
    if added <= 0:
        raise SteeringError("this setting adds nothing at strength 1 (a zero vector or norm); it cannot be scaled")
    resid = forced.residual_norm(setting.layers[0], kind)
    strength = START_FRACTION * resid / added
    points: list[KLPoint] = []
    for _ in range(MAX_DOUBLINGS):
        kl = forced.kl(replace(setting, strength=direction * strength, coef=None), own)
        points.append(KLPoint(strength, kl))
        if kl >= top:
            break
        strength *= 2.0
    return points


def strength_at(points: Sequence[KLPoint], target: float) -> float:
    """The strength whose KL is `target`, interpolated in log-log between the ladder's rungs.

    KL grows about as strength squared at small strengths, so the log-log line is close; past the
    last rung the last strength is returned (the setting never moves the model that far).
    """
    if target <= 0 or not math.isfinite(target):
        raise SteeringError(f"a KL target must be a positive number, not {target!r}")
    previous = None
    for point in points:
        if point.kl >= target:
            if previous is None or previous.kl <= 0:
                return point.strength * math.sqrt(target / point.kl) if point.kl > 0 else point.strength
            t = (math.log(target) - math.log(previous.kl)) / (math.log(point.kl) - math.log(previous.kl))
            return math.exp(math.log(previous.strength) + t * (math.log(point.strength) - math.log(previous.strength)))
        previous = point
    return points[-1].strength
