"""`plugins`: every registry's plugins and where each came from."""

from __future__ import annotations

import typer

from tl_traits.app.cli.options import JsonOpt, emit
from tl_traits.core.registry import attacks, extractors, judges, quantizers


def plugins(as_json: bool = JsonOpt) -> None:
    """Every registry's plugins and where each came from (distribution, entry point or decorator)."""
    listing = {
        reg.kind: {name: {"origin": s.origin, "distribution": s.distribution, "target": s.target}
                   for name, s in reg.sources().items()}
        for reg in (extractors, judges, attacks, quantizers)
    }
    if as_json:
        emit(listing)
        return
    for kind, entries in listing.items():
        typer.echo(f"{kind} ({len(entries)})")
        for name, s in entries.items():
            typer.echo(f"  {name:<18} {s['distribution'] or '(this process)':<20} {s['origin']:<12} {s['target']}")
        if not entries:
            typer.echo("  (none installed)")
