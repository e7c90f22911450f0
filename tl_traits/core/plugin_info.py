"""`PluginInfo`: the record every plugin declares, the same for extractors, judges, attacks and quantizers.

Light on purpose (no torch): catalogue modules of records are read to list plugins without importing them.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass
from typing import Any, Sequence, TypeVar

F = TypeVar("F")

# Attributes a plugin set on itself before PluginInfo; still read, with a DeprecationWarning.
LEGACY_ATTRIBUTES = ("by_default", "requires")


@dataclass(frozen=True)
class PluginInfo:
    """What a plugin is and needs, declared once: read by the registries without running the plugin.

    name: its registered name. description: one line for `tl-traits plugins`.
    kinds: for a judge, what it can score ("trait", "coherence", "relevance"); for an extractor, ("trained",)
        marks one trained through the model (`TrainedExtractor`); empty otherwise.
    requires: optional packages (import names) it needs, and "cuda" for one that needs a CUDA device.
    by_default: False keeps an extractor out of runs that name no methods (e.g. it needs SAEs).
    context: the caller's context keywords it takes (extractors: layers, hook, record, model_name; judges:
        model, trait); `Registry.resolve` passes only these.
    options: the keyword options it takes (a class: its constructor's; a function: its own), named in the
        error for an unknown one; None: not declared, the plugin checks its options itself.
    target: "module:attribute" of the plugin, for a record in a catalogue (imported on first use).

    Declare it as a class attribute `plugin_info = PluginInfo(...)`, or decorate: `@PluginInfo("name", ...)`
    attaches the record to a function (or a class, or returns an object with it set).
    """

    name: str
    description: str = ""
    kinds: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    by_default: bool = True
    context: tuple[str, ...] = ()
    options: tuple[str, ...] | None = None
    target: str | None = None

    def __post_init__(self) -> None:
        for field in ("kinds", "requires", "context", "options"):
            value = getattr(self, field)
            if isinstance(value, str):
                raise TypeError(f"PluginInfo({self.name!r}): {field} is a tuple of names, not the string {value!r}")
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, field, tuple(value))

    def __call__(self, plugin: F) -> F:
        """Attach this record to `plugin` (as `plugin.plugin_info`) and return it: use as a decorator."""
        setattr(plugin, "plugin_info", self)  # noqa: B010 - `plugin` is of any type
        return plugin


def declared_info(plugin: Any) -> PluginInfo | None:
    """The record `plugin` declares itself (not one a parent class declared), or None."""
    own = [vars(plugin)] if hasattr(plugin, "__dict__") else []
    if not isinstance(plugin, type):
        own.append(vars(type(plugin)))
    for namespace in own:
        record = namespace.get("plugin_info")
        if isinstance(record, PluginInfo):
            return record
    return None


def legacy_info(plugin: Any, name: str | None = None) -> PluginInfo:
    """A record read from an undeclared plugin's attributes (`description`, `kinds`, `requires`, `by_default`)
    and docstring; `context` and `options` are left for `Registry.resolve` to read from its signature."""
    name = name or plugin_name(plugin)
    set_by_hand = [a for a in LEGACY_ATTRIBUTES if _own_attribute(plugin, a)]
    if set_by_hand:
        warnings.warn(
            f"plugin '{name}' sets {', '.join(set_by_hand)} as attributes; declare them in a "
            "tl_traits.PluginInfo record instead (plugin_info = PluginInfo(...))",
            DeprecationWarning,
            stacklevel=3,
        )
    return PluginInfo(
        name,
        description=first_sentence(plugin, name),
        kinds=tuple(getattr(plugin, "kinds", ()) or ()),
        requires=tuple(getattr(plugin, "requires", ()) or ()),
        by_default=bool(getattr(plugin, "by_default", True)),
        options=None,
    )


def plugin_name(plugin: Any) -> str:
    """The name of a plugin object: its record's, its `name`, its `__name__`, else its type's name."""
    record = declared_info(plugin)
    if record is not None:
        return record.name
    name = getattr(plugin, "name", None)
    if not isinstance(name, str) or not name:
        name = getattr(plugin, "__name__", None) or type(plugin).__name__
    return str(name)


def first_sentence(plugin: Any, name: str) -> str:
    """The plugin's `description`, or the first sentence of its docstring (or its module's), without "name: "."""
    doc = getattr(plugin, "description", None)
    if not isinstance(doc, str) or not doc:
        doc = inspect.getdoc(plugin)
    if not doc:
        module = inspect.getmodule(plugin)
        doc = inspect.getdoc(module) if module is not None else ""
    paragraph = " ".join((doc or "").strip().split("\n\n")[0].split())
    if paragraph.lower().startswith(f"{name.lower()}:"):
        paragraph = paragraph[len(name) + 1 :].strip()
    end = paragraph.find(". ")
    return paragraph[: end + 1] if end > 0 else paragraph


def _own_attribute(plugin: Any, attribute: str) -> bool:
    """Whether `attribute` was set on the plugin or its own classes (not inherited from Python's types)."""
    klass = plugin if isinstance(plugin, type) else type(plugin)
    namespaces = [vars(plugin)] if hasattr(plugin, "__dict__") else []
    namespaces += [vars(k) for k in klass.__mro__ if k.__module__ != "builtins"]
    return any(attribute in ns for ns in namespaces)


def undeclared_keywords(
    plugin: Any, context: Sequence[str], call: Sequence[str]
) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
    """The fallback for a plugin without a PluginInfo, and the one place a signature is read: (the context
    keywords it names, its other keywords as options; None when it takes **kwargs or cannot be read)."""
    try:
        params = list(inspect.signature(plugin).parameters.values())
    except (TypeError, ValueError):
        return (), None
    named = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params)
    options = tuple(k for k in named if k not in context and k not in call)
    return tuple(k for k in context if k in named), None if takes_any else options
