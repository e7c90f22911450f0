"""The hooks that steer: what one hook adds at one layer (`LayerEdit`), on which positions across cached
generation steps, and attaching them so they always come off (`attach`, `Steering`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from tl_traits.core.generation import add_batch_listener
from tl_traits.core.hook_points import add_forward_hooks
from tl_traits.core.prompts import PreparedInputs
from tl_traits.steering.errors import SteeringError

POSITION_CODES = {"all": 0, "prompt": 1, "response": 2}


@dataclass
class PositionTracker:
    """Which absolute positions a hook call covers, across cached generation steps."""

    which: str
    pending_width: int | None = None  # announced by generate() for the next full forward
    width: int = 0
    offset: int = 0

    def announce(self, batch: PreparedInputs) -> None:
        self.pending_width = int(batch.input_ids.shape[1])

    def is_response(self, seq: int, device: torch.device) -> Tensor:
        """A `[seq]` bool mask: which positions of this call are generated tokens (not the prompt)."""
        if seq > 1 or self.offset == 0:  # a full forward: the prompt (or a whole sequence)
            self.width = self.pending_width if self.pending_width is not None else seq
            self.pending_width = None
            positions = torch.arange(seq, device=device)
            self.offset = seq
        else:  # one cached step: the next generated token
            positions = torch.tensor([self.offset], device=device)
            self.offset += 1
        return positions >= self.width


@dataclass
class LayerEdit:
    """What one hook adds at one layer: coef x direction, on some rows and positions."""

    direction: Float[Tensor, " d_model"] | Float[Tensor, "batch d_model"]  # one per row: a sweep over several vectors
    coef: float | Float[Tensor, " batch"]
    rows: Tensor | None = None  # bool [batch]: the rows this edit applies to (a sweep's slices)
    # int [batch]: POSITION_CODES per row (a sweep mixing positions); None: the tracker's
    positions: Tensor | None = None


def _keep_mask(edit: LayerEdit, tracker: PositionTracker, batch: int, seq: int, device: torch.device) -> Tensor | None:
    """`[batch, seq, 1]` bool: where the edit applies (None: everywhere)."""
    response = tracker.is_response(seq, device)
    if edit.positions is None:
        code = POSITION_CODES[tracker.which]
        where = None if code == 0 else (response if code == 2 else ~response)[None, :]
    else:
        codes = edit.positions.to(device)[:, None]
        where = (codes == 0) | ((codes == 1) & ~response[None, :]) | ((codes == 2) & response[None, :])
    if edit.rows is not None:
        rows = edit.rows.to(device)[:, None]
        where = rows if where is None else where & rows
    return None if where is None else where.expand(batch, seq)[..., None]


def make_hook(edit: LayerEdit, operator: str, tracker: PositionTracker) -> Callable:
    """The TL hook function that applies `edit` with `operator` (add, ablate or both) where it keeps."""

    def fn(act: Tensor, hook: Any) -> Tensor:
        keep = _keep_mask(edit, tracker, act.shape[0], act.shape[1], act.device)
        if keep is not None and not bool(keep.any()):
            return act
        x0 = act.float()
        v = edit.direction.to(device=act.device, dtype=torch.float32)
        if v.dim() == 2:
            v = v[:, None, :]
        x = x0
        if operator in ("ablate", "ablate_then_add"):
            u = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)  # a raw or combined vector need not be unit
            projection = (x @ u)[..., None] if u.dim() == 1 else (x * u).sum(-1, keepdim=True)
            x = x - projection * u
        if operator in ("add", "ablate_then_add"):
            coef = edit.coef
            if isinstance(coef, Tensor):
                coef = coef.to(device=act.device, dtype=torch.float32)[:, None, None]
            x = x + coef * v
        if keep is not None:
            x = torch.where(keep, x, x0)
        return x.to(act.dtype)

    return fn


@dataclass
class SteeringHandle:
    """Attached hooks; `remove()` takes off exactly these (other hooks stay)."""

    model: Any
    hooks: list[tuple[str, Callable]]
    _undo: list[Callable[[], None]] = field(default_factory=list)

    def remove(self) -> None:
        while self._undo:
            self._undo.pop()()


def attach(
    model: Any, hooks: Sequence[tuple[str, Callable]], trackers: Sequence[PositionTracker] = ()
) -> SteeringHandle:
    """Add forward hooks to the model and return the handle that removes them."""
    handle = SteeringHandle(model, list(hooks))
    try:
        handle._undo.append(add_forward_hooks(model, hooks))
        for tracker in trackers:
            handle._undo.append(add_batch_listener(model, tracker.announce))
    except BaseException:
        handle.remove()
        raise
    return handle


class Steering:
    """Hooks that steer `model` with a vector; a context manager and an iterable of TL hooks."""

    def __init__(
        self, model: Any, hooks: list[tuple[str, Callable]], trackers: list[PositionTracker], description: str
    ):
        self.model = model
        self.hooks = hooks
        self.trackers = trackers
        self.description = description
        self._handle: SteeringHandle | None = None

    def __iter__(self) -> Iterator[tuple[str, Callable]]:
        return iter(self.hooks)

    def attach(self) -> SteeringHandle:
        return attach(self.model, self.hooks, self.trackers)

    def __enter__(self) -> "Steering":
        if self._handle is not None:
            raise SteeringError("this steer() block is already active; create a new one to nest")
        self._handle = self.attach()
        return self

    def __exit__(self, *exc: Any) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.remove()

    def __repr__(self) -> str:
        return f"Steering({self.description})"
