"""Training configuration: `TrainConfig` and its checks, which parameters a `trainable` spec picks,
and the learning-rate schedule."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Mapping, Sequence

import torch

from tl_traits.core.errors import TlTraitsError

SCHEDULES = ("constant", "linear", "cosine")
# Config fields that change a run's arithmetic: resuming requires the same values.
MATH_FIELDS = (
    "lr",
    "betas",
    "weight_decay",
    "batch_size",
    "grad_accum",
    "epochs",
    "max_steps",
    "warmup_steps",
    "schedule",
    "trainable",
    "max_grad_norm",
    "seed",
)
_SPEC_FORMS = "'all', 'last:N' (the last N blocks), 'from:L' (blocks L to the end) or a list of block indices"


class TrainingError(TlTraitsError):
    """A training run that cannot start or continue as asked; the message says what to change."""


@dataclass(frozen=True)
class TrainConfig:
    """Optimizer, schedule, batching, which blocks learn, and when to evaluate and checkpoint.

    max_steps counts optimizer steps of `batch_size * grad_accum` examples and overrides epochs.
    The learning rate warms up linearly (warmup step s uses lr * (s+1)/(warmup_steps+1)), then
    follows `schedule` ("linear" and "cosine" reach 0 at the end, "constant" stays at lr).
    trainable: "all", "last:N", "from:L" or block indices; embeddings, the final norm and the
    unembedding train only with "all".
    """

    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    batch_size: int = 8
    grad_accum: int = 1
    epochs: int = 1
    max_steps: int | None = None
    warmup_steps: int = 0
    schedule: str = "linear"
    trainable: str | Sequence[int] = "all"
    max_grad_norm: float | None = 1.0
    eval_every: int | None = None
    checkpoint_every: int | None = None
    keep_checkpoints: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        object.__setattr__(self, "trainable", _normalize_spec(self.trainable))
        problems = _config_problems(self)
        if problems:
            raise TrainingError("invalid TrainConfig: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["betas"] = list(self.betas)
        if not isinstance(self.trainable, str):
            data["trainable"] = list(self.trainable)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TrainingError(f"unknown TrainConfig fields {unknown}; known fields are {sorted(known)}")
        return cls(**dict(data))


def _config_problems(c: TrainConfig) -> list[str]:
    checks = [
        (c.lr >= 0, f"lr must be >= 0, not {c.lr}"),
        (c.weight_decay >= 0, f"weight_decay must be >= 0, not {c.weight_decay}"),
        (len(c.betas) == 2 and all(0 <= b < 1 for b in c.betas), f"betas must be two numbers in [0, 1), not {c.betas}"),
        (c.batch_size >= 1, f"batch_size must be >= 1, not {c.batch_size}"),
        (c.grad_accum >= 1, f"grad_accum must be >= 1, not {c.grad_accum}"),
        (c.epochs >= 1, f"epochs must be >= 1, not {c.epochs}"),
        (c.max_steps is None or c.max_steps >= 1, f"max_steps must be None or >= 1, not {c.max_steps}"),
        (c.warmup_steps >= 0, f"warmup_steps must be >= 0, not {c.warmup_steps}"),
        (c.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}, not {c.schedule!r}"),
        (c.max_grad_norm is None or c.max_grad_norm > 0, f"max_grad_norm must be None or > 0, not {c.max_grad_norm}"),
        (c.eval_every is None or c.eval_every >= 1, f"eval_every must be None or >= 1, not {c.eval_every}"),
        (
            c.checkpoint_every is None or c.checkpoint_every >= 1,
            f"checkpoint_every must be None or >= 1, not {c.checkpoint_every}",
        ),
        (c.keep_checkpoints >= 1, f"keep_checkpoints must be >= 1, not {c.keep_checkpoints}"),
    ]
    return [message for ok, message in checks if not ok]


# ================================================================================================
# Which parameters train
# ================================================================================================
def _normalize_spec(spec: str | Sequence[int]) -> str | tuple[int, ...]:
    if isinstance(spec, str):
        spec = spec.strip()
        if spec == "all" or re.fullmatch(r"(last|from):\d+", spec):
            return spec
        raise TrainingError(f"trainable={spec!r} is not a known form; use {_SPEC_FORMS}")
    try:
        blocks = tuple(int(i) for i in spec)
    except (TypeError, ValueError) as exc:
        raise TrainingError(f"trainable={spec!r} is not a known form; use {_SPEC_FORMS}") from exc
    if not blocks:
        raise TrainingError(f"trainable is an empty list: nothing would train; use {_SPEC_FORMS}")
    return blocks


def _selected_blocks(spec: str | tuple[int, ...], n_layers: int) -> set[int] | None:
    """Block indices chosen by `spec` (None: every parameter, embeddings included)."""
    if spec == "all":
        return None
    bad = TrainingError(
        f"trainable={spec!r} does not fit this model (n_layers={n_layers}); valid forms: 'all', "
        f"'last:N' with 1 <= N <= {n_layers}, 'from:L' with 0 <= L <= {n_layers - 1}, "
        f"or block indices in 0..{n_layers - 1}"
    )
    if isinstance(spec, str):
        form, number = spec.split(":")
        k = int(number)
        if form == "last" and 1 <= k <= n_layers:
            return set(range(n_layers - k, n_layers))
        if form == "from" and 0 <= k < n_layers:
            return set(range(k, n_layers))
        raise bad
    if any(not 0 <= i < n_layers for i in spec):
        raise bad
    return set(spec)


def _block_of_params(model: Any) -> dict[int, int]:
    """id(parameter) -> index of the block that owns it, found through `model.blocks` (both TL kinds)."""
    blocks = getattr(model, "blocks", None)
    if blocks is None:
        raise TrainingError(f"{type(model).__name__} has no `blocks`; train a HookedTransformer or a TransformerBridge")
    return {id(p): i for i, block in enumerate(blocks) for p in block.parameters()}


def trainable_parameters(model: Any, spec: str | Sequence[int]) -> list[tuple[str, torch.nn.Parameter]]:
    """The (name, parameter) pairs that `spec` trains, in `model.named_parameters()` order.

    Names are the model's own: `blocks.3.attn.W_Q` (HookedTransformer) or
    `model.layers.3._original_component.self_attn...` (TransformerBridge).
    """
    blocks = _selected_blocks(_normalize_spec(spec), int(model.cfg.n_layers))
    named = list(model.named_parameters())
    if blocks is None:
        return named
    owner = _block_of_params(model)
    return [(name, p) for name, p in named if owner.get(id(p)) in blocks]


# ================================================================================================
# Schedule
# ================================================================================================
def total_steps(config: TrainConfig, n_examples: int) -> int:
    if config.max_steps is not None:
        return config.max_steps
    return config.epochs * math.ceil(n_examples / (config.batch_size * config.grad_accum))


def lr_lambda(config: TrainConfig, total: int) -> Callable[[int], float]:
    warmup, schedule = config.warmup_steps, config.schedule

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 1.0 - progress if schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor
