"""Named plugin registries (extractors, judges, attacks, quantizers), filled by decorator or entry point.

Built-ins and third-party packages register the same way: an entry point in the group
`tl_traits.<kind>` whose value is the plugin object (or a module that registers on import).
Entry points are listed lazily and each is imported only when its name is asked for.
"""

from __future__ import annotations

import functools
import types
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Callable, Generic, Iterator, TypeVar

from tl_traits.core.errors import TlTraitsError
from tl_traits.core.protocols import AttackPlugin, Extractor, JudgePlugin, Quantizer

T = TypeVar("T")


class RegistryError(TlTraitsError, LookupError):
    """Base class for registry problems (unknown name, duplicate, broken plugin)."""


class UnknownPluginError(RegistryError, KeyError):
    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class DuplicatePluginError(RegistryError):
    pass


class PluginLoadError(RegistryError):
    pass


@dataclass(frozen=True)
class PluginSource:
    """Where a registered name came from: a distribution's entry point or a direct registration."""

    name: str
    origin: str  # "entry point" or "decorator"
    distribution: str | None  # e.g. "tl-traits 0.1.0"
    target: str  # "module:attr" or the object's qualified name


class Registry(Generic[T]):
    """A name -> plugin map for one plugin kind, with lazy entry-point discovery."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.group = f"tl_traits.{kind}"
        self._items: dict[str, T] = {}
        self._sources: dict[str, PluginSource] = {}
        self._pending: dict[str, metadata.EntryPoint] | None = None
        self._broken: dict[str, str] = {}
        self._loading: str | None = None  # the entry point being imported (it may register itself)

    # -- registration -------------------------------------------------------------------------
    def register(self, name: str | None = None, *, obj: T | None = None) -> Callable[[T], T] | T:
        """Register `obj` under `name`; without `obj`, return a decorator.

        A name already taken by a different object is refused (DuplicatePluginError).
        """

        def add(item: T) -> T:
            key = name or getattr(item, "name", None) or getattr(item, "__name__", None)
            if not key:
                raise RegistryError(f"{self.kind}: cannot register {item!r} without a name")
            self._add(key, item, PluginSource(key, "decorator", _distribution_of(item), _qualname(item)))
            return item

        return add(obj) if obj is not None else add

    def _add(self, key: str, item: T, source: PluginSource) -> None:
        ep = self._entry_points().get(key)
        if ep is not None and key not in self._items and key != self._loading:
            raise DuplicatePluginError(
                f"{self.kind} plugin '{key}' is already provided by {_ep_dist(ep)} ({ep.value}); "
                f"refusing {source.target}. Pick another name."
            )
        if key in self._items and self._items[key] is not item:
            prior = self._sources[key]
            raise DuplicatePluginError(
                f"{self.kind} plugin '{key}' is already registered by {prior.target}"
                f" ({prior.distribution or prior.origin}); refusing {source.target}. "
                "Pick another name or unregister the first one."
            )
        self._items[key] = item
        self._sources.setdefault(key, source)

    def unregister(self, name: str) -> None:
        self._items.pop(name, None)
        self._sources.pop(name, None)

    # -- lookup ---------------------------------------------------------------------------------
    def _entry_points(self) -> dict[str, metadata.EntryPoint]:
        if self._pending is None:
            self._pending = {ep.name: ep for ep in metadata.entry_points(group=self.group)}
        return self._pending

    def names(self) -> list[str]:
        """Every known name: registered ones and entry points not yet imported."""
        return sorted(set(self._items) | set(self._entry_points()))

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._entry_points()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def get(self, name: str) -> T:
        """The plugin called `name`, importing its entry point on first use."""
        if name in self._items:
            return self._items[name]
        ep = self._entry_points().get(name)
        if ep is None:
            known = ", ".join(self.names()) or "(none registered)"
            raise UnknownPluginError(
                f"unknown {self.kind[:-1] if self.kind.endswith('s') else self.kind} '{name}'. "
                f"Known {self.kind}: {known}. "
                f"Register a new one with @tl_traits.{self.kind}.register('{name}') "
                f"or an entry point in the '{self.group}' group."
            )
        self._load(ep)
        if name not in self._items:
            raise PluginLoadError(
                f"{self.kind} entry point '{name}' ({_ep_dist(ep)}) imported {ep.value} "
                "but nothing was registered under that name"
            )
        return self._items[name]

    __getitem__ = get

    def _load(self, ep: metadata.EntryPoint) -> None:
        self._loading = ep.name
        try:
            item = ep.load()
        except Exception as exc:  # a broken plugin must not take the registry down
            self._broken[ep.name] = f"{type(exc).__name__}: {exc}"
            raise PluginLoadError(
                f"{self.kind} plugin '{ep.name}' from {_ep_dist(ep)} failed to import "
                f"({ep.value}): {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            self._loading = None
        source = PluginSource(ep.name, "entry point", _ep_dist(ep), ep.value)
        if _is_module(item):  # a module entry point registers itself on import
            if ep.name in self._items:
                self._sources[ep.name] = source
        else:
            self._loading = ep.name
            try:
                self._add(ep.name, item, source)
            finally:
                self._loading = None
            self._sources[ep.name] = source

    def load_all(self) -> dict[str, str]:
        """Import every entry point; return {name: error} for those that failed."""
        for name, ep in self._entry_points().items():
            if name not in self._items and name not in self._broken:
                try:
                    self._load(ep)
                except PluginLoadError:
                    pass
        return dict(self._broken)

    def sources(self) -> dict[str, PluginSource]:
        """Where each known name comes from, without importing anything."""
        out = dict(self._sources)
        for name, ep in self._entry_points().items():
            out.setdefault(name, PluginSource(name, "entry point", _ep_dist(ep), ep.value))
        return dict(sorted(out.items()))

    def refresh(self) -> None:
        """Forget the entry-point listing (after installing a package in this process)."""
        self._pending = None
        self._broken.clear()

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={self.names()})"


def _is_module(obj: Any) -> bool:
    return isinstance(obj, types.ModuleType)


def _qualname(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or type(obj).__module__
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{module}:{name}"


def _ep_dist(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "an unknown distribution"


@functools.lru_cache(maxsize=1)
def _packages_distributions() -> dict[str, list[str]]:
    try:
        return dict(metadata.packages_distributions())
    except Exception:
        return {}


def _distribution_of(obj: Any) -> str | None:
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


# The contracts each registry's plugins follow are in tl_traits.core.protocols.
extractors: Registry[Extractor] = Registry("extractors")
judges: Registry[JudgePlugin] = Registry("judges")
attacks: Registry[AttackPlugin] = Registry("attacks")
quantizers: Registry[Quantizer] = Registry("quantizers")

REGISTRIES: dict[str, Registry[Any]] = {
    r.kind: r for r in (extractors, judges, attacks, quantizers)
}
