"""`plugins`: every registry's plugins, what each does, whether it can run here, and where it came from."""

from __future__ import annotations

from typing import Any

import typer

from tl_traits.app.cli.options import JsonOpt, emit
from tl_traits.core.extras import availability
from tl_traits.core.registry import attacks, extractors, judges, quantizers


def plugins(as_json: bool = JsonOpt) -> None:
    """Every registry's plugins: a one-line description, whether it runs on this machine, and its source."""
    listing = {}
    for reg in (extractors, judges, attacks, quantizers):
        described = {name: describe(reg, name) for name in reg.names()}  # reads records: imports no plugin
        listing[reg.kind] = {
            name: {**described[name], "origin": s.origin, "distribution": s.distribution, "target": s.target}
            for name, s in reg.sources().items()
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
    """The plugin's declared description, and whether it runs here: whether what its PluginInfo `requires`
    (optional packages, a CUDA device) is present. Reads the record, not the plugin."""
    try:
        info = registry.info(name)
    except Exception as exc:  # noqa: BLE001 - a broken plugin is listed with its error, not a crash of the listing
        return {"description": "", "available": False, "why": f"does not load: {exc}"}
    available, why = availability(*info.requires)
    return {"description": info.description, "available": bool(available), "why": why}
