"""Steering evaluation: judge steered answers, search coefficients, report per layer the best steering score.

The steering score of a response is the harmonic mean of trait (in the asked direction), coherence and
relevance (`search.combined_score`); the older headline, the best coherent trait delta, is kept beside it.

Results append to a JSONL log (a header line, a baseline line, one line per run) that a
rerun resumes from: settings already recorded are read back instead of generated again.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from tl_traits.core.errors import TlTraitsError, check_count
from tl_traits.core.files import parse_jsonl
from tl_traits.core.generation import generate
from tl_traits.core.models import model_identity
from tl_traits.core.trait_sets import TraitDataset, load_trait
from tl_traits.core.vectors import TraitVector, TraitVectors
from tl_traits.judging.judges import make_judge
from tl_traits.steering.search import (
    DEFAULT_SEARCH,
    OBJECTIVES,
    SearchSettings,
    StrengthSearch,
    combined_score,
    is_coherent,
    mean_score,
)
from tl_traits.steering.steer import Setting, sweep_generate


class EvaluationError(TlTraitsError):
    """Evaluation arguments that cannot work (no trait judge, a log from another run, ...)."""


@dataclass
class Run:
    """One steering setting judged on every question."""

    layer: int
    coef: float
    strength: float
    trait_mean: float | None
    coherence_mean: float | None
    n: int
    step: int = 0
    responses: list[str] = field(default_factory=list, repr=False)
    relevance_mean: float | None = None
    combined_mean: float | None = None  # mean per-response steering score
    scores: dict[str, list[float | None]] = field(default_factory=dict, repr=False)  # per response: trait, coherence, relevance, combined

    def key(self) -> tuple[int, float]:
        return (self.layer, round(self.coef, 6))


@dataclass
class EvaluationResult:
    """Baseline scores, every run, and per layer the best coherent delta."""

    baseline_trait: float | None
    baseline_coherence: float | None
    runs: list[Run]
    direction: int
    threshold: float
    baseline_responses: list[str] = field(default_factory=list, repr=False)
    objective: str = "combined"
    baseline_relevance: float | None = None
    baseline_combined: float | None = None
    baseline_scores: dict[str, list[float | None]] = field(default_factory=dict, repr=False)

    def coherent_delta(self, layer: int) -> float | None:
        """Largest signed trait gain over the baseline among runs whose coherence passes."""
        ok = [r for r in self.runs if r.layer == layer and is_coherent(r, self.threshold) and r.trait_mean is not None]
        if not ok or self.baseline_trait is None:
            return None
        return max(self.direction * (r.trait_mean - self.baseline_trait) for r in ok)

    def steering_score(self, layer: int) -> float | None:
        """The best mean steering score (trait x coherence x relevance, harmonic) among the layer's runs."""
        scored = [r.combined_mean for r in self.runs if r.layer == layer and r.combined_mean is not None]
        return max(scored) if scored else None

    def best_run(self, layer: int) -> Run | None:
        """The layer's best run under the objective: highest steering score, or largest coherent trait delta."""
        if self.objective == "combined":
            scored = [r for r in self.runs if r.layer == layer and r.combined_mean is not None]
            return max(scored, key=lambda r: r.combined_mean) if scored else None
        ok = [r for r in self.runs if r.layer == layer and is_coherent(r, self.threshold) and r.trait_mean is not None]
        if not ok:
            return None
        return max(ok, key=lambda r: self.direction * (r.trait_mean or 0.0))

    def table(self) -> list[dict[str, Any]]:
        """Per layer: steering score and coherent delta; the best run's strength, coef and mean scores."""
        rows = []
        for layer in sorted({r.layer for r in self.runs}):
            best = self.best_run(layer)
            runs = [r for r in self.runs if r.layer == layer]
            rows.append({
                "layer": layer,
                "steering_score": self.steering_score(layer),
                "baseline_score": self.baseline_combined,
                "coherent_delta": self.coherent_delta(layer),
                "strength": best.strength if best else None,
                "coef": best.coef if best else None,
                "trait": best.trait_mean if best else None,
                "coherence": best.coherence_mean if best else None,
                "relevance": best.relevance_mean if best else None,
                "best_coherence_seen": max((r.coherence_mean or 0.0) for r in runs),
                "runs": len(runs),
            })
        return rows



