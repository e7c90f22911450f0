"""`python -m tl_traits.app.cli`: the same as the `tl-traits` command."""

from tl_traits.app.cli import main

main()
