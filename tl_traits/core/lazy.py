"""Lazy exports: a package's curated names, each imported on first use so that importing the package stays quick."""

from __future__ import annotations

from importlib import import_module
from typing import Any, Callable, Mapping


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """(`__getattr__`, `__dir__`) for a package from {name: "module:attribute"} ("module" alone: the module itself).

    A name is imported when first asked for and then kept in the package's namespace.
    """

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attribute = exports[name].partition(":")
        value = getattr(import_module(module), attribute) if attribute else import_module(module)
        vars(import_module(package))[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(import_module(package))) | set(exports))

    return __getattr__, __dir__
