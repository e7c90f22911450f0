"""Judge calibration: how far a judge's scores agree with ratings made by careful reading.

The bundled calibration set holds responses of the embedded model (steered and unsteered) and
hand-written edge cases, each rated 0-100 for coherence, relevance and the trait (the guide is in
docs/judges.md). It is split once: judges are fitted on `fit` and reported on `heldout`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import torch

from tl_traits.core.files import parse_jsonl
from tl_traits.core.numeric import check_number
from tl_traits.core.stats import auroc, spearman
from tl_traits.judging.judges import JudgeError, make_judge

SCALES = ("coherence", "relevance", "trait")
SPLITS = ("fit", "heldout", "all")
LABEL_CUT = 70.0  # a rating at or above this counts as "coherent" / "relevant" / "shows the trait"
LENIENT_CUT = 60.0  # a response the judge passes is "not wrong" when the reader gave it at least this
BUNDLED = "judging/calibration_data/responses.jsonl"
ROW_KEYS = ("id", "trait", "question", "response", "ratings", "split")


class CalibrationError(JudgeError):
    """A calibration that cannot be run as asked (no rows for the judge, unknown split or scale)."""


@dataclass(frozen=True)
class RatedResponse:
    """One response with the reader's three ratings and its split."""

    id: str
    trait: str
    question: str
    response: str
    ratings: dict[str, float]
    split: str
    source: str  # "steered", "unsteered" or "written"
    setting: dict[str, Any] = field(default_factory=dict)  # method, layer, strength, direction for steered rows


def load_calibration_set(path: str | Path | None = None, split: str = "all") -> list[RatedResponse]:
    """The rated responses (the bundled set unless `path` names another JSONL file), of one split or all."""
    if split not in SPLITS:
        raise CalibrationError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    source = Path(path) if path is not None else resources.files("tl_traits").joinpath(BUNDLED)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CalibrationError(f"cannot read the calibration set {source}: {exc}") from exc
    rows = []
    for line, row in parse_jsonl(text, str(source), CalibrationError):
        where = f"{source} line {line}"
        if not isinstance(row, dict):
            raise CalibrationError(
                f'{where}: a row must be a JSON object {{"id", "trait", "question", '
                f'"response", "ratings", "split"}}, not {type(row).__name__} {row!r:.60}'
            )
        missing = [k for k in ROW_KEYS if k not in row]
        if missing:
            raise CalibrationError(f"{where}: row {row.get('id', '?')!r} lacks {missing}")
        wrong = [k for k in ROW_KEYS if k != "ratings" and not isinstance(row[k], str)]
        if wrong:
            raise CalibrationError(
                f"{where}: {', '.join(wrong)} must be text, not {', '.join(type(row[k]).__name__ for k in wrong)}"
            )
        setting = {k: row[k] for k in ("method", "layer", "strength", "direction") if k in row}
        rows.append(
            RatedResponse(
                row["id"],
                row["trait"],
                row["question"],
                row["response"],
                _ratings(row["ratings"], where),
                row["split"],
                row.get("source", "written"),
                setting,
            )
        )
    return [r for r in rows if split == "all" or r.split == split]


def _ratings(ratings: Any, where: str) -> dict[str, float]:
    """A row's `ratings`: an object of scale -> a number 0-100."""
    if not isinstance(ratings, dict):
        raise CalibrationError(
            f'{where}: ratings must be an object like {{"coherence": 80, "trait": 30}}, '
            f"not {type(ratings).__name__} {ratings!r:.60}"
        )
    out = {}
    for scale, value in ratings.items():
        number = check_number(value, f"{where}: rating {scale!r}", CalibrationError)
        if not 0 <= number <= 100:
            raise CalibrationError(f"{where}: rating {scale!r} is {number:g}; ratings are 0-100")
        out[scale] = number
    return out


