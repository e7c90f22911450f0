"""Self-contained HTML pages: offline (circuitsvis's script inlined once), inline in a notebook, saved atomically."""

from __future__ import annotations

import functools
import html
import os
import re
from dataclasses import dataclass
from pathlib import Path

from tl_traits.core.extras import require
from tl_traits.core.files import atomic_write_text


@dataclass
class Page:
    """An HTML page that works offline; shows inline in a notebook, `save(path)` writes it atomically."""

    title: str
    body: str

    @property
    def html(self) -> str:
        return (
            "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
            f"<title>{html.escape(self.title)}</title>"
            "<style>body{font-family:sans-serif;margin:2em;max-width:70em}h2{font-size:1.05em;margin-top:2em}"
            ".meta{color:#555;font-size:.9em}</style></head>\n"
            f"<body><h1>{html.escape(self.title)}</h1>\n{self._with_bundle()}\n</body></html>\n"
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        return atomic_write_text(path, self.html)

    def _repr_html_(self) -> str:
        return self._with_bundle()

    def _with_bundle(self) -> str:
        """The body, preceded by the circuitsvis script once if any view needs it (views only call render)."""
        if RENDER_CALL not in self.body:
            return self.body
        return f"<script>{circuitsvis_bundle()}</script>\n{self.body}"


RENDER_CALL = "CircuitsVis.render("
_SOURCE_MAP = re.compile(r"^//# sourceMappingURL=.*$", re.MULTILINE)


def split_local_src(src: str) -> tuple[str, str, str]:
    """circuitsvis's `local_src` is `<div/>` + one module script holding the whole bundle and a render call."""
    opening = src.index("<script")
    body_start = src.index(">", opening) + 1
    call = src.rindex(RENDER_CALL)
    return src[:opening], src[body_start:call], src[call : src.rindex("</script>")]


@functools.lru_cache(maxsize=1)
def circuitsvis_bundle() -> str:
    """circuitsvis's JavaScript (about 1.3 MB), inlined once per page; defines the global `CircuitsVis`."""
    colored_tokens = require("circuitsvis.tokens").colored_tokens

    _, bundle, _ = split_local_src(colored_tokens(["x"], [0.0]).local_src)
    return _SOURCE_MAP.sub("", bundle).replace("</script", "<\\/script")
