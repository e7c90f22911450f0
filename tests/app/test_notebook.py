"""docs/quickstart.ipynb: stored clean, and runs top to bottom on the embedded model (nbclient)."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "docs" / "quickstart.ipynb"
TAGS = ("report", "steering", "evaluation", "projections", "token-view")


def _tagged(nb, tag: str):
    cells = [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"expected one cell tagged {tag!r} in {NOTEBOOK.name}, found {len(cells)}"
    return cells[0]


def _stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


def _data(cell, mime: str) -> list[str]:
    return [o["data"][mime] for o in cell.outputs if mime in o.get("data", {})]


def test_notebook_is_stored_without_outputs():
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    assert nb.metadata["kernelspec"]["name"] == "python3"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {i} is stored with outputs"
            assert cell.execution_count is None, f"cell {i} is stored with an execution count"
    for tag in TAGS:
        _tagged(nb, tag)


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")

    # Pin the "python3" kernel to this interpreter: JUPYTER_PATH is searched before the user's
    # and the system's kernelspecs, so a python3 kernel installed elsewhere cannot take over.
    spec_dir = tmp_path / "jupyter" / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (test)",
        "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the kernel inherits this process's environment
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    workdir = tmp_path / "cwd"
    workdir.mkdir()

    nb = nbformat.read(NOTEBOOK, as_version=4)
    check = nbformat.v4.new_code_cell("import sys\nprint(sys.prefix)\nprint(sys.executable)")
    check.metadata["tags"] = ["kernel-check"]
    nb.cells.insert(0, check)

    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    )
    client.execute()  # a cell that raises fails the test with CellExecutionError (its traceback)

    prefix, executable = _stdout(_tagged(nb, "kernel-check")).split("\n")[:2]
    assert os.path.realpath(prefix) == os.path.realpath(sys.prefix), (
        f"the kernel ran {executable} (prefix {prefix}), not this interpreter {sys.executable}"
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

    table = "".join(_data(_tagged(nb, "evaluation"), "text/plain"))
    assert "coherent_delta" in table, f"no evaluation table:\n{table}"

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
    assert not re.search(r"""(\bfrom\s*|\bimport\s*\(?\s*)["']https?://""", page), "the page imports a module from the web"
    assert not re.search(r"""<link\b[^>]*\bhref\s*=\s*["']?https?://""", page, flags=re.I), "the page links a remote file"

    assert list(workdir.iterdir()) == [], f"the notebook wrote into its working folder: {list(workdir.iterdir())}"
