"""Named plugin registries (extractors, judges, attacks, quantizers), filled by decorator or entry point.

Built-ins and third-party packages register the same way: an entry point in the group
`tl_traits.<kind>` whose value is a PluginInfo record with a `target` (listed without importing the
plugin), or the plugin object itself (or a module that registers on import). Entry points are listed
lazily; a plugin is imported only when its name is asked for. `Registry.resolve` makes any plugin ready.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from importlib import metadata
from typing import Any, Generic, Iterator, Mapping, Sequence, TypeVar

from tl_traits.core.errors import TlTraitsError
from tl_traits.core.plugin_info import PluginInfo, declared_info, legacy_info, plugin_name, undeclared_keywords
from tl_traits.core.plugin_sources import (  # noqa: F401  (PluginSource re-exported: Registry.sources returns it)
    PluginSource,
    distribution_of,
    entry_point_distribution,
    is_module,
    qualified_name,
)
from tl_traits.core.protocols import AttackPlugin, Extractor, JudgePlugin, Quantizer, TrainedExtractor

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


class PluginOptionError(RegistryError):
    """An option a plugin does not take, or options for a plugin that is already built."""


@contextmanager
def _option_errors_as(error: type[Exception] | None) -> Iterator[None]:
    """Re-raise a PluginOptionError as the caller's domain error, so each domain names its own failures."""
    try:
        yield
    except PluginOptionError as exc:
        if error is None:
            raise
        raise error(str(exc)) from exc


