"""Quantization study on the benchmark model: per backend, cosine to float32, drift and retained steering."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

import tl_traits as tt
from tl_traits.quantization.study import quantization_study

QUESTIONS = 8
STEPS = 4
NEW_TOKENS = 32


@pytest.mark.full
def test_quantization_study(bench_model, bench_traits, results, request):
    trait = "emotion/joy" if "emotion/joy" in bench_traits else bench_traits[0]
    study = quantization_study(
        bench_model, trait, backends=tt.quantizers.names(), methods=["mean_diff", "probe"], layers="all",
        questions=QUESTIONS, steps=STEPS, max_new_tokens=NEW_TOKENS,
    )
    out = Path(request.config.getoption("--out"))
    study.figure()  # drawn here so a plotting error fails the benchmark, not the write-out
    stem = f"{dt.date.today().isoformat()}-quantization-{trait.replace('/', '-')}"
    from tl_traits.core.figures import save_figure

    save_figure(study.figure(), out / f"{stem}.png")
    seconds = {r.backend: r.seconds for r in [study.reference, *study.backends]}
    results.add(
        f"Quantization study ({trait})",
        [{**row, "seconds": seconds.get(row["backend"])} for row in study.table()],
        note=f"mean_diff and probe at all layers ({study.layers[0]}-{study.layers[-1]}); cosine of the direction "
        "re-extracted on the quantized model to the float32 one; ref AUROC = float32 vectors read from the quantized "
        f"model's held-out activations; drift = mean |h_q - h| / |h| of resid_post; steering: the float32 "
        f"{study.steer_method} vector on the quantized model, layers {study.steering_layers}, {QUESTIONS} questions, "
        f"{STEPS} search steps, {NEW_TOKENS} new tokens, judges built on the float32 model; baseline = each model's "
        "own unsteered trait score, steered = the best coherent setting's score, coherent delta = steered - baseline; "
        f"score gain = the steering score (harmonic mean of trait, coherence and relevance) over the model's own unsteered score; retained = score gain / float32's at layer {study.reference_steering_layer}. Plot: {stem}.png. The float32 weights are themselves dequantized "
        "from a Q4_1 GGUF, so this measures re-quantization of those weights.",
    )
    by = {(r["backend"], r["method"]): r for r in study.table() if not r.get("skipped")}
    for backend in ("fp16", "bf16", "int8"):
        if (backend, "mean_diff") in by:
            assert by[(backend, "mean_diff")]["mean_cosine"] >= 0.98, (backend, by[(backend, "mean_diff")])
