"""A trial run: `TL_TRAITS_LIMIT=N` cuts every trait set and prompt set to its first N
items, so any script or command can be tried small before the real run (the CLI's `--limit N` does the same)."""

from __future__ import annotations

import os
import warnings

from tl_traits.core.errors import TlTraitsError

ENV = "TL_TRAITS_LIMIT"
_told: set[str] = set()


def trial_limit() -> int | None:
    """N from TL_TRAITS_LIMIT, or None when it is unset or empty; anything but a whole number >= 1 is an error."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise TlTraitsError(f"{ENV}={text!r} is not a whole number >= 1; unset it for full runs, e.g. `unset {ENV}`")
    return int(text)


def trial_size(n: int, what: str) -> int:
    """`n`, or the trial limit when it is smaller (said once per `what`, so a trial never passes for a full run)."""
    limit = trial_limit()
    if limit is None or limit >= n:
        return n
    if what not in _told:
        _told.add(what)
        warnings.warn(
            f"{ENV}={limit}: {what} cut to its first {limit} (of {n}); unset {ENV} for the full run", stacklevel=3
        )
    return limit
