"""docs/quickstart.ipynb: stored with its outputs, runs top to bottom on the embedded model (nbclient), and its
stored outputs are current."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "docs" / "quickstart.ipynb"
TAGS = ("report", "steering", "evaluation", "projections", "token-view", "export")


def _tagged(nb, tag: str):
    cells = [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"expected one cell tagged {tag!r} in {NOTEBOOK.name}, found {len(cells)}"
    return cells[0]


def _stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


def _data(cell, mime: str) -> list[str]:
    return [o["data"][mime] for o in cell.outputs if mime in o.get("data", {})]


def _refresh_module():
    spec = importlib.util.spec_from_file_location("refresh_quickstart", NOTEBOOK.with_name("refresh_quickstart.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_notebook_is_stored_with_its_outputs():
    """Stored executed (it renders on GitHub with its results), without stderr or this machine's paths."""
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "a code cell was never run: `make notebook`"
    for tag in TAGS:
        assert _tagged(nb, tag).outputs, f"the {tag!r} cell is stored without outputs: `make notebook`"
    for i, cell in enumerate(code):
        for out in cell.outputs:
            assert not (out.output_type == "stream" and out.name == "stderr"), f"cell {i} stores stderr"
            assert out.output_type != "error", f"cell {i} stores an error"
    text = NOTEBOOK.read_text(encoding="utf-8")
    assert "/root/" not in text and "/tmp/" not in text and str(Path.home()) + "/" not in text


_NUMBER = re.compile(r"[+-]?\d+\.\d+|[+-]?\d+")


def _same_text(stored: str, fresh: str) -> bool:
    """Equal words, and numbers within 0.02 (or 1%): float noise between CPUs, not a change of result."""
    if _NUMBER.sub("#", stored) != _NUMBER.sub("#", fresh):
        return False
    pairs = zip(map(float, _NUMBER.findall(stored)), map(float, _NUMBER.findall(fresh)))
    return all(abs(a - b) <= max(0.02, 0.01 * abs(a)) for a, b in pairs)


@pytest.mark.slow
def test_quickstart_notebook_runs_and_its_stored_outputs_are_current():
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")

    nb = _refresh_module().execute(first_cell="import sys\nprint(sys.prefix)\nprint(sys.executable)")
    # a cell that raises fails the test with CellExecutionError (its traceback)

    prefix, executable = _stdout(_tagged(nb, "first-cell")).split("\n")[:2]
    assert os.path.realpath(prefix) == os.path.realpath(sys.prefix), (
        f"the kernel ran {executable} (prefix {prefix}), not this interpreter {sys.executable}"
    )
    assert nb.metadata.pop("tl_traits_scratch_files") == [], "the notebook wrote into its working folder"

    stored = nbformat.read(NOTEBOOK, as_version=4)
    for tag in ("report", "steering", "projections", "export"):
        old, new = _stdout(_tagged(stored, tag)), _stdout(_tagged(nb, tag))
        assert _same_text(old, new), (
            f"the stored output of the {tag!r} cell is stale; run `make notebook`.\nstored:\n{old}\nnow:\n{new}"
        )

    report = _stdout(_tagged(nb, "report"))
    for method in ("mean_diff", "probe", "random_baseline"):
        assert method in report, f"the report does not mention {method}:\n{report}"

    # Steering: three labelled blocks (unsteered, +, -), every answer non-empty, steering changes them.
    steering = _stdout(_tagged(nb, "steering"))
    blocks = {b.split("\n", 1)[0]: b.split("\n", 1)[1] for b in re.split(r"^== ", steering, flags=re.M)[1:]}
    assert len(blocks) == 3 and "unsteered" in blocks, f"unexpected steering output:\n{steering}"
    answers = {label: re.findall(r"^A: (.*)$", text, flags=re.M) for label, text in blocks.items()}
    for label, texts in answers.items():
        assert len(texts) == 2 and all(t.strip() for t in texts), f"{label}: empty answers:\n{steering}"
        if label != "unsteered":
            assert texts != answers["unsteered"], f"{label} printed the unsteered answers:\n{steering}"

    table = _stdout(_tagged(nb, "evaluation"))
    assert "dev score" in table and "test score" in table and "gain 95% interval" in table, (
        f"no evaluation tables:\n{table}"
    )

    # The steered answers, read back by the monitor, sit on either side: + above -.
    projections = _stdout(_tagged(nb, "projections"))
    means = {label: float(v) for v, label in re.findall(r"^\s*([+-]\d+\.\d+)\s+(.+)$", projections, flags=re.M)}
    plus = [v for k, v in means.items() if re.search(r"strength \+", k)]
    minus = [v for k, v in means.items() if re.search(r"strength -", k)]
    assert len(plus) == len(minus) == 1 and plus[0] > minus[0], f"unexpected projections:\n{projections}"
    assert _data(_tagged(nb, "projections"), "text/html"), "the projections cell shows no table"

    # The token view is inline circuitsvis HTML that needs no network.
    pages = _data(_tagged(nb, "token-view"), "text/html")
    assert len(pages) == 1, "the token-view cell has no text/html output"
    page = pages[0]
    assert "circuits-vis" in page and "coloredtokens" in page.lower(), page[:500]
    assert not re.search(r"<script\b[^>]*\bsrc\s*=", page, flags=re.I), "the page loads a script from elsewhere"
    assert not re.search(r"""(\bfrom\s*|\bimport\s*\(?\s*)["']https?://""", page), (
        "the page imports a module from the web"
    )
    assert not re.search(r"""<link\b[^>]*\bhref\s*=\s*["']?https?://""", page, flags=re.I), (
        "the page links a remote file"
    )
