"""Trained vectors (bipo, reps) against the fitted ones and prompting, under the steering protocol; their training
cost and their detection in distribution and out of it."""

from __future__ import annotations

import resource
import time
from dataclasses import asdict
from pathlib import Path

import pytest
from test_detection_ood import TASKS
from test_steering import ALIASES, BENCH_PROTOCOL, comparison_rows, log_path, steering_layers_for

import tl_traits as tt
from tl_traits.core.files import safe_name
from tl_traits.extraction.transfer import directions_on
from tl_traits.steering.method_comparison import PROMPTING, compare_steering
from tl_traits.training.vector_training import VectorTraining

TRAINED = ("bipo", "reps")
FITTED = ("mean_diff", "pca_diff", "probe")
TRAINED_DEPTH = 0.5  # by default trained at one layer (14 of 30), the deeper steering layer: minutes per layer


def trained_layers_for(model, request) -> list[int]:
    """--trained-layers, or the one layer at TRAINED_DEPTH."""
    given = request.config.getoption("--trained-layers")
    if given:
        return [int(layer) for layer in given.split(",")]
    return [round(TRAINED_DEPTH * (model.cfg.n_layers - 1))]


def _trained(model, trait: str, layers: list[int], request):
    """bipo and reps for `trait`, trained once: kept under --runs-dir (when given) so a rerun resumes."""
    root = request.config.getoption("--runs-dir")
    path = Path(root) / "trained" / f"{safe_name(trait)}-{'-'.join(map(str, layers))}.safetensors" if root else None
    if path is not None and path.is_file():
        return tt.TraitVectors.load(path), None
    started = time.perf_counter()
    vecs = tt.extract(model, trait, list(TRAINED), layers=layers, seed=0, progress=False)
    seconds = time.perf_counter() - started
    if path is not None:
        vecs.save(path)
    return vecs, seconds


def _out_of_distribution(model, trait: str, vectors: dict, layer: int) -> list[dict]:
    """Each vector's AUROC and Cohen's d on the trait's out-of-distribution task, at `layer`."""
    if trait not in TASKS:
        return []
    build, position = TASKS[trait]
    dataset = build()
    acts = tt.capture(model, dataset, layers=[layer], position=position, progress=False)
    rows = []
    for method, vec in vectors.items():
        found = directions_on(vec.direction(layer)[None], [layer], acts)
        rows.append(
            {
                "trait": trait,
                "task": dataset.name,
                "method": method,
                "layer": layer,
                "OOD AUROC": float(found["auroc"][0]),
                "Cohen's d": float(found["cohens_d"][0]),
            }
        )
    return rows


def _defaults() -> str:
    return ", ".join(f"{k} {v}" for k, v in asdict(VectorTraining()).items() if k not in ("objective", "seed"))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


