"""`serve`: the live dashboard over a run folder or vectors files (chat, steer, browse prompt sets)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from tl_traits.app.cli.options import ModelOpt, QuietOpt, stages_for
from tl_traits.core.extras import require_extras


def serve(
    sources: Optional[List[Path]] = typer.Argument(
        None, help="A `tl-traits run` output folder (default: out) or vectors files from extract."
    ),
    model: Optional[str] = ModelOpt,
    kind: Optional[str] = typer.Option(None, "--kind", help="bridge or hooked (default: the run's, else bridge)."),
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="Address to listen on; anything but a loopback address lets other machines in (a warning says so).",
    ),
    port: int = typer.Option(8765, "--port", min=1, max=65535),
    max_new_tokens: int = typer.Option(
        200, "--max-new-tokens", min=1, help="The most new tokens a request may ask for."
    ),
    max_prompt_chars: int = typer.Option(
        2000, "--max-prompt-chars", min=1, help="The longest conversation a request may send, in characters."
    ),
    judges: bool = typer.Option(
        True, "--judges/--no-judges", help="Score the steering view's answers with the trait's judges."
    ),
    quiet: bool = QuietOpt,
) -> None:
    """A local web dashboard: chat with the model and watch its traits token by token, steer with a slider, browse
    prompt sets."""
    require_extras("starlette", "uvicorn")
    from tl_traits.app.serve.dashboard import build_dashboard
    from tl_traits.app.serve.inputs import Limits
    from tl_traits.app.serve.server import check_port, exposure_warning, run_server

    check_port(host, port)  # a port in use fails before the model loads
    warning = exposure_warning(host)
    if warning:
        typer.echo(f"warning: {warning}", err=True)
    limits = Limits(
        max_new_tokens=max_new_tokens,
        max_prompt_chars=max_prompt_chars,
        default_new_tokens=min(Limits.default_new_tokens, max_new_tokens),
    )
    with stages_for(quiet, False) as stages:
        dashboard = build_dashboard(
            sources or [Path("out")], model_name=model, kind=kind, limits=limits, judges=judges, stages=stages
        )
    shown = f"[{host}]" if ":" in host else host
    typer.echo(
        f"dashboard: http://{shown}:{port}/ ({len(dashboard.catalog.vectors)} vectors, "
        f"{len(dashboard.catalog.prompt_sets)} prompt sets; Ctrl-C stops it)"
    )
    run_server(dashboard, host, port)