class Registry(Generic[T]):
    """A name -> plugin map for one plugin kind, with lazy entry-point discovery and one way to make a plugin ready.

    context: the keywords a caller of this kind may hand its plugins (`resolve` passes each plugin those it
    declares); call: the arguments a ready plugin is called with (never options); ready: the methods of a
    built plugin, returned by `resolve` as it is (none for extractors, which are plain callables).
    """

    def __init__(
        self, kind: str, *, context: Sequence[str] = (), call: Sequence[str] = (), ready: Sequence[str] = ()
    ) -> None:
        self.kind = kind
        self.group = f"tl_traits.{kind}"
        self.context, self.call, self.ready = tuple(context), tuple(call), tuple(ready)
        self._items: dict[str, T] = {}
        self._infos: dict[str, PluginInfo] = {}  # declared records, their plugin imported on first `get`
        self._sources: dict[str, PluginSource] = {}
        self._pending: dict[str, metadata.EntryPoint] | None = None
        self._broken: dict[str, str] = {}
        self._loading: str | None = None  # the entry point being imported (it may register itself)

    @property
    def singular(self) -> str:
        return self.kind[:-1] if self.kind.endswith("s") else self.kind

    # -- registration -------------------------------------------------------------------------
    def register(self, name: str | None = None, *, obj: Any = None) -> Any:
        """Register `obj` under `name`; without `obj`, return a decorator.

        `obj` may be a PluginInfo record with a `target` ("module:attribute"): the name is then listed
        with its record and the target imported on first use. A name already taken by a different
        object is refused (DuplicatePluginError).
        """

        def add(item: Any) -> Any:
            if isinstance(item, PluginInfo):
                self._declare(name or item.name, item)
                return item
            key = name or (plugin_name(item) if callable(item) or hasattr(item, "name") else None)
            if not key:
                raise RegistryError(f"{self.kind}: cannot register {item!r} without a name")
            self._add(key, item, PluginSource(key, "decorator", distribution_of(item), qualified_name(item)))
            return item

        return add(obj) if obj is not None else add

    def _declare(self, key: str, record: PluginInfo) -> None:
        if not record.target:
            raise RegistryError(
                f"{self.kind}: the record for '{key}' names no target ('module:attribute'); "
                "register the plugin itself, or give the record its target"
            )
        if self._infos.get(key) == record:
            return
        if key in self:
            raise DuplicatePluginError(
                f"{self.kind} plugin '{key}' is already known; refusing {record.target}. Pick another name."
            )
        self._infos[key] = record
        self._sources[key] = PluginSource(key, "decorator", None, record.target)

    def _add(self, key: str, item: T, source: PluginSource, loading: bool = False) -> None:
        ep = self._entry_points().get(key)
        if ep is not None and key not in self._items and key != self._loading and not loading:
            raise DuplicatePluginError(
                f"{self.kind} plugin '{key}' is already provided by {entry_point_distribution(ep)} ({ep.value}); "
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
        self._infos.pop(name, None)
        self._sources.pop(name, None)

    # -- lookup ---------------------------------------------------------------------------------
    def _entry_points(self) -> dict[str, metadata.EntryPoint]:
        if self._pending is None:
            self._pending = {ep.name: ep for ep in metadata.entry_points(group=self.group)}
        return self._pending

    def names(self) -> list[str]:
        """Every known name: registered ones, declared records and entry points, none of them imported."""
        return sorted(set(self._items) | set(self._infos) | set(self._entry_points()))

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._infos or name in self._entry_points()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def get(self, name: str) -> T:
        """The plugin called `name`, importing its entry point (and its record's target) on first use."""
        if name in self._items:
            return self._items[name]
        if name not in self._infos:
            self._read(name)
        if name in self._infos and name not in self._items:
            self._import_target(name, self._infos[name])
        if name not in self._items:
            ep = self._entry_points()[name]
            raise PluginLoadError(
                f"{self.kind} entry point '{name}' ({entry_point_distribution(ep)}) imported {ep.value} "
                "but nothing was registered under that name"
            )
        return self._items[name]

    __getitem__ = get

    def info(self, name: str) -> PluginInfo:
        """The record of `name`, without importing the plugin when it is declared apart (a catalogue record)."""
        if name not in self._items and name not in self._infos:
            self._read(name)
        if name in self._infos:
            return self._infos[name]
        item = self.get(name)  # what the entry point registered (or the error that it registered nothing)
        return declared_info(item) or legacy_info(item, name)

    def infos(self) -> dict[str, PluginInfo]:
        """Every plugin's record that can be read (a broken plugin is left out: see `load_all`)."""
        out = {}
        for name in self.names():
            try:
                out[name] = self.info(name)
            except PluginLoadError:
                continue
        return out

    def _read(self, name: str) -> None:
        """Import the entry point of `name`: a record (kept; its target waits) or the plugin itself."""
        ep = self._entry_points().get(name)
        if ep is None:
            known = ", ".join(self.names()) or "(none registered)"
            raise UnknownPluginError(
                f"unknown {self.singular} '{name}'. Known {self.kind}: {known}. "
                f"Register a new one with @tl_traits.{self.kind}.register('{name}') "
                f"or an entry point in the '{self.group}' group."
            )
        item = self._load(name, ep.value, entry_point_distribution(ep))
        source = PluginSource(name, "entry point", entry_point_distribution(ep), ep.value)
        if isinstance(item, PluginInfo):
            if item.name != name or not item.target:
                raise PluginLoadError(
                    f"{self.kind} entry point '{name}' ({entry_point_distribution(ep)}) points at "
                    f"a record named '{item.name}' with target {item.target!r}; it needs its own "
                    "name and a target"
                )
            self._infos[name] = item
            self._sources[name] = PluginSource(name, "entry point", entry_point_distribution(ep), item.target)
        elif not is_module(item):  # (a module entry point registers itself on import)
            self._add(name, item, source, loading=True)
        if name in self._items:
            self._sources[name] = source

    def _import_target(self, name: str, record: PluginInfo) -> None:
        source = self._sources.get(name) or PluginSource(name, "decorator", None, str(record.target))
        self._add(
            name, self._load(name, str(record.target), source.distribution or source.origin), source, loading=True
        )

    def _load(self, name: str, value: str, where: str) -> Any:
        """Import `value` ("module:attribute") for `name`; a failure is kept and raised as PluginLoadError."""
        if name in self._broken:
            raise PluginLoadError(
                f"{self.kind} plugin '{name}' from {where} failed to import ({value}): {self._broken[name]}"
            )
        self._loading = name
        try:
            return metadata.EntryPoint(name, value, self.group).load()
        except Exception as exc:  # a broken plugin must not take the registry down
            self._broken[name] = f"{type(exc).__name__}: {exc}"
            raise PluginLoadError(
                f"{self.kind} plugin '{name}' from {where} failed to import ({value}): {self._broken[name]}"
            ) from exc
        finally:
            self._loading = None

    def load_all(self) -> dict[str, str]:
        """Import every plugin; return {name: error} for those that failed."""
        for name in self.names():
            if name not in self._items and name not in self._broken:
                try:
                    self.get(name)
                except PluginLoadError:
                    pass
        return dict(self._broken)

    def sources(self) -> dict[str, PluginSource]:
        """Where each known name comes from: a record's target (its plugin not imported), else the entry point."""
        for name in self._entry_points():
            if name not in self._items and name not in self._infos and name not in self._broken:
                try:
                    self._read(name)
                except PluginLoadError:  # listed with its entry point; `load_all` reports the error
                    pass
        out = dict(self._sources)
        for name, ep in self._entry_points().items():
            out.setdefault(name, PluginSource(name, "entry point", entry_point_distribution(ep), ep.value))
        return dict(sorted(out.items()))

    def refresh(self) -> None:
        """Forget the entry-point listing (after installing a package in this process)."""
        self._pending = None
        self._broken.clear()

    # -- making a plugin ready ------------------------------------------------------------------
    def resolve(
        self,
        spec: Any,
        /,
        *,
        options: Mapping[str, Any] | None = None,
        error: type[Exception] | None = None,
        **context: Any,
    ) -> Any:
        """The ready plugin for `spec`: a registered name, a class, a built instance or a plain function.

        A class is built, `cls(**context, **options)`; a function (or another callable that is not a built
        plugin) is bound, `functools.partial(fn, **context, **options)`; a built instance (one with this
        kind's methods, e.g. a judge's `score`) is returned as it is and takes no options. Of `context`, a
        plugin gets only the keywords it declares (its PluginInfo's `context`; undeclared: those its
        signature names) that have a value and that no option sets. An option it does not take is refused
        with the ones it takes: as a PluginOptionError, or as `error` (the caller's domain error) when given.
        """
        with _option_errors_as(error):
            return self._resolve(spec, dict(options or {}), context)

    def _resolve(self, spec: Any, options: dict[str, Any], context: dict[str, Any]) -> Any:
        stray = sorted(set(context) - set(self.context))
        if stray:
            raise TypeError(f"{self.kind} are given no context {stray}; theirs: {', '.join(self.context) or 'none'}")
        plugin = self.get(spec) if isinstance(spec, str) else spec
        label = spec if isinstance(spec, str) else plugin_name(plugin)
        if self.is_built(plugin):
            if options:
                raise PluginOptionError(
                    f"options {sorted(options)} cannot apply to a {self.singular} instance that is already built "
                    f"({label}); pass the {self.singular} name or class instead"
                )
            return plugin
        if not callable(plugin):
            raise RegistryError(
                f"cannot use a {type(plugin).__name__} as a {self.singular}: pass a registered name "
                f"({', '.join(self.names()) or 'none yet'}), a class, an instance or a function"
            )
        takes = self.check_options(plugin, options, label)
        given = {k: v for k, v in context.items() if k in takes and v is not None and k not in options}
        if isinstance(plugin, type):
            return plugin(**given, **options)
        return functools.partial(plugin, **given, **options) if given or options else plugin

    def check_options(
        self, plugin: Any, options: Mapping[str, Any], label: str | None = None, error: type[Exception] | None = None
    ) -> tuple[str, ...]:
        """Refuse an option `plugin` (a class or function) does not take, naming those it takes (as `error` when
        given); return the context keywords it takes."""
        with _option_errors_as(error):
            return self._check_options(plugin, options, label or plugin_name(plugin))

    def _check_options(self, plugin: Any, options: Mapping[str, Any], label: str) -> tuple[str, ...]:
        takes, accepts = self.keywords(plugin)
        called = sorted(set(options) & set(self.call))
        if called:
            raise PluginOptionError(
                f"{self.singular} '{label}': {', '.join(called)} is passed when it is called, not as an option"
            )
        unknown = [k for k in options if accepts is not None and k not in accepts]
        if unknown:
            raise PluginOptionError(
                f"{self.singular} '{label}' takes no option {', '.join(map(repr, unknown))}; "
                f"its options: {', '.join(accepts or ()) or '(none)'}"
            )
        return takes

    def is_built(self, plugin: Any) -> bool:
        """Whether `plugin` is a ready instance of this kind (it has the kind's methods)."""
        return (
            bool(self.ready)
            and not isinstance(plugin, type)
            and all(callable(getattr(plugin, method, None)) for method in self.ready)
        )

    def declared(self, plugin: Any) -> PluginInfo | None:
        """The record `plugin` declares (its own `plugin_info`, or the record it was registered with), or None."""
        record = declared_info(plugin)
        if record is None:
            record = next(
                (self._infos[n] for n, item in self._items.items() if item is plugin and n in self._infos), None
            )
        return record

    def keywords(self, plugin: Any) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
        """(the context keywords, the options) `plugin` takes: as declared, else read from its signature."""
        record = self.declared(plugin)
        if record is None:
            return undeclared_keywords(plugin, self.context, self.call)
        strange = [k for k in record.context if k not in self.context]
        if strange:
            raise PluginOptionError(
                f"{self.singular} '{record.name}' declares context {strange}, which {self.kind} "
                f"are not given; theirs: {', '.join(self.context) or 'none'}"
            )
        return record.context, record.options

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={self.names()})"


# The contracts each registry's plugins follow are in tl_traits.core.protocols.
extractors: Registry[Extractor | TrainedExtractor] = Registry(
    "extractors",
    context=("layers", "hook", "record", "model_name", "progress"),
    call=("pos", "neg", "model", "dataset", "seed"),
)
judges: Registry[JudgePlugin] = Registry(
    "judges", context=("model", "trait"), call=("questions", "responses"), ready=("score",)
)
attacks: Registry[AttackPlugin] = Registry("attacks", call=("example", "rng"), ready=("apply",))
quantizers: Registry[Quantizer] = Registry("quantizers", call=("model",), ready=("quantize",))

REGISTRIES: dict[str, Registry[Any]] = {r.kind: r for r in (extractors, judges, attacks, quantizers)}
