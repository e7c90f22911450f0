"""Fit the classifier trait judge's calibration for every bundled trait, on the calibration set's fit half only.

The classifier itself is fitted on each trait set's positive vs negative responses when the judge
is built; this script fits the small linear map from its log-odds and the text's degeneration
index to the reader's 0-100 trait rating (ridge least squares on the `fit` rows of the trait, then
stretched so that differences between answers are not attenuated), and writes
plugins/judges/classifier_calibration.json. The `heldout` rows are never read here.

    python benchmarks/fit_trait_judges.py
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import torch

import tl_traits as tt
from tl_traits.core.files import atomic_write_text
from tl_traits.judging.calibration import load_calibration_set
from tl_traits.plugins.judges.classifier import CALIBRATION_FILE, ClassifierJudge, calibration_design
from tl_traits.judging.text_quality import text_features
from tl_traits.judging.encoder import embed

# On the raw design columns; the intercept is not penalised. The design and this ridge were chosen by leave-one-out
# AUROC on the fit half, averaged over the four traits: first two log-odds and one clean-text index (against 16-term
# and 4-term designs, one joint classifier and question-response products); then the words block and clipping each
# log-odds at +-5 (mean 0.888 -> 0.912), against no clip, a clip at 10, word pairs, the nearest trait-set response,
# and ridges 3 and 30. Words fitted on the fit half itself were rejected: the halves share their questions, and
# with one question left out at a time they added nothing (0.921 -> 0.922-0.926) but a question's topic words.
RIDGE = 10.0


def fit_one(trait: str) -> dict:
    judge = ClassifierJudge(trait=trait, calibration=Path("/nonexistent"))  # uncalibrated: the raw classifier
    rows = [r for r in load_calibration_set(split="fit") if r.trait == trait]
    scored = [r for r in rows if any(ch.isalpha() for ch in r.response)]
    z = judge.log_odds([r.response for r in scored]).tolist()  # [embedding, style, words] per row
    closeness = (embed([r.response for r in scored]) * embed([r.question for r in scored])).sum(-1).tolist()
    design = torch.tensor([calibration_design(zi, text_features(r.response), c)
                           for zi, r, c in zip(z, scored, closeness)],
                          dtype=torch.float64)
    target = torch.tensor([r.ratings["trait"] for r in scored], dtype=torch.float64)
    penalty = RIDGE * torch.eye(design.shape[1], dtype=torch.float64)
    penalty[0, 0] = 0.0
    coef = torch.linalg.solve(design.T @ design + penalty, design.T @ target)
    # A least-squares fit shrinks toward the mean rating, so a difference between two sets of answers (steered vs
    # unsteered) would come out attenuated. Undo it: map the fit so that, on these rows, its regression on the
    # rating has slope 1 (a monotone stretch: AUROC and Spearman are unchanged).
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
        "date": dt.date.today().isoformat(),
    }


def main() -> None:
    fitted = {trait: fit_one(trait) for trait in tt.list_traits()}
    atomic_write_text(CALIBRATION_FILE, json.dumps(fitted, indent=2) + "\n")
    print(f"wrote {CALIBRATION_FILE} for {', '.join(fitted)}")


if __name__ == "__main__":
    main()
