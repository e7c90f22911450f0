"""SAE benchmark: the `sae` extractor next to mean_diff and probe at the stored SAE's
layer, and the SAE's own quality."""

from __future__ import annotations

import json

import pytest
from test_steering import BENCH_PROTOCOL, SUMMARY_NOTE, _avg, comparison_rows, log_path, steering_summary

import tl_traits as tt
from tl_traits.core.capture import capture
from tl_traits.core.files import safe_name
from tl_traits.saes.recipe import default_layer
from tl_traits.saes.sae import decompose, load_sae, stored_saes
from tl_traits.steering.method_comparison import compare_steering

RAW = ("mean_diff", "probe")
K_VALUES = (32, 1)  # the default top-k, and a single feature (classic SAE-feature steering)


@pytest.fixture(scope="module")
def stored_sae(bench_model):
    found = stored_saes(str(bench_model.cfg.model_name))
    if not found:
        pytest.skip("no SAE stored for this model: run `make sae` (or `tl-traits train-sae`) first")
    layer = default_layer(bench_model) if default_layer(bench_model) in found else min(found)
    return layer, found[layer], load_sae(found[layer])


@pytest.mark.full
def test_sae_against_raw_directions(bench_model, bench_traits, stored_sae, results, request):
    """Held-out detection and steering both ways at the SAE's layer: sae (k=32, k=1) vs mean_diff and probe."""
    layer, folder, sae = stored_sae
    record = json.loads((folder / "training.json").read_text()) if (folder / "training.json").is_file() else {}
    if record:
        results.add(
            "SAE quality",
            [
                {
                    key: record.get(key)
                    for key in (
                        "hook_name",
                        "d_sae",
                        "k",
                        "n_train_tokens",
                        "train_seconds",
                        "explained_variance",
                        "mean_l0",
                        "dead_fraction",
                        "n_eval_tokens",
                    )
                }
            ],
            note="The SAE `make sae` trained (its training.json): held-out figures.",
        )
    detection, steering, makeup = [], [], []
    for trait in bench_traits:
        acts = capture(bench_model, tt.load_trait(trait), layers=[layer], position="response[:]", progress=False)
        raw = tt.extract(bench_model, trait, list(RAW), layers=[layer], seed=0, progress=False, activations=acts)
        named = {m: raw[m] for m in RAW}
        for k in K_VALUES:
            vec = tt.extract(
                bench_model,
                trait,
                "sae",
                layers=[layer],
                seed=0,
                progress=False,
                activations=acts,
                method_options={"sae": {"saes": {layer: sae}, "k": k}},
            )["sae"]
            named[f"sae (k={k})"] = vec
        for method, vec in named.items():
            detection.append(
                {
                    "trait": trait,
                    "method": method,
                    "AUROC": float(vec.metrics["auroc"][0]),
                    "accuracy": float(vec.metrics["accuracy"][0]),
                    "Cohen's d": float(vec.metrics["cohens_d"][0]),
                    "cosine to mean_diff": float(vec.directions[0] @ named["mean_diff"].directions[0]),
                }
            )
        table = decompose(named["mean_diff"], sae, layer=layer, top=32)
        cosines = [abs(r["cosine"]) for r in table.rows]
        makeup.append(
            {
                "trait": trait,
                "top feature |cosine|": cosines[0],
                "features with |cosine| > 0.2": sum(c > 0.2 for c in cosines),
                "top-32 features (sae k=32)": str(named["sae (k=32)"].metadata["sae"][str(layer)]["features"][:5])
                + "...",
            }
        )
        for direction in (1, -1):
            found = compare_steering(
                bench_model,
                named,
                trait,
                layer,
                direction=direction,
                prompting=False,
                protocol=BENCH_PROTOCOL.with_(test_questions=16),
                log=log_path(request, f"sae-{safe_name(trait)}-{'toward' if direction > 0 else 'away'}"),
            )
            steering += comparison_rows(trait, found)
    results.add(
        "SAE vs raw directions: detection",
        detection,
        note=f"Layer {layer} (the stored SAE's), response[:], held-out 20% split. sae (k=1) is the single "
        "feature whose mean activation differs most between the groups.",
    )
    results.add(
        "SAE vs raw directions: what mean_diff is made of",
        makeup,
        note="decompose(mean_diff, sae): |cosine| between mean_diff and the decoder rows of the SAE's features.",
    )
    results.add(
        "SAE vs raw directions: steering",
        steering,
        note="The dev/test protocol of 'Steering by method' at the SAE's layer only (16 dev and 16 test "
        "questions, no prompting baseline: see that table), every method searched in lockstep.",
    )
    auroc: dict[str, list] = {}
    for row in detection:
        auroc.setdefault(row["method"], []).append(row["AUROC"])
    results.add(
        "SAE vs raw directions (summary)",
        [{"mean AUROC": _avg(auroc.get(row["method"], [])), **row} for row in steering_summary(steering)],
        note=f"Means over the {len(bench_traits)} traits at layer {layer}. {SUMMARY_NOTE}",
    )
    sae_auroc = _avg(auroc["sae (k=32)"])
    assert sae_auroc > 0.6, f"the sae direction detects at chance (mean AUROC {sae_auroc:.2f})"