def estimate_base_coef(model: Any, vector: TraitVector, layer: int) -> float:
    """The coefficient of strength 1: the mean residual norm the vector recorded at `layer`."""
    vector.check_model(model)
    return vector.norm(layer)


def evaluate_steering(
    model: Any,
    vector: TraitVector | TraitVectors,
    trait: Any,
    *,
    layers: Sequence[int] | int | None = None,
    judges: Sequence[Any] = ("vader", "coherence"),
    relevance: Any = "embedding:relevance",
    objective: str = "combined",
    direction: int = 1,
    questions: Sequence[str] | None = None,
    subset: int | None = None,
    method: str | None = None,
    coefficients: Sequence[float] | None = None,
    steps: int = 8,
    start: float = DEFAULT_SEARCH.start,
    up: float = DEFAULT_SEARCH.up,
    down: float = DEFAULT_SEARCH.down,
    momentum: float = DEFAULT_SEARCH.momentum,
    threshold: float = DEFAULT_SEARCH.threshold,
    max_new_tokens: int = 64,
    log: str | os.PathLike[str] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> EvaluationResult:
    """Baseline scores, then per layer the best steering score from a coefficient search or a grid.

    judges: a trait judge and a coherence judge (names, "name:kind" specs, objects, functions),
        optionally a relevance judge too (it then replaces `relevance`).
    relevance: the relevance judge (does the answer address the question); None only with
        objective="coherent_delta".
    objective: which run is "best" at a layer: "combined" (highest mean steering score: the
        harmonic mean of trait, coherence and relevance per response, AxBench's aggregate) or
        "coherent_delta" (largest trait gain among runs whose mean coherence >= threshold).
        Both figures are in `table()` either way.
    direction: +1 to push toward the trait, -1 away from it.
    coefficients: a manual grid of strengths (units of the recorded activation norm) instead of
        the search; the search starts at `start` x the base coefficient and multiplies by `up`
        when mean coherence >= threshold, else by `down` (with optional momentum).
    log: a JSONL file to append to and resume from.
    on_step: called as on_step(done, total) after the baseline and after each search step.
    """
    vec = _one_vector(vector, method)
    dataset = load_trait(trait)
    if direction not in (1, -1):
        raise EvaluationError(f"direction must be +1 or -1, not {direction!r}")
    if objective not in OBJECTIVES:
        raise EvaluationError(f"objective must be one of {', '.join(OBJECTIVES)}, not {objective!r}")
    trait_judge, coherence_judge, relevance_judge = pick_judges(judges, model, dataset, relevance)
    if relevance_judge is None and objective == "combined":
        raise EvaluationError("the combined steering score needs a relevance judge; pass relevance='embedding:relevance' "
                              "or objective='coherent_delta'")
    qs = list(questions if questions is not None else dataset.questions)
    if check_count(subset, "subset", EvaluationError) is not None:
        qs = qs[:subset]
    if not qs:
        raise EvaluationError(f"no steering questions: trait '{dataset.name}' has none in steering.json; pass questions=[...]")
    layer_list = vec.layers if layers is None else ([layers] if isinstance(layers, int) else list(layers))
    vec.check_model(model)
    bases = {layer: vec.norm(layer) for layer in layer_list}

    record = _Log(Path(log) if log else None, {
        "model": model_identity(model).to_dict(),
        "vector": {k: vec.metadata.get(k) for k in ("method", "hook", "position", "dataset")},
        "trait": dataset.name,
        "judges": [j.name for j in (trait_judge, coherence_judge, relevance_judge) if j is not None],
        "objective": objective,
        "direction": direction,
        "questions": qs,
        "max_new_tokens": max_new_tokens,
        "threshold": threshold,
    })

    def judge(responses: list[str]) -> dict[str, list[float | None]]:
        return score_responses((trait_judge, coherence_judge, relevance_judge), qs, responses, direction)

    if record.baseline is None:
        answers = generate(model, qs, max_new_tokens=max_new_tokens)
        scores = judge(answers)
        record.write_baseline(answers, scores, *means(scores))
    baseline_trait, baseline_coherence = record.baseline
    total = 1 + (1 if coefficients is not None else steps)
    if on_step:
        on_step(1, total)

    def run_settings(settings: list[tuple[int, float]], step: int) -> list[Run]:
        """Judge (layer, strength) settings, generating only those the log lacks, in one batch."""
        wanted = [(layer, strength, direction * strength * bases[layer]) for layer, strength in settings]
        missing = [w for w in wanted if record.find(w[0], w[2]) is None]
        if missing:
            texts = sweep_generate(
                model, vec, [Setting(layer, coef=coef) for layer, _, coef in missing], qs,
                max_new_tokens=max_new_tokens,
            )
            for (layer, strength, coef), answers in zip(missing, texts):
                scores = judge(answers)
                t, c, r, combined = means(scores)
                record.write_run(Run(layer, coef, strength, t, c, len(qs), step, answers, r, combined, scores))
        return [record.find(layer, coef) for layer, _, coef in wanted]

    if coefficients is not None:
        run_settings([(layer, float(s)) for layer in layer_list for s in coefficients], 0)
        if on_step:
            on_step(total, total)
    else:
        search = StrengthSearch(layer_list, SearchSettings(start, up, down, momentum, threshold))
        for step in range(steps):
            runs = run_settings([(layer, search.strength[layer]) for layer in layer_list], step)
            for layer, run in zip(layer_list, runs):
                search.update(layer, run)
            if on_step:
                on_step(step + 2, total)

    return EvaluationResult(
        baseline_trait, baseline_coherence, record.runs, direction, threshold, record.baseline_responses, objective,
        record.baseline_relevance, record.baseline_combined, record.baseline_scores,
    )


def coefficient_search(model: Any, vector: TraitVector, trait: Any, layers: Sequence[int], **kwargs: Any) -> EvaluationResult:
    """The adaptive search alone (see `evaluate_steering` for every option)."""
    kwargs.pop("coefficients", None)
    return evaluate_steering(model, vector, trait, layers=layers, **kwargs)


def load_evaluation(log: str | os.PathLike[str]) -> tuple[EvaluationResult, dict[str, Any]]:
    """Read an evaluation log back without a model: the result and the log's header (questions, judges, ...)."""
    path = Path(log)
    if not path.is_file():
        raise EvaluationError(f"no evaluation log at {path}")
    record = _Log(path, None)
    if record.baseline is None:
        raise EvaluationError(f"{path} has no baseline line yet; the evaluation that writes it did not get that far")
    header = record.header or {}
    result = EvaluationResult(
        record.baseline[0], record.baseline[1], record.runs,
        header.get("direction", 1), header.get("threshold", 70.0), record.baseline_responses,
        header.get("objective", "coherent_delta"),  # logs from before the combined score chose by coherent delta
        record.baseline_relevance, record.baseline_combined, record.baseline_scores,
    )
    return result, header


# -- helpers ------------------------------------------------------------------------------------------
def score_responses(
    judges: tuple[Any, Any, Any], questions: list[str], responses: list[str], direction: int
) -> dict[str, list[float | None]]:
    """Each response's trait, coherence, relevance (None without a relevance judge) and combined steering score."""
    trait_judge, coherence_judge, relevance_judge = judges
    scores = {"trait": trait_judge.score(questions, responses), "coherence": coherence_judge.score(questions, responses),
              "relevance": relevance_judge.score(questions, responses) if relevance_judge else [None] * len(responses)}
    scores["combined"] = [combined_score(*s, direction) for s in zip(*scores.values())]
    return scores


def means(scores: dict[str, list[float | None]]) -> list[float | None]:
    """Mean trait, coherence, relevance and combined score over the responses."""
    return [mean_score(scores[k]) for k in ("trait", "coherence", "relevance", "combined")]


def _one_vector(vector: TraitVector | TraitVectors, method: str | None) -> TraitVector:
    if isinstance(vector, TraitVector):
        return vector
    if method is None:
        if len(vector) != 1:
            raise EvaluationError(f"these TraitVectors hold {vector.methods}; pass method=... or vectors['name']")
        method = vector.methods[0]
    return vector[method]


def pick_judges(specs: Sequence[Any], model: Any, trait: TraitDataset, relevance: Any = None) -> tuple[Any, Any, Any]:
    """(trait judge, coherence judge, relevance judge or None) from judge specs; a relevance judge among them wins."""
    built = [make_judge(s, model=model, trait=trait) for s in specs]
    by_kind = {j.kind: j for j in built}
    if "trait" not in by_kind or "coherence" not in by_kind:
        raise EvaluationError(
            f"evaluate_steering needs a trait judge and a coherence judge; got kinds {[j.kind for j in built]}. "
            "For example judges=['vader', 'coherence']."
        )
    if "relevance" not in by_kind and relevance is not None:
        by_kind["relevance"] = make_judge(relevance, model=model, trait=trait)
        if by_kind["relevance"].kind != "relevance":
            raise EvaluationError(f"relevance= needs a judge of kind 'relevance', got {by_kind['relevance'].kind!r}; "
                                  "e.g. 'embedding:relevance'")
    return by_kind["trait"], by_kind["coherence"], by_kind.get("relevance")


class _Log:
    """The JSONL record of one evaluation: header, baseline, runs; appended line by line."""

    def __init__(self, path: Path | None, header: dict[str, Any] | None) -> None:
        self.path, self.header = path, header
        self.baseline: tuple[float | None, float | None] | None = None
        self.baseline_responses: list[str] = []
        self.baseline_relevance: float | None = None
        self.baseline_combined: float | None = None
        self.baseline_scores: dict[str, list[float | None]] = {}
        self.runs: list[Run] = []
        self._index: dict[tuple[int, float], Run] = {}
        if path is not None and path.is_file() and path.stat().st_size > 0:
            self._read()
        elif path is not None:
            self._append({"type": "header", **header})

    def _read(self) -> None:
        data = self.path.read_bytes()
        whole = data[: data.rfind(b"\n") + 1]  # a run cut off mid-line (even mid-character): drop the fragment
        if self.header is not None and len(whole) != len(data):
            with self.path.open("r+b") as fh:
                fh.truncate(len(whole))
        try:
            text = whole.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EvaluationError(f"{self.path} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                                  "it is not an evaluation log: pass another log path") from exc
        lines = [row for _, row in parse_jsonl(text, str(self.path), EvaluationError)]
        if not lines or lines[0].get("type") != "header":
            raise EvaluationError(f"{self.path} is not an evaluation log (no header line); pass another log path")
        recorded = {k: v for k, v in lines[0].items() if k != "type"}
        if self.header is None:
            self.header = recorded
        elif json.loads(json.dumps(self.header)) != recorded:
            differs = sorted(k for k in set(recorded) | set(self.header) if recorded.get(k) != json.loads(json.dumps(self.header)).get(k))
            raise EvaluationError(f"{self.path} records another evaluation (differs in {', '.join(differs)}); use a new log path")
        for line in lines[1:]:
            if line["type"] == "baseline":
                self.baseline = (line["trait_mean"], line["coherence_mean"])
                self.baseline_responses = line.get("responses", [])
                self.baseline_relevance = line.get("relevance_mean")
                self.baseline_combined = line.get("combined_mean")
                self.baseline_scores = line.get("scores", {})
            elif line["type"] == "run":
                self._keep(Run(**{k: line[k] for k in Run.__dataclass_fields__ if k in line}))

    def _keep(self, run: Run) -> None:
        self.runs.append(run)
        self._index[run.key()] = run

    def _append(self, obj: dict[str, Any]) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:  # one whole line per write: a crash loses at most that line
            fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def write_baseline(self, responses: list[str], scores: dict[str, list[float | None]], trait_mean: float | None,
                       coherence_mean: float | None, relevance_mean: float | None, combined_mean: float | None) -> None:
        self.baseline = (trait_mean, coherence_mean)
        self.baseline_responses, self.baseline_scores = responses, scores
        self.baseline_relevance, self.baseline_combined = relevance_mean, combined_mean
        self._append({"type": "baseline", "trait_mean": trait_mean, "coherence_mean": coherence_mean,
                      "relevance_mean": relevance_mean, "combined_mean": combined_mean, "responses": responses,
                      "scores": scores})

    def write_run(self, run: Run) -> None:
        self._keep(run)
        self._append({"type": "run", **asdict(run)})

    def find(self, layer: int, coef: float) -> Run | None:
        return self._index.get((layer, round(coef, 6)))
