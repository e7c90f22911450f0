"""`plugins`: every registry's plugins, what each does, whether it can run here, and where it came from."""

from __future__ import annotations

import inspect
from typing import Any

import typer

from tl_traits.app.cli.options import JsonOpt, emit
from tl_traits.core.extras import availability
from tl_traits.core.registry import attacks, extractors, judges, quantizers


def plugins(as_json: bool = JsonOpt) -> None:
    """Every registry's plugins: a one-line description, whether it runs on this machine, and its source."""
    listing = {
        reg.kind: {name: {**describe(reg, name), "origin": s.origin, "distribution": s.distribution, "target": s.target}
                   for name, s in reg.sources().items()}
        for reg in (extractors, judges, attacks, quantizers)
    }
    if as_json:
        emit(listing)
        return
    for kind, entries in listing.items():
        typer.echo(f"{kind} ({len(entries)})")
        for name, s in entries.items():
            mark = "" if s["available"] else f"  [not available: {s['why']}]"
            typer.echo(f"  {name:<18} {s['description']}{mark}")
            typer.echo(f"  {'':<18} from {s['distribution'] or '(this process)'} ({s['origin']}: {s['target']})")
        if not entries:
            typer.echo("  (none installed)")


def describe(registry: Any, name: str) -> dict[str, Any]:
    """The plugin's first docstring line, and whether it runs here: its `available()` where it has one
    (quantizers do: bitsandbytes needs CUDA), else whether the optional packages it `requires` are installed."""
    try:
        plugin = registry.get(name)
    except Exception as exc:  # noqa: BLE001 - a broken plugin is listed with its error, not a crash of the listing
        return {"description": "", "available": False, "why": f"does not load: {exc}"}
    check = getattr(plugin, "available", None)
    available, why = check() if callable(check) else availability(*getattr(plugin, "requires", ()))
    return {"description": _first_sentence(plugin, name), "available": bool(available), "why": why}


def _first_sentence(plugin: Any, name: str) -> str:
    """The plugin's own docstring (or its module's), first sentence, without a leading "name: "."""
    doc = getattr(plugin, "description", None) or inspect.getdoc(plugin)
    if not doc:
        module = inspect.getmodule(plugin)
        doc = inspect.getdoc(module) if module is not None else ""
    paragraph = " ".join((doc or "").strip().split("\n\n")[0].split())
    if paragraph.lower().startswith(f"{name.lower()}:"):
        paragraph = paragraph[len(name) + 1:].strip()
    end = paragraph.find(". ")
    return paragraph[: end + 1] if end > 0 else paragraph
