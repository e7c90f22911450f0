"""Extraction benchmarks: per-method detection on bundled traits, capture cost and memory, probe speed."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from sanity import check_detection
from timing import interleaved

import tl_traits as tt
from tl_traits.core.capture import as_examples, capture, example_order

# response[:] is the target position; response[:5] (the first words only) is reported beside it.
POSITIONS = ("response[:]", "response[:5]")


@pytest.mark.full
def test_detection_per_method(bench_model, bench_traits, bench_methods, trait_vectors, results):
    """Best-layer held-out AUROC and Cohen's d for every trait x method; the sanity layer checks them."""
    rows = []
    for trait_name in bench_traits:
        for position in POSITIONS:
            if position == "response[:]":
                vecs = trait_vectors(trait_name)
            else:
                vecs = tt.extract(bench_model, trait_name, bench_methods, position=position, seed=0, progress=False)
            rows += detection_rows(vecs, trait_name, position)
    results.add(
        "Detection (held-out, 20% split)",
        rows,
        note="hook resid_post, all layers; best layer picked by held-out AUROC (ties: larger d). Sanity: "
        "random_baseline's mean AUROC over layers (averaged over traits) within 0.35-0.65, every real method's "
        "best AUROC above random_baseline's, no NaN.",
    )
    check_detection(rows)
    joy = {r["method"]: r for r in rows if r["trait"] == "emotion/joy" and r["position"] == "response[:]"}
    if "mean_diff" in joy:
        assert joy["mean_diff"]["AUROC"] >= 0.95


def detection_rows(vecs, trait_name: str, position: str) -> list[dict]:
    best_mean_diff = vecs.best("mean_diff") if "mean_diff" in vecs.methods else None
    rows = []
    for name in vecs.methods:
        vec = vecs[name]
        layer = vec.best_layer("auroc")
        i = vec.layers.index(layer)
        rows.append(
            {
                "trait": trait_name,
                "position": position,
                "method": name,
                "best layer": layer,
                "AUROC": float(vec.metrics["auroc"][i]),
                "accuracy": float(vec.metrics["accuracy"][i]),
                "Cohen's d": float(vec.metrics["cohens_d"][i]),
                "mean AUROC (all layers)": float(vec.metrics["auroc"].mean()),
                "AUROC at mean_diff's best layer": (
                    float(vec.metrics["auroc"][vec.layers.index(best_mean_diff)]) if best_mean_diff is not None else ""
                ),
            }
        )
    return rows


def _batches(model, items, batch_size):
    order = example_order(items)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        yield tt.prepare_inputs(model, [items[i].messages() for i in rows], [items[i].response for i in rows])


@pytest.mark.full
def test_capture_cost_vs_plain_forward(bench_model, results):
    """All-layer capture at response[:] vs a plain forward and vs run_with_cache of everything."""
    items, _ = as_examples(tt.load_trait("emotion/joy"))
    items = items[:64]
    batch_size = 16
    model = bench_model
    device = next(model.parameters()).device

    @torch.no_grad()
    def plain():
        for b in _batches(model, items, batch_size):
            model(b.input_ids.to(device), attention_mask=b.attention_mask.to(device))

    @torch.no_grad()
    def cache_everything():
        for b in _batches(model, items, batch_size):
            model.run_with_cache(b.input_ids.to(device), attention_mask=b.attention_mask.to(device))

    def ours():
        capture(model, items, position="response[:]", batch_size=batch_size, progress=False)

    plain()  # warm-up
    med, _, _ = interleaved(
        {"plain forward": plain, "capture (30 layers)": ours, "run_with_cache (all hooks)": cache_everything}
    )
    ratio = med["capture (30 layers)"] / med["plain forward"]
    results.add(
        "Capture cost",
        [
            {"variant": k, "median s (64 examples, batch 16)": v, "x plain forward": v / med["plain forward"]}
            for k, v in med.items()
        ],
        note="Same batches for every variant, 3 interleaved repeats, median. Target: capture <= 1.15x plain forward.",
    )
    assert ratio <= 1.15, f"capture costs {ratio:.2f}x a plain forward"


_MEMORY_PROBE = textwrap.dedent(
    """
    import gc, json, os, sys, threading, time
    os.environ["HF_HUB_OFFLINE"] = "1"
    import tl_traits as tt
    from tl_traits.core.capture import as_examples, capture

    def rss_mib():
        with open("/proc/self/status") as fh:
            return next(int(l.split()[1]) for l in fh if l.startswith("VmRSS")) / 1024

    model = tt.load_model()
    items, _ = as_examples(tt.load_trait("emotion/joy"))
    n = int(sys.argv[1])
    items = (items * (n // len(items) + 1))[:n]
    gc.collect()
    before, peak, done = rss_mib(), [0.0], threading.Event()

    def sample():  # the load's own peak hides capture in ru_maxrss, so sample the current RSS
        while not done.is_set():
            peak[0] = max(peak[0], rss_mib())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    acts = capture(model, items, position="response[:]", batch_size=16, progress=False)
    done.set()
    sampler.join()
    print(json.dumps({"n": n, "rss before capture mib": before, "peak rss during capture mib": peak[0],
                      "result_mib": acts.acts.numel() * 4 / 2**20}))
    """
)


@pytest.mark.full
def test_capture_memory_does_not_grow_with_examples(results):
    """Peak RSS of a fresh process capturing n examples: growth stays near the result's own size."""
    rows = []
    for n in (48, 384):
        out = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(n)], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    for r in rows:
        r["capture growth mib"] = r["peak rss during capture mib"] - r["rss before capture mib"]
    small, large = rows
    full_cache_mib = 384 * 30 * 60 * 576 * 4 / 2**20  # what a kept cache of ~60-token examples would need
    results.add(
        "Capture memory",
        rows,
        note="RSS sampled every 5 ms in a fresh process. A full cache of the 384 examples would need about "
        f"{full_cache_mib:.0f} MiB.",
    )
    extra = large["capture growth mib"] - small["capture growth mib"]
    assert extra <= (large["result_mib"] - small["result_mib"]) + 64, f"capture memory grew by {extra:.0f} MiB"


@pytest.mark.quick
def test_probe_fit_speed_vs_sklearn(results):
    from probe_speed import measure_probe_speed

    m = measure_probe_speed()
    results.add(
        "Probe fit speed",
        [m],
        note="All 30 layers, 80+80 examples, d_model 576: one batched torch fit vs a per-layer sklearn "
        "LogisticRegression(C=1) loop.",
    )
    assert m["speedup"] >= 10
    assert abs(m["ours_acc"] - m["sklearn_acc"]) <= 0.01
