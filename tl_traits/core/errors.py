"""The one base class of every tl_traits error (so callers and the CLI's exit codes can tell ours from the rest), the
model-loading and vector errors core modules share, and the count check every `limit=` uses."""

from __future__ import annotations


class TlTraitsError(ValueError):
    """Bad input or a setting that cannot work here; the message names the problem and the fix.

    Every error the project raises derives from it (some also from the built-in a caller may
    expect, e.g. `KeyError` for an unknown plugin). The CLI exits 2 for this family only; any
    other exception is a bug and exits 1.
    """


class ModelLoadError(TlTraitsError, RuntimeError):
    """A model could not be found, fetched or built; the message says what to do."""


class VectorError(TlTraitsError):
    """A vector file that is incomplete or foreign, a vector applied to the wrong model, or arithmetic that
    cannot be done (other models, hooks or units). Defined here so vectors and their arithmetic share it;
    `tl_traits.core.vectors.VectorError` is the same class."""


def check_count(value: int | None, name: str, error: type[TlTraitsError] = TlTraitsError) -> int | None:
    """`value` when it is None (no limit) or a whole number >= 1; 0 and negatives are refused, not read as
    "no limit" or "all but the last"."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise error(f"{name} must be a whole number >= 1 (or None for all), not {value!r}")
    return value


class MissingExtraError(TlTraitsError, ImportError):
    """An optional package a feature needs is not installed; the message is the one line that installs it."""

    def __init__(self, package: str | list[str], extra: str | None = None, install: str | None = None) -> None:
        packages = [package] if isinstance(package, str) else list(package)
        how = install or f"pip install 'tl_traits[{extra}]'"
        what = ("package " if len(packages) == 1 else "packages ") + ", ".join(f"'{p}'" for p in packages)
        super().__init__(
            f"this needs the optional {what}"
            + (f" (the [{extra}] extra)" if extra and not install else "")
            + f": {how}"
        )
        self.package, self.extra = ", ".join(packages), extra
