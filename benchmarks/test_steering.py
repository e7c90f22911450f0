"""Steering benchmarks: every method (and prompting) on every trait both ways, steered generation speed, batched sweep speed."""

from __future__ import annotations

import statistics

import pytest
from timing import interleaved

import tl_traits as tt
from tl_traits.judging.defaults import default_judges
from tl_traits.core.generation import generate_tokens
from tl_traits.steering.method_comparison import compare_steering

STEER_DEPTH = 0.4  # mid depth steers best; one layer keeps the full comparison within budget
COMPARE_QUESTIONS = 8
COMPARE_STEPS = 4
COMPARE_TOKENS = 32


@pytest.fixture(scope="module")
def joy_vector(bench_model):
    return tt.extract(bench_model, "emotion/joy", "mean_diff", position="response[:]", progress=False)["mean_diff"]


@pytest.mark.full
def test_steering_by_method(bench_model, bench_traits, trait_vectors, results):
    """Every method (and prompting) steered toward and away from every trait, judged the same way."""
    layer = round(STEER_DEPTH * (bench_model.cfg.n_layers - 1))
    rows, summary = [], {}
    for trait in bench_traits:
        vecs = trait_vectors(trait)
        for direction in (1, -1):
            found = compare_steering(
                bench_model, vecs, trait, layer, judges=default_judges(trait), direction=direction,
                subset=COMPARE_QUESTIONS, steps=COMPARE_STEPS, max_new_tokens=COMPARE_TOKENS,
            )
            for m in found:
                rows.append({"trait": trait, **m.row()})
        for method in vecs.methods:
            auroc = vecs[method].metrics["auroc"]
            entry = summary.setdefault(method, {"AUROC": [], "layer AUROC": []})
            entry["AUROC"].append(float(auroc[vecs[method].layers.index(vecs[method].best_layer("auroc"))]))
            entry["layer AUROC"].append(float(auroc.mean()))
    results.add(
        "Steering by method",
        rows,
        note=f"Layer {layer} ({STEER_DEPTH:.0%} depth) for every method; {COMPARE_QUESTIONS} steering questions per trait, "
        f"{COMPARE_TOKENS} new tokens, greedy; adaptive search in lockstep ({COMPARE_STEPS} steps from 0.7 x the "
        "layer's mean activation norm, x1.3 while coherent, else x0.85); coherent = coherence >= 70. Judges: VADER "
        "(joy), refusal (refusal), embedding similarity to the HIGH/LOW descriptions (sycophancy, formality); "
        "coherence = the fitted coherence judge; relevance = embedding similarity of answer and question. The "
        "search keeps the run with the best steering score (harmonic mean of trait, coherence, relevance per "
        "response). prompting = no vector, a system prompt asking for the HIGH (toward) or LOW (away) description. "
        "coherent delta = trait score of the best coherent run minus the unsteered baseline, signed toward the "
        "requested direction.",
    )
    table = [{
        "method": method,
        "mean best AUROC": _avg(summary.get(method, {}).get("AUROC", [])),
        "mean AUROC (all layers)": _avg(summary.get(method, {}).get("layer AUROC", [])),
        **steering,
    } for method, steering in steering_summary(rows).items()]
    results.add(
        "Method comparison (summary)",
        table,
        note=f"Means over the {len(bench_traits)} traits: held-out AUROC (response[:]) at each method's best layer "
        "and averaged over all layers (how robust the direction is to the layer choice), and the steering table "
        f"above at layer {layer}. {SUMMARY_NOTE}",
    )
    joy = next((r for r in rows if r["trait"] == "emotion/joy" and r["method"] == "mean_diff" and r["direction"] == "toward"), None)
    if joy is not None:  # the harness check: mean_diff moves joy's trait score (2026-12-03: 79 -> 96). Coherence is
        # not asserted: with the calibrated judge no vector run of this 4-step search (strengths 0.7 down to 0.43) is coherent
        assert (joy["steered trait"] or 0) - (joy["baseline trait"] or 0) >= 5, joy


SUMMARY_NOTE = (
    "Steering score: per response the harmonic mean of trait (in the asked direction), coherence and relevance "
    "(0-100), averaged over the questions; the best run of the search; score gain = that minus the unsteered "
    "answers' score (prompting: minus the same unsteered answers). Coherent delta (the older headline) beside it; "
    "a method with no coherent run counts 0 there."
)


def steering_summary(rows: list[dict]) -> dict[str, dict[str, float | None]]:
    """Per method, means over traits of the steering score, its gain over unsteered, coherent delta, coherence, relevance."""
    by_method: dict[str, dict[str, list]] = {}
    for row in rows:
        entry = by_method.setdefault(row["method"], {})
        way = row["direction"]
        score, base = row["steering score"], row["baseline score"]
        entry.setdefault(f"score {way}", []).append(score)
        entry.setdefault(f"gain {way}", []).append(None if score is None or base is None else score - base)
        entry.setdefault(f"delta {way}", []).append(row["coherent delta"] or 0.0)
        entry.setdefault("coherence", []).append(row["coherence"])
        entry.setdefault("relevance", []).append(row["relevance"])
    return {method: {
        "mean steering score toward": _avg(v.get("score toward", [])),
        "mean score gain toward": _avg(v.get("gain toward", [])),
        "mean steering score away": _avg(v.get("score away", [])),
        "mean score gain away": _avg(v.get("gain away", [])),
        "mean coherent delta toward": _avg(v.get("delta toward", [])),
        "mean coherent delta away": _avg(v.get("delta away", [])),
        "mean coherence": _avg(v.get("coherence", [])),
        "mean relevance": _avg(v.get("relevance", [])),
    } for method, v in by_method.items()}


def _avg(values) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


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
