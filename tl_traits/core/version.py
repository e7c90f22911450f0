"""The installed tl-traits version, recorded in every artifact's metadata."""

from __future__ import annotations

from importlib import metadata


def package_version() -> str:
    try:
        return metadata.version("tl-traits")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare source tree
        return "unknown"
