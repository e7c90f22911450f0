"""Where a registered plugin came from (`PluginSource`): its entry point's or module's distribution and its
qualified name."""

from __future__ import annotations

import functools
import types
from dataclasses import dataclass
from importlib import metadata
from typing import Any


@dataclass(frozen=True)
class PluginSource:
    """Where a registered name came from: a distribution's entry point or a direct registration."""

    name: str
    origin: str  # "entry point" or "decorator"
    distribution: str | None  # e.g. "tl-traits 0.1.0"
    target: str  # "module:attr" or the object's qualified name


def is_module(obj: Any) -> bool:
    """Whether an entry point loaded a module (one that registers its plugins on import)."""
    return isinstance(obj, types.ModuleType)


def qualified_name(obj: Any) -> str:
    """`module:qualname` of an object (of its class, for an instance without one)."""
    module = getattr(obj, "__module__", None) or type(obj).__module__
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{module}:{name}"


def entry_point_distribution(ep: metadata.EntryPoint) -> str:
    """The distribution that installed an entry point, with its version (e.g. "tl-traits 0.1.0")."""
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "an unknown distribution"


@functools.lru_cache(maxsize=1)
def _packages_distributions() -> dict[str, list[str]]:
    try:
        return dict(metadata.packages_distributions())
    except Exception:
        return {}


def distribution_of(obj: Any) -> str | None:
    """The installed distribution (with its version) whose top-level package holds `obj`'s module; None if unknown."""
    module = (getattr(obj, "__module__", None) or "").split(".")[0]
    if not module:
        return None
    dists = _packages_distributions().get(module)
    if not dists:
        return None
    try:
        return f"{dists[0]} {metadata.version(dists[0])}"
    except metadata.PackageNotFoundError:
        return dists[0]
