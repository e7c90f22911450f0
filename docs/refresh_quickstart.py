"""Run docs/quickstart.ipynb top to bottom on this interpreter and store it with its outputs (`make notebook`).

Kept: stdout and displayed results. Dropped: stderr (progress bars, warnings), whose text
depends on the terminal and the machine. tests/app/test_notebook.py runs the same function and
checks that the stored outputs are the current ones.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parent / "quickstart.ipynb"


def execute(path: Path = NOTEBOOK, *, timeout: int = 900, first_cell: str | None = None):
    """The executed notebook (an nbformat node), run in a scratch folder by a kernel on this interpreter.

    first_cell: code run before the notebook's own cells (a test's probe), tagged "first-cell"."""
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    if first_cell is not None:
        probe = nbformat.v4.new_code_cell(first_cell)
        probe.metadata["tags"] = ["first-cell"]
        nb.cells.insert(0, probe)
    with tempfile.TemporaryDirectory() as tmp:
        # JUPYTER_PATH is searched before the user's and the system's kernelspecs, so this python3 wins
        spec_dir = Path(tmp) / "jupyter" / "kernels" / "python3"
        spec_dir.mkdir(parents=True)
        (spec_dir / "kernel.json").write_text(
            json.dumps(
                {
                    "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                    "display_name": "Python 3",
                    "language": "python",
                }
            )
        )
        workdir = Path(tmp) / "cwd"
        workdir.mkdir()
        saved = {k: os.environ.get(k) for k in ("JUPYTER_PATH", "HF_HUB_OFFLINE", "TOKENIZERS_PARALLELISM")}
        os.environ.update(JUPYTER_PATH=str(Path(tmp) / "jupyter"), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
        try:
            nbclient.NotebookClient(
                nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
            ).execute()
        finally:
            for key, value in saved.items():
                os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
        written = sorted(p.name for p in workdir.iterdir())
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and o.name == "stderr")]
    nb.metadata["tl_traits_scratch_files"] = written  # what the notebook left in its working folder (should be none)
    return nb


def main() -> None:
    import nbformat

    nb = execute()
    if nb.metadata.pop("tl_traits_scratch_files"):
        raise SystemExit("the notebook wrote into its working folder; it must use temp folders")
    text = nbformat.writes(nb)
    tmp = NOTEBOOK.with_suffix(".ipynb.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(NOTEBOOK)
    print(f"stored {NOTEBOOK} with its outputs")


if __name__ == "__main__":
    main()
