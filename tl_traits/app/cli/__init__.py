"""The `tl-traits` command line: the typer app, its exit codes and `main()`; the commands live in the modules beside it.

Exit codes: 0 done, 1 an unexpected failure (a bug: rerun with --debug), 2 bad input (a TlTraitsError or a usage
error), 130 interrupted.
"""

from __future__ import annotations

import sys
import warnings

import typer

from tl_traits.app.cli import (
    grids,
    interop,
    job,
    judges,
    monitor,
    plugins,
    poisoning,
    quantization,
    sae,
    serve,
    sweeps,
    vectors,
)
from tl_traits.app.cli.options import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
)
from tl_traits.core.errors import TlTraitsError

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "app", "main", "run_app"]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Trait directions in language models: extract, steer, judge, monitor and report.",
)
_state = {"debug": False}


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show the full traceback on errors.")) -> None:
    _state["debug"] = debug


# in the order `tl-traits --help` lists them
app.command()(job.run)
app.command()(vectors.extract)
app.command()(vectors.steer)
app.command()(vectors.evaluate)
app.command("export-gguf")(interop.export_gguf_command)
app.command()(monitor.monitor)
app.command("quant-study")(quantization.quant_study)
app.command()(poisoning.poison)
app.command()(poisoning.sweep)
app.command("steer-sweep")(grids.steer_sweep)
app.command("quant-sweep")(grids.quant_sweep)
app.command()(sweeps.aggregate)
app.command("train-sae")(sae.train_sae)
app.command()(job.report)
app.command()(serve.serve)
app.command()(plugins.plugins)
app.add_typer(judges.app, name="judges")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning exceptions into one line and a meaningful exit code."""
    sys.exit(run_app(app, argv, debug=lambda: _state["debug"]))


def one_line_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001 - warnings' signature
    """A warning as one readable line: `warning: <message>` (no file name, line number or source line)."""
    return f"warning: {str(message).strip().splitlines()[0] if str(message).strip() else category.__name__}\n"


def run_app(command: typer.Typer, argv: list[str] | None = None, *, debug=lambda: False) -> int:
    """The exit code of one CLI call: the command's own (`typer.Exit(n)`, 130 on Ctrl-C), 2
    for bad input, 1 for a bug."""
    warnings.formatwarning = one_line_warning  # the CLI shows warnings to people, not to programmers
    try:
        code = command(args=argv, standalone_mode=False)  # returns typer.Exit's code instead of exiting
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 - the one place that turns errors into exit codes
        if type(exc).__name__ == "Abort":  # typer's or click's
            code = EXIT_INTERRUPTED
        elif hasattr(exc, "show") and hasattr(exc, "exit_code"):  # click's usage errors (typer may vendor click)
            exc.show()
            return EXIT_BAD_INPUT
        else:
            if debug():
                raise
            bad_input = isinstance(exc, TlTraitsError)  # ours name the problem and the fix; anything else is a bug
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            typer.echo(f"error: {message}" + ("" if bad_input else " (rerun with --debug for the traceback)"), err=True)
            return EXIT_BAD_INPUT if bad_input else EXIT_FAILED
    if code == EXIT_INTERRUPTED:
        typer.echo("interrupted", err=True)
    return code if isinstance(code, int) else EXIT_OK
