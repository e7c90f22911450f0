"""One steering evaluation under a `SteeringProtocol`: search on dev, choose per group, score the choice on test.

`evaluate_steering` (one vector) and `compare_steering` (several methods and prompting) are thin
wrappers over `run_protocol`. Every batch of answers is recorded in the log as it is judged, so an
interrupted evaluation resumes where it stopped.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Sequence, cast

from tqdm.auto import tqdm

from tl_traits.core.generation import generate
from tl_traits.core.models import model_identity
from tl_traits.core.trait_sets import SteeringQuestions, TraitDataset, load_trait, split_questions
from tl_traits.core.vectors import TraitVector
from tl_traits.judging.defaults import default_judges
from tl_traits.steering.centring import mean_centred
from tl_traits.steering.errors import EvaluationError
from tl_traits.steering.layers import steering_layers
from tl_traits.steering.log import SteeringLog
from tl_traits.steering.protocol import DEFAULT_PROTOCOL, SteeringProtocol
from tl_traits.steering.results import PROMPTING, Candidate, JudgedSet, Outcome, Run, SteeringResult
from tl_traits.steering.scoring import Judges, pick_judges
from tl_traits.steering.search import Proposal, kl_targets, max_steps, search
from tl_traits.steering.steer import Positions, Setting, sweep_generate
from tl_traits.steering.strength_scale import KLPoint, TeacherForced, kl_ladder

# System prompts the prompting baseline tries on dev ({description}: the trait definition's HIGH or LOW line).
PROMPT_TEMPLATES = (
    "Answer in this way: {description} Still answer the user's question.",
    "You are a helpful assistant. Every reply you write has this quality: {description}",
    "Reply to the user's message on its own topic, in this manner: {description}",
)


def run_protocol(
    model: Any,
    vectors: Mapping[str, TraitVector],
    trait: Any,
    *,
    direction: int = 1,
    layers: Sequence[int] | int | None = None,
    judges: Sequence[Any] | None = None,
    relevance: Any = "embedding:relevance",
    protocol: SteeringProtocol | None = None,
    questions: Sequence[str] | None = None,
    prompting: bool = False,
    log: str | os.PathLike[str] | None = None,
    progress: bool = True,
    on_step: Callable[[int, int], None] | None = None,
) -> SteeringResult:
    """Search every vector's candidate settings on the dev questions, pick each method's best, score it on test.

    vectors: {method: vector}; each method is a group with its own chosen setting.
    layers: the layers searched (each a candidate; with `protocol.bands` also bands around them);
        default: a few mid layers (`steering.layers.steering_layers`).
    judges: trait and coherence judge specs (default: the trait's own, `judging.defaults`).
    questions: replace the trait's steering questions (split by alternation into dev and test).
    prompting: also try the prompting baseline (a system prompt asking for the trait), chosen on dev too.
    """
    protocol = protocol or DEFAULT_PROTOCOL
    if direction not in (1, -1):
        raise EvaluationError(f"direction must be +1 (toward the trait) or -1 (away), not {direction!r}")
    if not vectors:
        raise EvaluationError("steering evaluation needs at least one vector")
    dataset = load_trait(trait)
    plan = _questions(dataset, direction, questions, protocol)
    chosen_judges = pick_judges(
        judges if judges is not None else default_judges(dataset), model, dataset, relevance, plan.parts
    )
    for vec in vectors.values():
        vec.check_model(model)
    candidates = _candidates(model, vectors, layers, protocol)
    header = {
        "model": model_identity(model).to_dict(),
        "vectors": {
            m: {k: v.stored_metadata().get(k) for k in ("method", "hook", "position", "expression")}
            | {"dataset": (v.metadata.get("dataset") or {}).get("sha256")}
            for m, v in vectors.items()
        },
        "trait": dataset.name,
        "direction": direction,
        "parts": list(plan.parts),
        "measures": plan.measures,
        "judges": chosen_judges.names,
        "judge_versions": chosen_judges.versions,
        "protocol": protocol.to_dict(),
        "dev": list(plan.dev),
        "test": list(plan.test),
        "candidates": [c.key() for c in candidates],
        "prompting": prompting,
    }
    record = SteeringLog(log, header)
    run = _Run(
        model,
        vectors,
        dataset,
        plan,
        chosen_judges,
        protocol,
        direction,
        record,
        progress,
        on_step,
        extra_batches=(len(PROMPT_TEMPLATES) + 1 if prompting else 0),
    )
    try:
        return run.execute(candidates, prompting)
    finally:
        run.close()


def load_steering_log(log: str | os.PathLike[str]) -> tuple[SteeringResult, dict[str, Any]]:
    """A finished (or partial) evaluation read back from its log without a model: the result and the log's header."""
    record = SteeringLog(log, None)
    header = record.header or {}
    if "dev" not in record.baseline:
        raise EvaluationError(
            f"{log} has no unsteered answers yet; the evaluation that writes them did not get that far"
        )
    protocol = SteeringProtocol.from_dict(header.get("protocol", {}))
    result = SteeringResult(
        header.get("trait", "?"),
        header.get("direction", 1),
        tuple(header.get("parts", ())),
        dict(record.baseline),
        [r for r in record.runs if r.split == "dev"],
        {},
        protocol.threshold,
        protocol.objective,
        header.get("measures", ""),
        protocol.to_dict(),
    )
    tests = {(r.candidate, round(r.strength, 6), r.prompt): r for r in record.runs if r.split == "test"}
    if "test" in record.baseline:
        for group in dict.fromkeys(r.group for r in result.runs):
            chosen = result.best([r for r in result.runs if r.group == group])
            test = tests.get((chosen.candidate, round(chosen.strength, 6), chosen.prompt)) if chosen else None
            if chosen is not None and test is not None:
                result.outcomes[group] = Outcome(
                    group, chosen, test, record.baseline["test"], protocol.resamples, protocol.seed
                )
    return result, header


# -- the parts -------------------------------------------------------------------------------------------
def _questions(
    dataset: TraitDataset, direction: int, questions: Sequence[str] | None, protocol: SteeringProtocol
) -> SteeringQuestions:
    plan = dataset.steering_questions(direction)
    if questions is not None:
        dev, test = split_questions(list(questions))
        plan = SteeringQuestions(dev, test, plan.parts, plan.measures)
    dev = plan.dev[: protocol.dev_questions] if protocol.dev_questions else plan.dev
    test = plan.test[: protocol.test_questions] if protocol.test_questions else plan.test
    if not dev or not test:
        raise EvaluationError(
            f"trait '{dataset.name}' has {len(plan.dev)} dev and {len(plan.test)} test steering questions; both halves "
            'need at least one. Add questions to steering.json ({"questions": {"dev": [...], "test": [...]}}) '
            "or pass questions=[...] (they alternate between dev and test)"
        )
    return SteeringQuestions(tuple(dev), tuple(test), plan.parts, plan.measures)


def _candidates(
    model: Any, vectors: Mapping[str, TraitVector], layers: Sequence[int] | int | None, protocol: SteeringProtocol
) -> list[Candidate]:
    n_layers = int(model.cfg.n_layers)
    shared = sorted(set.intersection(*(set(v.layers) for v in vectors.values())))
    if not shared:
        raise EvaluationError("the vectors share no layer; compare vectors extracted at common layers")
    if layers is None:
        centres = steering_layers(n_layers, shared)
    else:
        wanted = [layers] if isinstance(layers, int) else list(layers)
        if not wanted:
            raise EvaluationError("layers is empty; pass at least one layer (or None for the default mid layers)")
        centres = [layer % n_layers if -n_layers <= layer < n_layers else layer for layer in wanted]
        missing = [layer for layer in centres if layer not in shared]
        if missing:
            raise EvaluationError(
                f"layers {missing} are not among the vectors' layers ({_ranges(shared)}); "
                f"the model has layers 0-{n_layers - 1}"
            )
    out = []
    for method in vectors:
        for centre in centres:
            for width in protocol.bands:
                band = tuple(
                    layer for layer in range(centre - (width - 1) // 2, centre + width // 2 + 1) if layer in shared
                )
                for positions in protocol.positions:
                    for centred in protocol.centred:
                        out.append(Candidate(band, method, positions, centred))
    return list(dict.fromkeys(out))


class _Run:
    """The state of one evaluation: questions, judges, the log, the centred vectors, the progress bar."""

    def __init__(
        self,
        model: Any,
        vectors: Mapping[str, TraitVector],
        dataset: TraitDataset,
        plan: SteeringQuestions,
        judges: Judges,
        protocol: SteeringProtocol,
        direction: int,
        record: SteeringLog,
        progress: bool,
        on_step: Callable[[int, int], None] | None,
        extra_batches: int,
    ) -> None:
        self.model, self.vectors, self.dataset, self.plan = model, dict(vectors), dataset, plan
        self.judges, self.protocol, self.direction, self.record = judges, protocol, direction, record
        self.on_step = on_step
        self.total = 2 + max_steps(protocol) + 1 + extra_batches  # baselines, search, test, prompting
        self.done = 0
        way = "toward" if direction > 0 else "away from"
        self.bar = tqdm(
            total=self.total, desc=f"steer {way} {dataset.name}", unit="batch", disable=not progress, leave=False
        )
        self._centred: dict[str, TraitVector] = {}
        self._forced: TeacherForced | None = None

    def close(self) -> None:
        self.bar.close()

    def tick(self) -> None:
        self.done = min(self.done + 1, self.total)
        self.bar.update(1)
        if self.on_step:
            self.on_step(self.done, self.total)

    def judge(self, questions: Sequence[str], responses: Sequence[str]) -> JudgedSet:
        return self.judges.judge(questions, responses, self.direction, self.plan.parts)

    def baseline(self, split: str) -> JudgedSet:
        if split not in self.record.baseline:
            questions = self.plan.split(split)
            answers = generate(self.model, list(questions), max_new_tokens=self.protocol.max_new_tokens)
            self.record.write_baseline(split, self.judge(questions, answers))
        self.tick()
        return self.record.baseline[split]

    def vector(self, candidate: Candidate) -> TraitVector:
        vec = self.vectors[candidate.method]
        if not candidate.centred:
            return vec
        if candidate.method not in self._centred:
            base = self.record.baseline["dev"]
            self._centred[candidate.method] = mean_centred(
                self.model, vec, self.dataset, base.questions, base.responses, self.direction
            )
        return self._centred[candidate.method]

    def ladder(self, candidate: Candidate) -> list[KLPoint]:
        key = candidate.key()
        if key not in self.record.ladders:
            if self._forced is None:
                base = self.record.baseline["dev"]
                n = self.protocol.kl_prompts
                self._forced = TeacherForced(self.model, base.questions[:n], base.responses[:n])
            below, main, above = kl_targets(self.protocol)
            setting = Setting(candidate.layers, positions=cast(Positions, candidate.positions))
            points = kl_ladder(
                self._forced, setting, (above or main)[-1], vector=self.vector(candidate), direction=self.direction
            )
            self.record.write_ladder(key, points)
        return self.record.ladders[key]

    def steered(self, proposals: Sequence[Proposal], split: str, step: int) -> list[Run]:
        """Judge each (candidate, strength) on `split`, generating only what the log lacks, in one batch."""
        questions = self.plan.split(split)
        keys = [(split, c.key(), round(s, 6), "") for c, s, _ in proposals]
        missing = list(
            dict.fromkeys(i for i, key in enumerate(keys) if self.record.find(key) is None and keys.index(key) == i)
        )
        if missing:
            settings = [
                Setting(
                    proposals[i][0].layers,
                    strength=self.direction * proposals[i][1],
                    vector=self.vector(proposals[i][0]),
                    positions=cast(Positions, proposals[i][0].positions),
                )  # sweep_generate checks it
                for i in missing
            ]
            texts = sweep_generate(
                self.model, None, settings, list(questions), max_new_tokens=self.protocol.max_new_tokens
            )
            for i, answers in zip(missing, texts):
                candidate, strength, kl = proposals[i]
                self.record.write_run(Run(split, self.judge(questions, answers), candidate, strength, None, kl, step))
        return [self.record.find(key) for key in keys]  # type: ignore[misc]

    def prompted(self, template: str, split: str) -> Run:
        key = (split, "", 0.0, template)
        if self.record.find(key) is None:
            questions = self.plan.split(split)
            system = template.format(description=self.dataset.description("HIGH" if self.direction > 0 else "LOW"))
            answers = generate(self.model, list(questions), system=system, max_new_tokens=self.protocol.max_new_tokens)
            self.record.write_run(Run(split, self.judge(questions, answers), None, 0.0, template))
        return self.record.find(key)  # type: ignore[return-value]

    def execute(self, candidates: list[Candidate], prompting: bool) -> SteeringResult:
        base = {"dev": self.baseline("dev")}
        result = SteeringResult(
            self.dataset.name,
            self.direction,
            self.plan.parts,
            base,
            [],
            {},
            self.protocol.threshold,
            self.protocol.objective,
            self.plan.measures,
            self.protocol.to_dict(),
        )

        def judge_step(proposals: list[Proposal], step: int) -> list[Run]:
            runs = self.steered(proposals, "dev", step)
            self.tick()
            return runs

        ladder = self.ladder if self.protocol.search == "calibrated" else None
        dev_runs = search(
            candidates, judge_step, self.protocol, ladder=ladder, best=result.best, coherent=result.coherent
        )
        result.runs = list({id(r): r for r in dev_runs}.values())  # a strength two targets share is one run
        if prompting:
            for template in PROMPT_TEMPLATES:
                result.runs.append(self.prompted(template, "dev"))
                self.tick()
        base["test"] = self.baseline("test")
        chosen = {
            group: result.best([r for r in result.runs if r.group == group])
            for group in dict.fromkeys(r.group for r in result.runs)
        }
        steered = [(g, run) for g, run in chosen.items() if run is not None and run.candidate is not None]
        tests = (
            self.steered(
                [(run.candidate, run.strength, run.kl) for _, run in steered],  # type: ignore[misc]
                "test",
                0,
            )
            if steered
            else []
        )
        self.tick()
        for (group, run), test in zip(steered, tests):
            result.outcomes[group] = Outcome(
                group, run, test, base["test"], self.protocol.resamples, self.protocol.seed
            )
        prompt_run = chosen.get(PROMPTING)
        if prompt_run is not None:
            result.outcomes[PROMPTING] = Outcome(
                PROMPTING,
                prompt_run,
                self.prompted(prompt_run.prompt or "", "test"),
                base["test"],
                self.protocol.resamples,
                self.protocol.seed,
            )
            self.tick()
        if self.on_step:
            self.on_step(self.total, self.total)
        return result


def _ranges(layers: Sequence[int]) -> str:
    return (
        f"{layers[0]}-{layers[-1]}"
        if layers and list(layers) == list(range(layers[0], layers[-1] + 1))
        else str(list(layers))
    )
