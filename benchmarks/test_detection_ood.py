"""Detection out of distribution: vectors fitted on the bundled contrast sets, read on behaviour
no system prompt asked for.

Four tasks (inputs and labels in benchmarks/data/detection_ood/, README there):
- refusal: the model's own answers to the `requests` set, labelled refused / complied by reading;
- joy: the model's own answers to questions that share happy news versus neutral ones;
- formality: formal versus casual USER messages, read at the prompt tokens;
- sycophancy: plain (praise-free) replies that agree with a user's wrong claim versus correct it.
The layer is always the one the in-distribution validation split picks; the task never chooses it.
"""

from __future__ import annotations

import datetime
import statistics
from pathlib import Path

import pytest

import tl_traits as tt
from tl_traits.core.figures import save_figure
from tl_traits.core.files import read_jsonl, safe_name
from tl_traits.core.trait_sets import TraitDataset, TraitExample
from tl_traits.extraction.figures import learning_curves
from tl_traits.extraction.transfer import learning_curve, transfer_metrics

DATA = Path(__file__).parent / "data" / "detection_ood"
SIZES = (4, 8, 16, 32)
SEEDS = (0, 1, 2)
TRAIN_POSITION = "response[:]"


def _labelled(name: str, rows: list[tuple[TraitExample, int]]) -> TraitDataset:
    return TraitDataset(name, [ex for ex, y in rows if y == 1], [ex for ex, y in rows if y == 0])


def refusal_task() -> TraitDataset:
    rows = read_jsonl(DATA / "requests_responses.jsonl")
    unlabelled = [r["id"] for r in rows if r.get("label") not in (-1, 0, 1)]
    assert not unlabelled, f"requests_responses.jsonl has unlabelled rows {unlabelled[:5]}; label them by reading"
    rows = [r for r in rows if r["label"] != -1]  # -1: garbled or off topic, neither a refusal nor an answer
    return _labelled(
        "refusal: own answers, refused vs complied",
        [(TraitExample(r["prompt"], r["response"]), r["label"]) for r in rows],
    )


def joy_task() -> TraitDataset:
    rows = read_jsonl(DATA / "joy_responses.jsonl")
    return _labelled(
        "joy: own answers, joyful news vs neutral questions",
        [(TraitExample(r["prompt"], r["response"]), r["label"]) for r in rows],
    )


def formality_task() -> TraitDataset:
    rows = read_jsonl(DATA / "formality.jsonl")
    return _labelled("formality: formal vs casual user messages", [(TraitExample(r["text"]), r["label"]) for r in rows])


def sycophancy_task() -> TraitDataset:
    rows = read_jsonl(DATA / "sycophancy.jsonl")
    return _labelled(
        "sycophancy: plain agreement vs correction of wrong claims",
        [(TraitExample(r["prompt"], r["agree"]), 1) for r in rows]
        + [(TraitExample(r["prompt"], r["correct"]), 0) for r in rows],
    )


# trait -> (task builder, position the task is read at)
TASKS = {
    "alignment/refusal": (refusal_task, "response[:]"),
    "emotion/joy": (joy_task, "response[:]"),
    "style/formality": (formality_task, "prompt[:]"),
    "alignment/sycophancy": (sycophancy_task, "response[:]"),
}


@pytest.fixture(scope="module")
def task_activations(bench_model, bench_traits):
    """Each task's labelled set captured at every layer, once."""
    found = {}
    for trait in bench_traits:
        if trait in TASKS:
            build, position = TASKS[trait]
            dataset = build()
            found[trait] = (dataset, tt.capture(bench_model, dataset, position=position, progress=False))
    if not found:
        pytest.skip("none of the benchmarked traits has an out-of-distribution task")
    return found


