"""Judge calibration: every bundled judge against the reader's ratings, on the held-out half of the calibration set."""

from __future__ import annotations

import pytest

from tl_traits.judging.calibration import calibrate

TRAITS = ("emotion/joy", "alignment/refusal", "style/formality", "alignment/sycophancy")
# (judge spec, trait it is checked on); coherence and relevance judges are checked on every response
JUDGES = (
    [
        ("coherence", None),
        ("perplexity", None),
        ("embedding:relevance", None),
        ("vader", "emotion/joy"),
        ("refusal", "alignment/refusal"),
    ]
    + [("classifier", t) for t in TRAITS]
    + [("embedding", t) for t in TRAITS]
)


@pytest.mark.full
def test_judge_calibration(bench_model, results):
    rows = []
    for spec, trait in JUDGES:
        r = calibrate(spec, model=bench_model, trait=trait, split="heldout")
        scored = [i for i in r.items if i["score"] is not None]
        plain = [i for i in scored if i["source"] == "unsteered"]
        rows.append(
            {
                "judge": r.judge,
                "scale": r.scale,
                "trait": r.trait or "all",
                "n": r.n,
                "rated >= 70": r.n_positive,
                "AUROC": r.auroc,
                "Spearman": r.spearman,
                "gate": r.gate,
                "passed": r.passed,
                "precision (rated >= 70)": r.precision,
                "precision (rated >= 60)": r.precision_lenient,
                "recall": r.recall,
                "mean |score - rating|": sum(abs(i["score"] - i["rating"]) for i in scored) / len(scored),
                "bias on unsteered answers": (
                    sum(i["score"] - i["rating"] for i in plain) / len(plain) if plain else None
                ),
            }
        )
    results.add(
        "Judge calibration (held-out ratings)",
        rows,
        note="The calibration set's held-out half (docs/judges.md): responses rated by reading on 0-100 scales. AUROC "
        "and recall count a rating >= 70 as positive; precision is the share of responses at or over the judge's gate "
        "rated >= 70 (or >= 60). mean |score - rating| and the bias on the model's unsteered answers (score minus "
        "rating, mean) say how far the judge's number can stand in for a rating inside the steering score. The "
        "coherence judge and the classifier's calibration were fitted on the other half only.",
    )
    coherence = rows[0]
    assert coherence["precision (rated >= 60)"] >= 0.8 and coherence["recall"] >= 0.6 and coherence["AUROC"] >= 0.9