@dataclass
class Calibration:
    """A judge's agreement with the reader on one scale: ranking (AUROC, Spearman) and the gate (precision, recall)."""

    judge: str
    scale: str
    trait: str | None
    split: str
    gate: float
    n: int
    n_positive: int  # rated >= LABEL_CUT
    auroc: float | None
    spearman: float | None
    precision: float | None  # of responses at or over the gate, the share rated >= LABEL_CUT
    precision_lenient: float | None  # ... rated >= LENIENT_CUT
    recall: float | None  # of responses rated >= LABEL_CUT, the share at or over the gate
    passed: int  # responses at or over the gate
    unscored: int  # responses the judge could not score (None or NaN), left out of every figure
    items: list[dict[str, Any]] = field(default_factory=list, repr=False)  # id, rating, score, question, response

    def row(self) -> dict[str, Any]:
        """The table row: everything but the items."""
        out = asdict(self)
        out.pop("items")
        return out

    def disagreements(self, n: int = 5) -> list[dict[str, Any]]:
        """The responses where judge and reader disagree most, passed-but-poor first: the text behind the numbers."""
        scored = [i for i in self.items if i["score"] is not None]
        false_pass = sorted(
            (i for i in scored if i["score"] >= self.gate and i["rating"] < LABEL_CUT),
            key=lambda i: i["rating"] - i["score"],
        )
        false_fail = sorted(
            (i for i in scored if i["score"] < self.gate and i["rating"] >= LABEL_CUT),
            key=lambda i: i["score"] - i["rating"],
        )
        return (false_pass[:n] + false_fail[:n])[: n * 2]

    def figure(self) -> Any:
        from tl_traits.judging.figures import calibration_figure  # plots need the [report] extra

        return calibration_figure(self, LABEL_CUT)


def agreement(scores: Sequence[float | None], ratings: Sequence[float], gate: float) -> dict[str, Any]:
    """AUROC (rating >= LABEL_CUT as positive), Spearman and precision / recall at `gate`; None where undefined.

    A score that is None or NaN (np.float32 NaN included) is unscored: left out of every figure and
    counted in `unscored`, never read as 0 or as a win."""
    pairs = [(s, r) for s, r in zip(scored_values(scores), ratings) if s is not None]
    scored = [s for s, _ in pairs]
    rated = [r for _, r in pairs]
    pos = [s for s, r in pairs if r >= LABEL_CUT]
    neg = [s for s, r in pairs if r < LABEL_CUT]
    passed = [r for s, r in pairs if s >= gate]
    area = (
        float(auroc(torch.tensor(pos, dtype=torch.float64), torch.tensor(neg, dtype=torch.float64)))
        if pos and neg
        else None
    )
    rho = None
    if len(pairs) >= 3 and len(set(scored)) > 1 and len(set(rated)) > 1:
        rho = spearman(torch.tensor(scored), torch.tensor(rated))
    return {
        "n": len(pairs),
        "n_positive": len(pos),
        "auroc": area,
        "spearman": rho,
        "precision": sum(r >= LABEL_CUT for r in passed) / len(passed) if passed else None,
        "precision_lenient": sum(r >= LENIENT_CUT for r in passed) / len(passed) if passed else None,
        "recall": sum(s >= gate for s in pos) / len(pos) if pos else None,
        "passed": len(passed),
        "unscored": len(scores) - len(pairs),
    }


