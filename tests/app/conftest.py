"""What the dashboard's tests share: a run folder with awkward rows, the dashboard over it, a live server (each
built only when a test asks for it), and the helpers they import from here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

LONG_PROMPT = "Tell me everything about the sea. " * 150  # 5,100 characters: a picker must not cut it
MARKUP = '<img src=x onerror="window.injected=1"></pre><script>window.injected=2</script>'


@pytest.fixture(scope="session")
def serve_run_dir(tiny_run_dir, tmp_path_factory) -> Path:
    """A copy of the tiny model's `tl-traits run` folder whose request set also holds a 5,100-character prompt and a
    response made of markup."""
    pytest.importorskip("starlette", reason="the dashboard needs the [serve] extra (starlette, uvicorn)")
    out = tmp_path_factory.mktemp("serve_run") / "out"
    shutil.copytree(tiny_run_dir, out)
    path = out / "results" / "requests.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows.append(dict(rows[0], id="long", prompt=LONG_PROMPT, response="A long answer. " * 40, note="benign: long"))
    rows.append(dict(rows[0], id="markup", prompt="Show me <b>markup</b>", response=MARKUP, note="harmful: markup"))
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


@pytest.fixture(scope="session")
def dashboard(serve_run_dir):
    import torch

    from tl_traits.app.serve.dashboard import build_dashboard

    torch.set_num_threads(1)  # as the run that made the folder: the same sums, the same greedy tokens
    return build_dashboard([serve_run_dir])


@pytest.fixture()
def client(dashboard):
    from starlette.testclient import TestClient

    from tl_traits.app.serve.server import make_app

    with TestClient(make_app(dashboard), base_url="http://127.0.0.1") as test_client:
        yield test_client


@pytest.fixture()
def live_server(dashboard):
    pytest.importorskip("uvicorn", reason="the dashboard needs the [serve] extra (starlette, uvicorn)")
    from tl_traits.app.serve.server import BackgroundServer

    with BackgroundServer(dashboard) as server:
        yield server


def events(response) -> list[dict]:
    """The NDJSON events of a finished stream."""
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]
