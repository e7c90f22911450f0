"""Fit the classifier trait judge's calibration for every bundled trait, on the calibration set's fit half only.

The classifier itself is fitted on each trait set's positive vs negative responses when the judge
is built; this script fits the small linear map from its log-odds and the text's degeneration
index to the reader's 0-100 trait rating (ridge least squares on the `fit` rows of the trait, then
stretched so that differences between answers are not attenuated), and writes
plugins/judges/classifier_calibration.json. The `heldout` rows are never read here.

    python benchmarks/fit_trait_judges.py [--trait alignment/sycophancy] [--cv]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
from pathlib import Path

import torch

import tl_traits as tt
from tl_traits.core.files import atomic_write_text
from tl_traits.judging.calibration import load_calibration_set
from tl_traits.core.stats import auroc
from tl_traits.plugins.judges.classifier import CALIBRATION_FILE, ClassifierJudge, load_calibrations

# On the raw design columns; the intercept is not penalised. The design and this ridge were chosen by leave-one-out
# AUROC on the fit half, averaged over the four traits: first two log-odds and one clean-text index (against 16-term
# and 4-term designs, one joint classifier and question-response products); then the words block and clipping each
# log-odds at +-5 (mean 0.888 -> 0.912), against no clip, a clip at 10, word pairs, the nearest trait-set response,
# and ridges 3 and 30. Words fitted on the fit half itself were rejected: the halves share their questions, and
# with one question left out at a time they added nothing (0.921 -> 0.922-0.926) but a question's topic words.
RIDGE = 10.0


# Traits whose calibration also reads the answer's stance toward the user's claim (judging/stance.py). For
# sycophancy this was chosen by question-grouped 8-fold cross-validation on the fit half (`--cv`, 5 shuffles):
# 0.868 without, 0.903 with the restated claim and the opening's agreement and correction cues (0.876 with the
# restatement alone, 0.894 with the cues alone); then tested on round 5, drawn and rated after it was frozen.
STANCE_TRAITS = ("alignment/sycophancy",)


def design_rows(trait: str, split: str = "fit", stance: bool | None = None) -> tuple[list, torch.Tensor, torch.Tensor]:
    """The trait's rated rows with letters, their calibration design and their trait ratings."""
    stance = trait in STANCE_TRAITS if stance is None else stance
    judge = ClassifierJudge(trait=trait, calibration=Path("/nonexistent"))  # uncalibrated: the raw classifier
    rows = [r for r in load_calibration_set(split=split) if r.trait == trait]
    scored = [r for r in rows if any(ch.isalpha() for ch in r.response)]
    design = judge.design([r.question for r in scored], [r.response for r in scored], stance=stance)
    return scored, design, torch.tensor([r.ratings["trait"] for r in scored], dtype=torch.float64)


def ridge_fit(design: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    penalty = RIDGE * torch.eye(design.shape[1], dtype=torch.float64)
    penalty[0, 0] = 0.0
    return torch.linalg.solve(design.T @ design + penalty, design.T @ target)


def grouped_cv(trait: str, stance: bool, folds: int = 8, shuffles: int = 5) -> float:
    """Mean AUROC (rating >= 70) of out-of-fold predictions on the fit half, one question's answers per fold."""
    rows, design, target = design_rows(trait, stance=stance)
    questions = sorted({r.question for r in rows})
    positive = target >= 70
    found = []
    for seed in range(shuffles):
        order = questions[:]
        random.Random(seed).shuffle(order)
        fold = {q: k % folds for k, q in enumerate(order)}
        predicted = torch.zeros(len(rows), dtype=torch.float64)
        for k in range(folds):
            held = torch.tensor([fold[r.question] == k for r in rows])
            predicted[held] = design[held] @ ridge_fit(design[~held], target[~held])
        found.append(float(auroc(predicted[positive], predicted[~positive])))
    return sum(found) / len(found)


def fit_one(trait: str) -> dict:
    scored, design, target = design_rows(trait)
    coef = ridge_fit(design, target)
    fitted = design @ coef
    centred = target - target.mean()
    slope = float((centred * (fitted - fitted.mean())).sum() / centred.square().sum())
    offset = float(fitted.mean() - slope * target.mean())
    return {
        "coef": [round(float(c), 6) for c in coef],
        "stretch": {"offset": round(offset, 6), "slope": round(slope, 6)},
        "examples_sha256": tt.load_trait(trait).examples_hash(),
        "fitted_on": f"calibration set, split 'fit', {len(scored)} rows of {trait}",
        "ridge": RIDGE,
        **({"design": "stance"} if trait in STANCE_TRAITS else {}),
        "date": dt.date.today().isoformat(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trait", nargs="+", help="refit only these traits (the others' calibrations are kept)")
    parser.add_argument(
        "--cv",
        action="store_true",
        help="print question-grouped CV AUROC on the fit half, with and without the stance inputs; write nothing",
    )
    args = parser.parse_args()
    traits = args.trait or tt.list_traits()
    if args.cv:
        for trait in traits:
            print(f"{trait}: plain {grouped_cv(trait, False):.3f}, stance {grouped_cv(trait, True):.3f}")
        return
    fitted = {**load_calibrations(), **{trait: fit_one(trait) for trait in traits}}
    atomic_write_text(CALIBRATION_FILE, json.dumps(fitted, indent=2) + "\n")
    print(f"wrote {CALIBRATION_FILE} for {', '.join(traits)}")


if __name__ == "__main__":
    main()
