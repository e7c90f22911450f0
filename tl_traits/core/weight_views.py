"""Plain tensors that alias parameters (TransformerBridge's "processed weights"): finding them and
re-pointing them at their parameters after a copy or a cast."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import Tensor


@dataclass(frozen=True)
class TensorAlias:
    """A plain tensor attribute (not a parameter or buffer) that is a view of a parameter's storage.

    TransformerBridge in compatibility mode keeps such views (e.g. `_processed_W_in` of a gated
    MLP, used by its forward). `copy.deepcopy` clones parameters one by one and `.to(dtype)`
    replaces their storage, so both silently turn the views into stale independent tensors.
    """

    module: str
    attr: str
    target: str  # parameter or buffer name
    size: tuple[int, ...]
    stride: tuple[int, ...]
    offset: int  # storage offset relative to the target's own


def plain_tensors(model: torch.nn.Module) -> Iterator[tuple[str, str, Tensor]]:
    """(module name, attribute, tensor) for every tensor attribute that is not a parameter or buffer."""
    for mname, module in model.named_modules():
        for attr, value in vars(module).items():
            if isinstance(value, Tensor) and not isinstance(value, torch.nn.Parameter) and not attr.startswith("__"):
                yield mname, attr, value


def tensor_aliases(model: torch.nn.Module) -> list[TensorAlias]:
    """Every plain tensor attribute that shares storage with one of the model's parameters/buffers."""
    owners: dict[tuple[int, Any], tuple[str, Tensor]] = {}
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if is_subclass_tensor(tensor):  # e.g. torchao's int8 weights: no plain storage; deepcopy handles them
            continue
        owners.setdefault((tensor.untyped_storage().data_ptr(), tensor.dtype), (name, tensor))
    aliases = []
    for mname, attr, value in plain_tensors(model):
        if value.numel() == 0 or is_subclass_tensor(value):
            continue
        hit = owners.get((value.untyped_storage().data_ptr(), value.dtype))
        if hit is not None:
            target, tensor = hit
            aliases.append(
                TensorAlias(
                    mname,
                    attr,
                    target,
                    tuple(value.size()),
                    tuple(value.stride()),
                    int(value.storage_offset() - tensor.storage_offset()),
                )
            )
    return aliases


def is_subclass_tensor(tensor: Tensor) -> bool:
    """A tensor subclass that wraps other tensors (torchao's quantized weights, ...)."""
    return hasattr(tensor, "__tensor_flatten__")


def restore_aliases(model: torch.nn.Module, aliases: list[TensorAlias]) -> int:
    """Point each recorded alias at its target's current storage again; returns how many were set."""
    modules = dict(model.named_modules())
    tensors = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    done = 0
    for alias in aliases:
        module, target = modules.get(alias.module), tensors.get(alias.target)
        if module is None or target is None:
            continue
        view = target.detach().as_strided(alias.size, alias.stride, target.storage_offset() + alias.offset)
        object.__setattr__(module, alias.attr, view)
        done += 1
    return done
