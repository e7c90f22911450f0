"""The `tl-traits` script's entry point: loads the CLI so that Ctrl-C while it loads exits 130 without a traceback."""

from __future__ import annotations

import sys
from importlib import import_module

EXIT_INTERRUPTED = 130  # as tl_traits.app.cli.options, which this module must not import before the guard


def main() -> None:
    try:
        cli = import_module("tl_traits.app.cli")  # torch, transformers and the commands: a second or two
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    cli.main()