def calibrate(
    judge: Any,
    *,
    model: Any = None,
    trait: str | None = None,
    split: str = "heldout",
    gate: float | None = None,
    rows: Sequence[RatedResponse] | None = None,
) -> Calibration:
    """Score the calibration responses with `judge` and compare with the reader's ratings.

    judge: anything `make_judge` takes ("perplexity", "vader", "embedding:relevance", an object).
    A coherence or relevance judge is checked on every row; a trait judge on the rows of its trait
    (`trait=` or the judge's own, e.g. vader -> emotion/joy). gate: the score at which the judge
    passes a response (default: the judge's `gate`, else 70, the coherence threshold of the search).
    """
    rows = list(rows if rows is not None else load_calibration_set(split=split))
    built = make_judge(judge, model=model, trait=trait)
    kind = built.kind
    if kind not in SCALES:
        raise CalibrationError(f"judge kind {kind!r} has no ratings; the scales are {', '.join(SCALES)}")
    trait_name = None
    if kind == "trait":
        trait_name = trait if isinstance(trait, str) else _trait_of(built)
        rows = [r for r in rows if r.trait == trait_name]
    if not rows:
        rated = sorted({r.trait for r in load_calibration_set()})
        raise CalibrationError(
            f"no calibration rows in split {split!r}"
            + (f" for trait {trait_name!r} (rated: {rated})" if trait_name else "")
        )
    gate = check_number(gate if gate is not None else getattr(built, "gate", LABEL_CUT), "gate", CalibrationError)
    unrated = [r.id for r in rows if kind not in r.ratings]
    if unrated:
        raise CalibrationError(
            f"{len(unrated)} rows have no {kind!r} rating (e.g. {unrated[0]!r}); rate them or leave them out"
        )
    scores = scored_values(built.score([r.question for r in rows], [r.response for r in rows]))
    if len(scores) != len(rows):
        raise CalibrationError(
            f"judge {getattr(built, 'name', judge)!r} returned {len(scores)} scores for {len(rows)} responses"
        )
    ratings = [r.ratings[kind] for r in rows]
    stats = agreement(scores, ratings, gate)
    items = [
        {"id": r.id, "rating": rt, "score": s, "question": r.question, "response": r.response, "source": r.source}
        for r, s, rt in zip(rows, scores, ratings)
    ]
    return Calibration(getattr(built, "name", str(judge)), kind, trait_name, split, gate, items=items, **stats)


def scored_values(scores: Sequence[Any]) -> list[float | None]:
    """Each score as a float, None where the judge gave none: None, or NaN of any type (float, np.float32, a tensor)."""
    out: list[float | None] = []
    for s in scores:
        try:
            value = None if s is None else float(s)
        except (TypeError, ValueError):
            raise CalibrationError(f"a judge score must be a number or None, not {s!r:.40}") from None
        out.append(None if value is None or math.isnan(value) else value)
    return out


def _trait_of(judge: Any) -> str:
    measured = getattr(judge, "trait", None)
    for name in ("emotion/joy", "alignment/refusal", "style/formality", "alignment/sycophancy"):
        if measured and name.split("/")[-1] == str(measured).split("/")[-1]:
            return name
    if measured:
        return str(measured)
    raise CalibrationError(f"judge {getattr(judge, 'name', judge)!r} does not say which trait it measures; pass trait=")


def calibration_table(results: Sequence[Calibration]) -> str:
    """A markdown table of calibration rows, numbers to 2-3 places, '-' where undefined; `n` counts the scored
    responses, `unscored` those the judge gave None or NaN (left out of every figure)."""
    head = (
        "| judge | scale | trait | split | n | unscored | rated >= 70 | AUROC | Spearman | gate | passed | "
        "precision (>=70) | precision (>=60) | recall |"
    )
    lines = [head, "|" + "---|" * 14]
    for c in results:
        cells = [
            c.judge,
            c.scale,
            c.trait or "-",
            c.split,
            c.n,
            c.unscored,
            c.n_positive,
            _f(c.auroc),
            _f(c.spearman),
            f"{c.gate:g}",
            c.passed,
            _f(c.precision),
            _f(c.precision_lenient),
            _f(c.recall),
        ]
        lines.append("| " + " | ".join(str(x) for x in cells) + " |")
    return "\n".join(lines)


def _f(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def to_json(result: Calibration, examples: int = 5) -> str:
    """The row and the worst disagreements (with their text) as JSON."""
    return json.dumps({**result.row(), "disagreements": result.disagreements(examples)}, ensure_ascii=False, indent=2)