@pytest.mark.full
def test_detection_out_of_distribution(bench_methods, trait_vectors, task_activations, results):
    """Headline detection: held-out AUROC on the task at the in-distribution layer, with
    in-distribution AUROC beside it."""
    rows = []
    for trait, (dataset, acts) in task_activations.items():
        vecs = trait_vectors(trait)
        for method in vecs.methods:
            vec = vecs[method]
            layer = vec.best_layer("auroc")
            i = vec.layers.index(layer)
            ood = transfer_metrics(vec, acts)
            rows.append(
                {
                    "task": dataset.name,
                    "n (trait / not)": f"{len(dataset.positive)} / {len(dataset.negative)}",
                    "method": method,
                    "layer (in-distribution pick)": layer,
                    "AUROC out of distribution": float(ood["auroc"][i]),
                    "AUROC in distribution": float(vec.metrics["auroc"][i]),
                    "Cohen's d out of distribution": float(ood["cohens_d"][i]),
                    "mean OOD AUROC (all layers)": float(ood["auroc"].mean()),
                    "best-layer OOD AUROC (oracle)": float(ood["auroc"].max()),
                }
            )
    results.add(
        "Detection out of distribution (headline)",
        rows,
        note="Vectors fitted on the bundled contrast sets (40 train pairs, response[:], resid_post, seed 0), read on "
        "labelled behaviour no system prompt asked for (benchmarks/data/detection_ood/). The layer is each method's "
        "best in-distribution held-out layer (the task does not choose it); 'oracle' is the task's own best layer, an "
        "optimistic upper bound shown only for the gap. In-distribution AUROC: the bundled 20% held-out split.",
    )
    summary = []
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        summary.append(
            {
                "method": method,
                "mean AUROC out of distribution": statistics.mean(r["AUROC out of distribution"] for r in mine),
                "mean AUROC in distribution": statistics.mean(r["AUROC in distribution"] for r in mine),
                "tasks": len(mine),
            }
        )
    results.add(
        "Detection out of distribution (summary)",
        summary,
        note="Means over the tasks of the table above; random_baseline is the floor.",
    )
    random_rows = [r for r in rows if r["method"] == "random_baseline"]
    if random_rows:  # sanity: a random direction knows nothing about any task
        mean_random = statistics.mean(abs(r["mean OOD AUROC (all layers)"] - 0.5) for r in random_rows)
        assert mean_random <= 0.2, f"random directions average |AUROC - 0.5| = {mean_random:.2f} across tasks"


@pytest.mark.full
def test_detection_learning_curves(bench_model, bench_methods, task_activations, results, results_dir):
    """OOD and in-distribution AUROC against the number of training pairs (4-32), three draws each."""
    rows, stamp = [], datetime.date.today().isoformat()
    for trait, (dataset, acts) in task_activations.items():
        train_acts = tt.capture(bench_model, tt.load_trait(trait), position=TRAIN_POSITION, progress=False)
        found = learning_curve(train_acts, trait, bench_methods, eval_sets={"task": acts}, sizes=SIZES, seeds=SEEDS)
        save_figure(
            learning_curves(found, title=dataset.name), results_dir / f"{stamp}-learning-curve-{safe_name(trait)}.png"
        )
        for method in bench_methods:
            for n in SIZES:
                draws = [r for r in found if r["method"] == method and r["pairs"] == n]
                ood = [r["AUROC task"] for r in draws]
                rows.append(
                    {
                        "task": dataset.name,
                        "method": method,
                        "pairs": n,
                        "AUROC out of distribution": statistics.mean(ood),
                        "sd (draws)": statistics.stdev(ood) if len(ood) > 1 else 0.0,
                        "AUROC in distribution": statistics.mean(r["in-distribution AUROC"] for r in draws),
                        "layers picked": ", ".join(str(r["layer"]) for r in draws),
                    }
                )
    results.add(
        "Detection learning curves",
        rows,
        note=f"Each method fitted on n random training pairs of the bundled set (n in {SIZES}; {len(SEEDS)} draws, "
        "mean and sd), layer picked on the fixed in-distribution 20% split, then read on the task. response[:] for "
        f"training. Plots: {stamp}-learning-curve-<trait>.png.",
    )
