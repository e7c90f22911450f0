"""The live HookPoint behind a hook name, and forward hooks that always come off again.

With sae-lens's HookedSAETransformer or SAETransformerBridge, an attached SAE replaces the hook point
at its hook name by a wrapper; what flows on is the wrapper's `hook_sae_output` (the reconstruction,
plus the error term when `use_error_term`). Hooks placed by name through `hook_point` act there, so
capture and steering read and change what the model actually runs on, with or without SAEs.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

from tl_traits.core.hook_names import HookNameError


def hook_point(model: Any, name: str) -> Any:
    """The HookPoint that carries `name`'s activation forward in `model`."""
    wrappers = getattr(model, "_acts_to_saes", None) or {}  # sae-lens: hook name -> SAE wrapper
    if wrappers:
        resolve = getattr(model, "_resolve_hook_name", None)  # the bridge keys some SAEs by canonical name
        wrapper = wrappers.get(name) or (wrappers.get(resolve(name)) if resolve is not None else None)
        if wrapper is not None:
            return wrapper.hook_sae_output
    points = model.hook_dict
    if name not in points:
        raise HookNameError(f"the model has no hook point '{name}'; see model.hook_dict for the names it has")
    return points[name]


def add_forward_hooks(model: Any, hooks: Sequence[tuple[str, Callable]]) -> Callable[[], None]:
    """Add `(hook name, fn)` forward hooks; return the function that removes exactly these (all or none stay)."""
    added: list[tuple[Any, Callable]] = []

    def remove() -> None:
        while added:
            point, fn = added.pop()
            for lens_handle in list(point.fwd_hooks):
                if getattr(lens_handle, "user_hook", None) is fn:
                    lens_handle.hook.remove()
                    point.fwd_hooks.remove(lens_handle)

    try:
        for name, fn in hooks:
            point = hook_point(model, name)
            point.add_hook(fn, dir="fwd")
            added.append((point, fn))
    except BaseException:
        remove()
        raise
    return remove


@contextmanager
def forward_hooks(model: Any, hooks: Sequence[tuple[str, Callable]]) -> Iterator[None]:
    """`model.hooks(fwd_hooks=...)` that also finds hook points behind attached sae-lens SAEs."""
    remove = add_forward_hooks(model, hooks)
    try:
        yield
    finally:
        remove()
