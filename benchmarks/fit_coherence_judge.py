"""Fit the coherence judge's logistic model on the calibration set's `fit` split, then report it on `heldout`.

The penalty is chosen by 5-fold cross-validation inside the fit split; the held-out split is only
read for the final report. Writes plugins/judges/coherence_model.json.

    python benchmarks/fit_coherence_judge.py
"""

from __future__ import annotations

import datetime
import json
import random

import torch

import tl_traits as tt
from tl_traits.core.files import atomic_write_json
from tl_traits.core.stats import auroc, fit_logistic
from tl_traits.judging.calibration import LABEL_CUT, calibrate, calibration_table, load_calibration_set
from tl_traits.plugins.judges.coherence import FEATURES, MODEL_FILE, CoherenceJudge

PENALTIES = (0.1, 0.3, 1.0, 3.0, 10.0)
FOLDS = 5


def standardise(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    mean, scale = x.mean(0), x.std(0).clamp_min(1e-6)
    return (x - mean) / scale, mean, scale


def cv_auroc(x: torch.Tensor, y: torch.Tensor, l2: float, seed: int = 0) -> float:
    order = list(range(len(y)))
    random.Random(seed).shuffle(order)
    folds = [order[i::FOLDS] for i in range(FOLDS)]
    scores = torch.zeros(len(y))
    for held in folds:
        train = [i for i in order if i not in set(held)]
        xs, mean, scale = standardise(x[train])
        w, b = fit_logistic(xs, y[train], l2=l2)
        scores[held] = ((x[held] - mean) / scale) @ w + b
    return float(auroc(scores[y == 1], scores[y == 0]))


def main() -> None:
    model = tt.load_model()
    judge = CoherenceJudge(model=model)
    rows = load_calibration_set(split="fit")
    feats = judge.features([r.question for r in rows], [r.response for r in rows])
    x = torch.tensor([[f[name] for name in FEATURES] for f in feats], dtype=torch.float32)
    y = torch.tensor([float(r.ratings["coherence"] >= LABEL_CUT) for r in rows])
    cv = {l2: cv_auroc(x, y, l2) for l2 in PENALTIES}
    best = max(cv, key=lambda l2: (round(cv[l2], 3), l2))  # ties go to the stronger penalty
    xs, mean, scale = standardise(x)
    w, b = fit_logistic(xs, y, l2=best)
    atomic_write_json(
        MODEL_FILE,
        {
            "features": list(FEATURES),
            "mean": dict(zip(FEATURES, mean.tolist())),
            "scale": dict(zip(FEATURES, scale.tolist())),
            "coef": dict(zip(FEATURES, w.tolist())),
            "intercept": b,
            "fitted": {
                "split": "fit",
                "n": len(rows),
                "positives": int(y.sum()),
                "label": f"coherence rating >= {LABEL_CUT:g}",
                "l2": best,
                "cv_auroc": {str(k): round(v, 4) for k, v in cv.items()},
                "date": datetime.date.today().isoformat(),
                "model": model.cfg.model_name,
            },
        },
    )
    print(
        json.dumps(
            {"l2": best, "cv_auroc": cv, "coef": dict(zip(FEATURES, [round(v, 3) for v in w.tolist()]))}, indent=1
        )
    )
    results = [calibrate("coherence", model=model, split=s) for s in ("fit", "heldout")]
    results += [calibrate("perplexity", model=model, split=s) for s in ("fit", "heldout")]
    print(calibration_table(results))


if __name__ == "__main__":
    main()
