"""The one figure helper every room draws with: save atomically, embed in a page, one legend outside the panels.

Figures are `matplotlib.figure.Figure` objects (no pyplot, no GUI backend); each room keeps its own in its
`figures.py`."""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from tl_traits.core.errors import TlTraitsError
from tl_traits.core.files import atomic_write_bytes

if TYPE_CHECKING:  # figures come from the rooms' figures.py, which need the [report] extra; this module does not
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


DPI = 120
FORMATS = {"png": "image/png", "svg": "image/svg+xml", "pdf": "application/pdf"}


def save_figure(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Write `fig` as PNG, SVG or PDF (by suffix), atomically: rendered in memory, then one rename."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise TlTraitsError(
            f"cannot save a figure as '{path.suffix}'; use one of {', '.join('.' + f for f in FORMATS)}"
        )
    return atomic_write_bytes(path, _render(fig, fmt))


def figure_to_data_uri(fig: Figure, fmt: str = "png") -> str:
    """`data:image/png;base64,...`, for a self-contained HTML page."""
    if fmt not in FORMATS:
        raise TlTraitsError(f"unknown image format '{fmt}'; use one of {', '.join(FORMATS)}")
    return f"data:{FORMATS[fmt]};base64,{base64.b64encode(_render(fig, fmt)).decode('ascii')}"


def img_tag(fig: Figure, alt: str) -> str:
    return f'<img src="{figure_to_data_uri(fig)}" alt="{html.escape(alt)}" style="max-width:100%">'


def _render(fig: Figure, fmt: str) -> bytes:
    buffer = io.BytesIO()
    metadata = {"svg": {"Date": None}, "pdf": {"CreationDate": None}}.get(fmt)  # no timestamps in the file
    fig.savefig(buffer, format=fmt, dpi=DPI, metadata=metadata)
    return buffer.getvalue()


def legend(fig: Figure, axes: Iterable[Axes]) -> None:
    """One legend for the figure, outside the panels, each label once."""
    entries: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if entries:
        fig.legend(list(entries.values()), list(entries), loc="outside right upper", fontsize="small")
