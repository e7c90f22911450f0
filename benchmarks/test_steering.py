"""Steering benchmarks: coherent delta for joy both ways, steered generation speed, batched sweep speed."""

from __future__ import annotations

import statistics

import pytest

import tl_traits as tt
from tl_traits.generation import generate_tokens
from timing import interleaved

LAYERS = [6, 8, 10, 12, 14]
QUESTIONS = 12
NEW_TOKENS = 40


@pytest.fixture(scope="module")
def joy_vector(bench_model):
    return tt.extract(bench_model, "emotion/joy", "mean_diff", position="response[:]", progress=False)["mean_diff"]


@pytest.mark.full
@pytest.mark.parametrize("direction", [1, -1])
def test_joy_coherent_delta(bench_model, joy_vector, results, direction):
    """Adaptive search per layer; VADER for the trait, perplexity for coherence (threshold 70)."""
    res = tt.evaluate_steering(
        bench_model, joy_vector, "emotion/joy", layers=LAYERS, judges=["vader", "perplexity"],
        direction=direction, subset=QUESTIONS, steps=6, max_new_tokens=NEW_TOKENS,
    )
    rows = [
        {"direction": "toward joy" if direction > 0 else "away from joy", "baseline VADER": res.baseline_trait,
         "baseline coherence": res.baseline_coherence, **row}
        for row in res.table()
    ]
    results.add(
        "Steering: coherent delta (emotion/joy, mean_diff)",
        rows,
        note=f"{QUESTIONS} held-out steering questions, {NEW_TOKENS} new tokens, greedy; adaptive search "
        "(start 0.7 x base, x1.3 / x0.85, 6 steps); coherent = perplexity-judge coherence >= 70.",
    )
    best = max((r["coherent_delta"] for r in rows if r["coherent_delta"] is not None), default=None)
    assert best is not None and best >= 15, f"best coherent delta {best}"


@pytest.mark.full
def test_steered_generation_speed(bench_model, joy_vector, results):
    prompts = list(tt.load_trait("emotion/joy").questions[:8])

    def plain():
        return generate_tokens(bench_model, prompts, max_new_tokens=32, batch_size=8)

    def steered():
        with tt.steer(bench_model, joy_vector, 10, strength=0.4):
            return generate_tokens(bench_model, prompts, max_new_tokens=32, batch_size=8)

    plain()
    _, times, last = interleaved({"unsteered": plain, "steered (1 layer, KV cache)": steered})
    med = {k: statistics.median(sum(len(t) for t in last[k]) / s for s in v) for k, v in times.items()}
    ratio = med["steered (1 layer, KV cache)"] / med["unsteered"]
    results.add(
        "Steering: generation speed",
        [{"variant": k, "tokens/s": v, "x unsteered": v / med["unsteered"]} for k, v in med.items()],
        note="8 prompts in one batch, 32 new tokens, 3 interleaved repeats, median. Target >= 0.9x.",
    )
    assert ratio >= 0.9


@pytest.mark.full
def test_batched_sweep_vs_sequential(bench_model, joy_vector, results):
    prompts = list(tt.load_trait("emotion/joy").questions[:6])
    settings = [(8, 0.3), (10, 0.4), (12, 0.5), (14, 0.3)]

    def batched():
        return tt.sweep_generate(bench_model, joy_vector, settings, prompts, max_new_tokens=24)

    def sequential():
        out = []
        for layer, strength in settings:
            with tt.steer(bench_model, joy_vector, layer, strength=strength):
                out.append(tt.generate(bench_model, prompts, max_new_tokens=24))
        return out

    med, _, texts = interleaved({"4 settings, one batch": batched, "4 settings, one by one": sequential}, repeats=2)
    speedup = med["4 settings, one by one"] / med["4 settings, one batch"]
    results.add(
        "Steering: batched sweep",
        [{"variant": k, "median s": v} for k, v in med.items()] + [{"variant": "speedup", "median s": speedup}],
        note="6 prompts x 4 (layer, strength) settings, 24 new tokens. Target >= 2x.",
    )
    assert texts["4 settings, one batch"] == texts["4 settings, one by one"]  # same text, greedy
    assert speedup >= 2