@pytest.mark.full
def test_trained_vectors(bench_model, bench_traits, trait_vectors, results, results_dir, request):
    """bipo and reps at the steering layers: training cost, held-out detection, and steering toward and away, each
    with its setting chosen on dev, paired on the test half against unsteered, prompting and the best fitted
    method (chosen on dev among mean_diff, PCA and probe, from the same protocol's run)."""
    layers = steering_layers_for(bench_model)
    trained_layers = trained_layers_for(bench_model, request)
    at = ", ".join(map(str, trained_layers))
    cost, detection, steering, verdicts = [], [], [], []
    for trait in bench_traits:
        before = _peak_mb()
        trained, seconds = _trained(bench_model, trait, trained_layers, request)
        for method in TRAINED:
            vec = trained[method]
            for i, layer in enumerate(vec.layers):
                record = vec.metadata["training"][str(layer)]
                cost.append(
                    {
                        "trait": trait,
                        "method": method,
                        "layer": layer,
                        "seconds": record["seconds"],
                        "pairs": record["pairs"],
                        "epochs": record["epochs"],
                        "norm": record["norm"],
                        "final loss": record["loss_by_epoch"][-1],
                        "train pairs won at +v": record["accuracy"]["toward"],
                        "won at -v": record["accuracy"]["away"],
                        "won unsteered": record["accuracy"]["unsteered"],
                    }
                )
                detection.append(
                    {
                        "trait": trait,
                        "method": method,
                        "layer": layer,
                        "AUROC": float(vec.metrics["auroc"][i]),
                        "accuracy": float(vec.metrics["accuracy"][i]),
                    }
                )
        cost.append(
            {
                "trait": trait,
                "method": "both, all layers",
                "seconds": round(seconds, 1) if seconds is not None else "(trained in an earlier run)",
                "peak memory MB (process)": round(_peak_mb(), 0),
                "memory added MB": round(_peak_mb() - before, 0),
            }
        )
        fitted = trait_vectors(trait)
        for direction in (1, -1):
            way = "toward" if direction > 0 else "away"
            base = compare_steering(  # the method comparison's own run: its log resumes when --runs-dir has it
                bench_model,
                {m: fitted[m] for m in fitted.methods if m not in ALIASES},
                trait,
                layers,
                direction=direction,
                protocol=BENCH_PROTOCOL,
                log=log_path(request, f"{safe_name(trait)}-{way}"),
            )
            mine = compare_steering(
                bench_model,
                {m: trained[m] for m in TRAINED},
                trait,
                trained_layers,
                direction=direction,
                protocol=BENCH_PROTOCOL,
                prompting=False,
                log=log_path(request, f"trained-{safe_name(trait)}-{way}-l{'-'.join(map(str, trained_layers))}"),
            )
            # a group with no coherent dev run has no outcome (on a tiny random model, none has)
            present = [m for m in FITTED if m in base.outcomes]
            best_fitted = max(present, key=lambda m: base.outcomes[m].chosen.answers.score or -1.0) if present else None
            rows = [{**row, "trained at": at} for row in comparison_rows(trait, mine)]
            for row in rows:
                outcome = mine.outcomes[row["method"]]
                for label, other in (
                    ("vs prompting", base.outcomes.get(PROMPTING)),
                    ("vs best fitted", base.outcomes.get(best_fitted) if best_fitted else None),
                ):
                    gap = outcome.gap_to(other) if other is not None else None
                    row.update(
                        {
                            label: gap[0] if gap else None,
                            f"{label} 95% low": gap[1] if gap else None,
                            f"{label} 95% high": gap[2] if gap else None,
                        }
                    )
                fitted_outcome = base.outcomes[best_fitted] if best_fitted else None
                row["best fitted (dev)"] = fitted_outcome.chosen.label if fitted_outcome else None  # names the method
                row["best fitted gain"] = (fitted_outcome.gain() or [None])[0] if fitted_outcome else None
            if not rows:
                continue
            steering += rows
            best = max(rows, key=lambda r: r["dev score"] or -1.0)  # the better trained method, chosen on dev
            verdicts.append(
                {
                    k: best[k]
                    for k in (
                        "trait",
                        "direction",
                        "method",
                        "trained at",
                        "setting (dev)",
                        "gain",
                        "gain 95% low",
                        "gain 95% high",
                        "best fitted (dev)",
                        "best fitted gain",
                        "vs best fitted",
                        "vs best fitted 95% low",
                        "vs best fitted 95% high",
                        "vs prompting",
                        "vs prompting 95% low",
                        "vs prompting 95% high",
                        "trait change",
                        "coherence change",
                    )
                }
                | {
                    "beats unsteered": (best["gain 95% low"] or -1) > 0,
                    "beats best fitted": (best["vs best fitted 95% low"] or -1) > 0,
                    "beats prompting": (best["vs prompting 95% low"] or -1) > 0,
                }
            )
    assert all(r["seconds"] < 1200 for r in cost if "layer" in r)
    sections = {
        "training cost": (
            cost,
            f"bipo and reps (the library's defaults: {_defaults()}) trained on each trait set's train split (80% of "
            f"pairs) at each row's layer (by default the one at {TRAINED_DEPTH:.0%} depth), 2 CPU cores; seconds per "
            "trait per layer. 'pairs won': the share of training pairs whose wanted side (positive at +v, negative "
            "at -v) has the higher likelihood per token. Memory: the benchmark process's peak resident set.",
        ),
        "detection (held-out split)": (
            detection,
            "The trained directions read as detectors on the held-out 20% of each trait set.",
        ),
        "steering (test half)": (
            steering,
            "The protocol of 'Steering by method' (strength chosen on 16 dev questions, 64 tokens, greedy, the test "
            "half scored), for bipo and reps, each choosing among the layers it was trained at ('trained at'; blank: "
            f"the default, the layer at {TRAINED_DEPTH:.0%} depth only; the fitted methods chose among {layers}). "
            "'vs best fitted' is paired on the same test questions against the fitted method (mean_diff, PCA, probe) "
            "with the best dev score in the method comparison's run; 'vs prompting' against that run's prompting "
            "answers.",
        ),
        "verdict per trait (chosen on dev)": (
            verdicts,
            "Per trait and direction, the trained method (bipo or reps) with the better dev score; 'beats' = the "
            "paired test-half difference's 95% interval lies above 0.",
        ),
    }
    for name, (rows, note) in sections.items():  # a run over some --traits keeps the newest earlier rows of the others
        section = f"Trained vectors: {name}"
        results.add(section, results.carry_earlier(results_dir, section, rows), note=note)


@pytest.mark.full
def test_trained_vectors_out_of_distribution(bench_model, bench_traits, trait_vectors, results, results_dir, request):
    """bipo and reps as detectors on the four out-of-distribution tasks, beside the fitted methods at the same layer
    (the trained vectors come from --runs-dir when test_trained_vectors trained them there)."""
    layer = round(TRAINED_DEPTH * (bench_model.cfg.n_layers - 1))
    rows = []
    for trait in bench_traits:
        trained, _ = _trained(bench_model, trait, [layer], request)
        fitted = trait_vectors(trait)
        vectors = {m: trained[m] for m in TRAINED} | {m: fitted[m] for m in FITTED if m in fitted.methods}
        rows += _out_of_distribution(bench_model, trait, vectors, layer)
    trained_auroc = [r["OOD AUROC"] for r in rows if r["method"] in TRAINED]
    assert not trained_auroc or sum(trained_auroc) / len(trained_auroc) > 0.5, "trained vectors read tasks backwards"
    section = "Trained vectors: detection out of distribution"
    rows = results.carry_earlier(results_dir, section, rows)
    results.add(
        section,
        rows,
        note=f"The out-of-distribution tasks of 'Detection out of distribution' (labelled behaviour no system "
        f"prompt asked for), read at layer {layer} for the trained and the fitted vectors alike (that "
        "benchmark reads each fitted method at its own best in-distribution layer instead).",
    )
