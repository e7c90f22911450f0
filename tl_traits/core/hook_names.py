"""The address of an activation: (hook, layer) <-> TransformerLens hook name, in one place."""

from __future__ import annotations

import re

from tl_traits.core.errors import TlTraitsError

HOOKS: tuple[str, ...] = ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out")
_PATTERN = re.compile(r"^blocks\.(\d+)\.hook_(\w+)$")


class HookNameError(TlTraitsError, KeyError):
    """A hook name or layer that does not exist in this model."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


def hook_name(layer: int, hook: str = "resid_post") -> str:
    """`hook_name(10) == "blocks.10.hook_resid_post"`."""
    if hook not in HOOKS:
        raise HookNameError(f"unknown hook '{hook}'; use one of {', '.join(HOOKS)}")
    if layer < 0:
        raise HookNameError(f"layer must be >= 0, got {layer}")
    return f"blocks.{layer}.hook_{hook}"


def parse_hook_name(name: str) -> tuple[int, str]:
    """`parse_hook_name("blocks.10.hook_resid_post") == (10, "resid_post")`."""
    match = _PATTERN.match(name)
    if match is None or match.group(2) not in HOOKS:
        raise HookNameError(
            f"'{name}' is not a per-layer hook tl_traits uses; expected blocks.<layer>.hook_<one of {', '.join(HOOKS)}>"
        )
    return int(match.group(1)), match.group(2)
