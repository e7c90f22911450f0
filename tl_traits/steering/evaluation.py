"""Steering evaluation: judge steered answers, search coefficients, report the best coherent delta per layer.

Results append to a JSONL log (a header line, a baseline line, one line per run) that a
rerun resumes from: settings already recorded are read back instead of generated again.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from tl_traits.core.errors import TlTraitsError
from tl_traits.core.generation import generate
from tl_traits.core.models import model_identity
from tl_traits.core.trait_sets import TraitDataset, load_trait
from tl_traits.core.vectors import TraitVector, TraitVectors
from tl_traits.judging.judges import make_judge
from tl_traits.steering.search import (
    DEFAULT_SEARCH,
    SearchSettings,
    StrengthSearch,
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

    def coherent_delta(self, layer: int) -> float | None:
        """Largest signed trait gain over the baseline among runs whose coherence passes."""
        ok = [r for r in self.runs if r.layer == layer and is_coherent(r, self.threshold) and r.trait_mean is not None]
        if not ok or self.baseline_trait is None:
            return None
        return max(self.direction * (r.trait_mean - self.baseline_trait) for r in ok)

    def best_run(self, layer: int) -> Run | None:
        ok = [r for r in self.runs if r.layer == layer and is_coherent(r, self.threshold) and r.trait_mean is not None]
        if not ok:
            return None
        return max(ok, key=lambda r: self.direction * (r.trait_mean or 0.0))

    def table(self) -> list[dict[str, Any]]:
        """Per layer: coherent delta, the coef/strength that gave it, its coherence; or the best coherence."""
        rows = []
        for layer in sorted({r.layer for r in self.runs}):
            best = self.best_run(layer)
            runs = [r for r in self.runs if r.layer == layer]
            rows.append({
                "layer": layer,
                "coherent_delta": self.coherent_delta(layer),
                "strength": best.strength if best else None,
                "coef": best.coef if best else None,
                "trait": best.trait_mean if best else None,
                "coherence": best.coherence_mean if best else None,
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
    judges: Sequence[Any] = ("vader", "perplexity"),
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
    """Baseline scores, then per layer the best coherent delta from a coefficient search or a grid.

    judges: a trait judge and a coherence judge (names, "name:kind" specs, objects, functions).
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
    trait_judge, coherence_judge = pick_judges(judges, model, dataset)
    qs = list(questions if questions is not None else dataset.questions)
    if subset is not None:
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
        "judges": [trait_judge.name, coherence_judge.name],
        "direction": direction,
        "questions": qs,
        "max_new_tokens": max_new_tokens,
        "threshold": threshold,
    })

    def judge(responses: list[str]) -> tuple[float | None, float | None]:
        return mean_score(trait_judge.score(qs, responses)), mean_score(coherence_judge.score(qs, responses))

    if record.baseline is None:
        answers = generate(model, qs, max_new_tokens=max_new_tokens)
        t, c = judge(answers)
        record.write_baseline(t, c, answers)
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
                t, c = judge(answers)
                record.write_run(Run(layer, coef, strength, t, c, len(qs), step, answers))
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
        baseline_trait, baseline_coherence, record.runs, direction, threshold, record.baseline_responses
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
    )
    return result, header


# -- helpers ------------------------------------------------------------------------------------------
def _one_vector(vector: TraitVector | TraitVectors, method: str | None) -> TraitVector:
    if isinstance(vector, TraitVector):
        return vector
    if method is None:
        if len(vector) != 1:
            raise EvaluationError(f"these TraitVectors hold {vector.methods}; pass method=... or vectors['name']")
        method = vector.methods[0]
    return vector[method]


def pick_judges(specs: Sequence[Any], model: Any, trait: TraitDataset) -> tuple[Any, Any]:
    built = [make_judge(s, model=model, trait=trait) for s in specs]
    by_kind = {j.kind: j for j in built}
    if "trait" not in by_kind or "coherence" not in by_kind:
        raise EvaluationError(
            f"evaluate_steering needs a trait judge and a coherence judge; got kinds {[j.kind for j in built]}. "
            "For example judges=['vader', 'perplexity']."
        )
    return by_kind["trait"], by_kind["coherence"]


class _Log:
    """The JSONL record of one evaluation: header, baseline, runs; appended line by line."""

    def __init__(self, path: Path | None, header: dict[str, Any] | None) -> None:
        self.path, self.header = path, header
        self.baseline: tuple[float | None, float | None] | None = None
        self.baseline_responses: list[str] = []
        self.runs: list[Run] = []
        self._index: dict[tuple[int, float], Run] = {}
        if path is not None and path.is_file() and path.stat().st_size > 0:
            self._read()
        elif path is not None:
            self._append({"type": "header", **header})

    def _read(self) -> None:
        text = self.path.read_text(encoding="utf-8")
        if not text.endswith("\n"):  # a run cut off mid-line: drop the fragment before appending
            text = text[: text.rfind("\n") + 1]
        if self.header is not None and len(text.encode("utf-8")) != self.path.stat().st_size:
            with self.path.open("r+", encoding="utf-8") as fh:
                fh.truncate(len(text.encode("utf-8")))
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
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

    def write_baseline(self, trait_mean: float | None, coherence_mean: float | None, responses: list[str]) -> None:
        self.baseline = (trait_mean, coherence_mean)
        self.baseline_responses = responses
        self._append({"type": "baseline", "trait_mean": trait_mean, "coherence_mean": coherence_mean, "responses": responses})

    def write_run(self, run: Run) -> None:
        self._keep(run)
        self._append({"type": "run", **asdict(run)})

    def find(self, layer: int, coef: float) -> Run | None:
        return self._index.get((layer, round(coef, 6)))
