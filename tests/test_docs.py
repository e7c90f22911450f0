"""The docs stand on their own: every guide indexed, every linked file and named module
real, nothing outside the repo."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = [
    REPO / "README.md",
    *sorted(DOCS.glob("*.md")),
    *sorted((REPO / "plugins").glob("*/README.md")),
    REPO / "benchmarks" / "README.md",
]
FILE_REF = re.compile(r"`((?:[\w.-]+/)*[\w.-]+\.(?:md|py|ipynb|toml))`")
SOURCE_DIRS = ("tl_traits", "plugins", "tests", "benchmarks", "docs", ".ci")
MODULE_REF = re.compile(r"\btl_traits(?:\.\w+)+")


def test_the_index_lists_every_guide() -> None:
    index = (DOCS / "README.md").read_text()
    guides = [p.name for p in DOCS.iterdir() if p.suffix in (".md", ".ipynb") and p.name != "README.md"]
    missing = [g for g in guides if f"`{g}`" not in index]
    assert not missing, f"docs/README.md does not list {missing}"


def test_nothing_points_outside_the_repository() -> None:
    files = PAGES + sorted((REPO / "tl_traits").rglob("*.py")) + sorted((REPO / "plugins").rglob("*.py"))
    outside = [str(f.relative_to(REPO)) for f in files if re.search(r"\.\./shared|DESIGN\.md|STYLE\.md", f.read_text())]
    assert not outside, f"these name files users do not have (../shared, DESIGN.md, STYLE.md): {outside}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_linked_files_exist(page: Path) -> None:
    missing = []
    for ref in FILE_REF.findall(page.read_text()):
        candidates = [REPO / ref, page.parent / ref, DOCS / ref, REPO / "tl_traits" / ref]
        if "/" not in ref and not any(c.exists() for c in candidates):
            # a bare name: any file of that name in the repository (tests, benchmarks, modules)
            candidates += [f for top in SOURCE_DIRS for f in (REPO / top).glob(f"**/{ref}")]  # not .venv: seconds
        if not any(c.exists() for c in candidates) and not ref.startswith(("my_", "your_")):
            missing.append(ref)
    assert not missing, f"{page.relative_to(REPO)} names files that do not exist: {missing}"


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_named_modules_and_objects_exist(page: Path) -> None:
    stale = sorted({ref for ref in MODULE_REF.findall(page.read_text()) if not _resolves(ref.rstrip("."))})
    assert not stale, f"{page.relative_to(REPO)} names modules or objects that do not exist: {stale}"
