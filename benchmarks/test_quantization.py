"""Quantization study on the benchmark model: per backend, cosine to float32, drift and retained steering."""

from __future__ import annotations

import datetime as dt

import pytest

import tl_traits as tt
from tl_traits.quantization.study import quantization_study

QUESTIONS = 16  # dev and test questions each (of the trait's 28 + 28)
NEW_TOKENS = 64
STEER_DEPTHS = (0.3, 0.5)  # the layers each model's search tries, as in the steering comparison


@pytest.mark.full
def test_quantization_study(bench_model, bench_traits, results, results_dir):
    trait = "emotion/joy" if "emotion/joy" in bench_traits else bench_traits[0]
    steer_layers = sorted({round(d * (bench_model.cfg.n_layers - 1)) for d in STEER_DEPTHS})
    study = quantization_study(
        bench_model,
        trait,
        backends=tt.quantizers.names(),
        methods=["mean_diff", "probe"],
        layers="all",
        steering_layers=steer_layers,
        questions=QUESTIONS,
        max_new_tokens=NEW_TOKENS,
    )
    study.figure()  # drawn here so a plotting error fails the benchmark, not the write-out
    stem = f"{dt.date.today().isoformat()}-quantization-{trait.replace('/', '-')}"
    from tl_traits.core.figures import save_figure

    save_figure(study.figure(), results_dir / f"{stem}.png")
    seconds = {r.backend: r.seconds for r in [study.reference, *study.backends]}
    results.add(
        f"Quantization study ({trait})",
        [{**row, "seconds": seconds.get(row["backend"])} for row in study.table()],
        note=f"mean_diff and probe at all layers ({study.layers[0]}-{study.layers[-1]}); cosine of the direction "
        "re-extracted on the quantized model to the float32 one; ref AUROC = float32 vectors read from the quantized "
        f"model's held-out activations; drift = mean |h_q - h| / |h| of resid_post; steering: the float32 "
        f"{study.steer_method} vector steers each model under the dev/test protocol: layer ({study.steering_layers}) "
        f"and strength chosen on {QUESTIONS} dev questions of that model, scored on {QUESTIONS} test questions, "
        f"{NEW_TOKENS} new tokens, judges built on the float32 model; unsteered = that model's own unsteered test "
        "score; score gain = the test steering score (harmonic mean of trait, coherence and relevance) minus it, "
        "paired, with a bootstrap 95% interval; retained = score gain / float32's (empty when float32 gains nothing). "
        f"Plot: {stem}.png. The float32 weights are themselves dequantized "
        "from a Q4_1 GGUF, so this measures re-quantization of those weights.",
    )
    by = {(r["backend"], r["method"]): r for r in study.table() if not r.get("skipped")}
    for backend in ("fp16", "bf16", "int8"):
        if (backend, "mean_diff") in by:
            assert by[(backend, "mean_diff")]["mean_cosine"] >= 0.98, (backend, by[(backend, "mean_diff")])
