"""`tl-traits serve` against `tt.generate` on the same prompt, in one process: time to the first streamed token and
tokens/s streamed over HTTP (uvicorn on 127.0.0.1, two traits projected per token), each as a ratio; and 20
concurrent chats against generating the same 20 answers one after another."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tl_traits as tt
from tl_traits.core.generation import generate_tokens

pytest.importorskip("httpx", reason="the dashboard's benchmark streams with httpx (dev extra)")
pytest.importorskip("uvicorn", reason="the dashboard needs the [serve] extra (starlette, uvicorn)")

PROMPT = "Tell me about the history of Paris."
TRAITS = ("emotion/joy", "alignment/refusal")
SECTION = "dashboard streaming (tl-traits serve)"
CLIENT = Path(__file__).with_name("serve_client.py")


@pytest.fixture(scope="module")
def served(bench_model, tmp_path_factory):
    """A dashboard over mean_diff vectors of two traits (12 pairs, layers 9 and 14), served from a thread."""
    from tl_traits.app.serve.dashboard import build_dashboard
    from tl_traits.app.serve.server import BackgroundServer

    folder = tmp_path_factory.mktemp("serve_vectors")
    files = []
    for trait in TRAITS:
        vecs = tt.extract(bench_model, tt.load_trait(trait).limit(12), ["mean_diff"], layers=[9, 14], progress=False)
        files.append(vecs.save(folder / f"{trait.replace('/', '-')}.safetensors"))
    dashboard = build_dashboard(files, model=bench_model, judges=False)
    with BackgroundServer(dashboard) as server:
        yield dashboard, server


def chats(url: str, prompts: list[str], tokens: int, vectors: list[str]) -> list[dict]:
    """Stream the chats from a client in its own process (`serve_client.py`), as a browser would."""
    args = json.dumps({"url": url, "prompts": prompts, "tokens": tokens, "vectors": vectors})
    done = subprocess.run([sys.executable, str(CLIENT), args], capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def measure(model, server, vectors: list[str], tokens: int, repeats: int) -> dict:
    """Interleaved, so drift hits each alike: generate 1 token, generate `tokens`, stream `tokens`."""
    one, full, streamed = [], [], []
    for _ in range(repeats):
        t = time.perf_counter()
        tt.generate(model, [PROMPT], max_new_tokens=1)
        one.append(time.perf_counter() - t)
        t = time.perf_counter()
        text = tt.generate(model, [PROMPT], max_new_tokens=tokens)[0]
        full.append(time.perf_counter() - t)
        streamed.append(chats(server.url, [PROMPT], tokens, vectors)[0])
    ids = generate_tokens(model, [PROMPT], max_new_tokens=tokens)[0]
    n = len([t for t in ids if t != model.tokenizer.eos_token_id])
    assert all(s["tokens"] == n and s["text"] == text for s in streamed)  # the same answer, streamed
    ttft = statistics.median(s["first"] for s in streamed)
    stream_rate = statistics.median(s["tokens"] / s["total"] for s in streamed)
    generate_rate = n / statistics.median(full)
    return {
        "new tokens": n,
        "repeats": repeats,
        "first token, streamed (s)": ttft,
        "generate, 1 token (s)": statistics.median(one),
        "first token ratio (streamed / generate 1 token)": ttft / statistics.median(one),
        "tokens/s streamed (end to end)": stream_rate,
        "tokens/s generate": generate_rate,
        "tokens/s ratio (streamed / generate)": stream_rate / generate_rate,
        "goal: first token < 1 s, ratio >= 0.9": bool(ttft < 1.0 and stream_rate / generate_rate >= 0.9),
    }


def concurrent(model, server, vectors: list[str], n_chats: int, tokens: int) -> dict:
    prompts = [f"Tell me one thing about the number {i}." for i in range(n_chats)]
    t = time.perf_counter()
    for p in prompts:
        tt.generate(model, [p], max_new_tokens=tokens)
    one_by_one = time.perf_counter() - t
    t = time.perf_counter()
    results = chats(server.url, prompts, tokens, vectors)
    wall = time.perf_counter() - t
    firsts = sorted(r["first"] for r in results)
    return {
        "concurrent chats": n_chats,
        "new tokens each": tokens,
        "completed": sum(r["tokens"] > 0 for r in results),
        "wall (s)": wall,
        "generate one by one (s)": one_by_one,
        "wall ratio (served / one by one)": wall / one_by_one,
        "first token median (s)": statistics.median(firsts),
        "first token last in queue (s)": firsts[-1],
        "tokens/s served (all chats)": sum(r["tokens"] for r in results) / wall,
    }


NOTE = (
    "Streamed: POST /api/chat over HTTP to uvicorn on 127.0.0.1 (the server in this process, the client in its own, as "
    "a browser is), greedy, two traits projected per token (joy and refusal mean_diff at their best layer), timed at "
    "the client from sending the request to each token event; generate: tt.generate on the same prompt and tokens. The "
    "stream runs one forward more than generate (the last token's residual) and sends two events per token. "
    "Concurrent chats queue on the one model: the wall time against generating the same answers one by one shows "
    "what the server adds."
)


@pytest.mark.quick
def test_serve_streams_about_as_fast_as_generate_quick(bench_model, served, results):
    dashboard, server = served
    row = measure(bench_model, server, list(dashboard.catalog.vectors), tokens=16, repeats=1)
    assert row["new tokens"] >= 1 and row["first token, streamed (s)"] > 0
    results.add(SECTION + ", quick", row, note=NOTE)


@pytest.mark.full
def test_serve_streams_about_as_fast_as_generate(bench_model, served, results):
    dashboard, server = served
    vectors = list(dashboard.catalog.vectors)
    results.add(SECTION, measure(bench_model, server, vectors, tokens=64, repeats=3), note=NOTE)
    load = concurrent(bench_model, server, vectors, n_chats=20, tokens=32)
    assert load["completed"] == 20
    results.add(SECTION + ": 20 concurrent chats", load, note=NOTE)
