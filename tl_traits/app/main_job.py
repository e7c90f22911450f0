"""The main job (`tl-traits run`, `make demo`): extract every method, steer with judges, compare request groups, report.

Everything lands in one output folder: vectors (safetensors + JSON), JSONL results, a
summary.json, PNG plots and report.html; `report.build_report(out)` rebuilds the page from them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

from tl_traits.app.report import write_report
from tl_traits.core.errors import TlTraitsError, check_count
from tl_traits.core.files import atomic_write_text, safe_name, write_jsonl
from tl_traits.core.locks import folder_lock
from tl_traits.core.models import ModelKind, load_model, model_identity
from tl_traits.core.progress import Stages
from tl_traits.core.trait_sets import load_trait
from tl_traits.extraction.extract import default_methods, extract
from tl_traits.judging.defaults import default_judges
from tl_traits.monitoring.monitor import (
    PromptSetAnalysis,
    analyze_prompt_set,
    compare_rows,
    note_category,
    project,
)
from tl_traits.steering.evaluation import evaluate_steering
from tl_traits.steering.layers import steering_layers
from tl_traits.steering.protocol import SteeringProtocol
from tl_traits.steering.results import SteeringResult


class JobError(TlTraitsError):
    """A main-job setting that cannot work (a method not extracted, a trait missing, ...)."""


@dataclass
class JobConfig:
    """What the main job does; every field has the default `tl-traits run` uses."""

    model: str | None = None  # None: the embedded SmolLM2-135M-Instruct
    kind: str = "bridge"
    traits: tuple[str, ...] = ("emotion/joy", "alignment/refusal")
    methods: tuple[str, ...] | None = None  # None: every registered extractor that runs by default
    out: str = "out"
    limit: int | None = None  # N examples per side, N questions, N requests: a small trial run
    position: str = "response[:]"
    steer_method: str = "mean_diff"
    steering_layers: tuple[int, ...] | None = None  # None: the extracted layers nearest steering_depths
    steering_depths: tuple[float, ...] = (0.3, 0.5)
    questions: int = 10  # per half: settings are chosen on this many dev questions, scored on as many test questions
    max_new_tokens: int = 40
    kl_targets: tuple[float, ...] = (0.03, 0.1, 0.3)  # extend=1 adds the next rung (0.9) while the best is at the top
    prompt_set: str = "requests"
    monitor_trait: str = "alignment/refusal"
    group_judge: str = "refusal"
    note_groups: tuple[str, str] = ("harmful", "benign")  # also compared: prompts by their note's category
    view_prompts: int = 6
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class JobPaths:
    out: Path
    report: Path = field(init=False)
    summary: Path = field(init=False)

    def __post_init__(self) -> None:
        self.report = self.out / "report.html"
        self.summary = self.out / "results" / "summary.json"

    def vectors(self, trait: str) -> Path:
        return self.out / "vectors" / f"{safe_name(trait)}.safetensors"

    def steering_log(self, trait: str, limit: int | None) -> Path:
        suffix = f".limit{limit}" if limit else ""
        return self.out / "results" / f"steering-{safe_name(trait)}{suffix}.jsonl"

    @property
    def requests(self) -> Path:
        return self.out / "results" / "requests.jsonl"

    @property
    def projections(self) -> Path:
        return self.out / "results" / "projections.json"


def run_main_job(config: JobConfig | None = None, *, model: Any = None, stages: Stages | None = None) -> dict[str, Any]:
    """Run the whole job and return its summary (also written to results/summary.json)."""

    config = config or JobConfig()
    stages = stages or Stages(enabled=False)
    paths = JobPaths(Path(config.out))
    methods = list(config.methods or default_methods())
    if config.steer_method not in methods:
        raise JobError(
            f"steer_method '{config.steer_method}' is not among the methods {methods}; add it or pick another"
        )
    if config.monitor_trait not in config.traits:
        raise JobError(f"monitor_trait '{config.monitor_trait}' is not among the traits {list(config.traits)}")
    datasets = {name: load_trait(name) for name in config.traits}  # unknown traits fail before the model loads
    if kept := check_count(config.limit, "limit", JobError):
        datasets = {name: ds.limit(kept) for name, ds in datasets.items()}

    _refuse_trial_over_finished_run(paths, config)
    with folder_lock(paths.out, "tl-traits run"):
        return _run_locked(config, paths, datasets, methods, model, stages)


def _run_locked(
    config: JobConfig, paths: JobPaths, datasets: dict[str, Any], methods: list[str], model: Any, stages: Stages
) -> dict[str, Any]:
    """The job itself, while this process holds the output folder's lock."""
    if model is None:
        with stages.stage("load model"):
            model = load_model(config.model, kind=cast(ModelKind, config.kind))  # load_model checks the kind
    identity = model_identity(model)
    summary: dict[str, Any] = {"config": config.to_dict(), "model": identity.to_dict(), "traits": {}}
    vectors = {}
    questions = config.questions if not config.limit else min(config.questions, config.limit)
    protocol = SteeringProtocol(
        dev_questions=questions,
        test_questions=questions,
        max_new_tokens=config.max_new_tokens,
        kl_targets=config.kl_targets,
        extend=1,
    )

    for name, dataset in datasets.items():
        with stages.stage(f"extract {name} ({len(methods)} methods)", total=1) as advance:
            vecs = extract(
                model, dataset, methods, layers="all", position=config.position, seed=config.seed, progress=False
            )
            vecs.save(paths.vectors(name))
            advance(1, 1)
        vec = vecs[config.steer_method]
        vectors[name] = vec
        layers = steering_layers(identity.n_layers, vec.layers, config.steering_layers, config.steering_depths)
        log = paths.steering_log(name, config.limit)
        with stages.stage(f"steer {name} (layers {', '.join(map(str, layers))})", total=1) as advance:
            result = evaluate_steering(
                model,
                vec,
                dataset,
                layers=layers,
                judges=default_judges(dataset),
                protocol=protocol,
                log=log,
                progress=False,
                on_step=advance,
            )
        summary["traits"][name] = _trait_summary(name, vecs, config.steer_method, layers, result, paths, log)

    with stages.stage(f"analyse prompt set '{config.prompt_set}'", total=1) as advance:
        monitor_vec = vectors[config.monitor_trait]
        analysis = analyze_prompt_set(
            model,
            monitor_vec,
            config.prompt_set,
            judge=config.group_judge,
            limit=config.limit,
            max_new_tokens=config.max_new_tokens,
        )
        write_jsonl(paths.requests, analysis.rows)
        advance(1, 1)
    summary["requests"] = _analysis_summary(analysis, config)

    with stages.stage("per-token projections", total=1) as advance:
        view = _projection_view(model, vectors, analysis, config.view_prompts)
        atomic_write_text(paths.projections, json.dumps(view, ensure_ascii=False))
        advance(1, 1)

    summary["timings_s"] = dict(stages.seconds)
    atomic_write_text(paths.summary, json.dumps(summary, indent=2, ensure_ascii=False))
    with stages.stage("report", total=1) as advance:
        write_report(paths.out)
        advance(1, 1)
    summary["report"] = str(paths.report)
    return summary


def _refuse_trial_over_finished_run(paths: JobPaths, config: JobConfig) -> None:
    """A --limit trial into a folder holding a finished full run would overwrite its vectors, summary and report."""
    if not config.limit or not paths.summary.is_file():
        return
    try:
        finished = json.loads(paths.summary.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return  # not a finished run's summary: nothing worth protecting
    if isinstance(finished, dict) and not (finished.get("config") or {}).get("limit"):
        raise JobError(
            f"{paths.out} holds a finished full run; a trial run (limit {config.limit}) would overwrite its "
            "vectors, summary and report. Write the trial to another folder (--out)"
        )


def _trait_summary(
    name: str, vecs: Any, method: str, layers: list[int], result: SteeringResult, paths: JobPaths, log: Path
) -> dict[str, Any]:
    methods = {}
    for method_name in vecs.methods:
        vec = vecs[method_name]
        layer = vec.best_layer("auroc")
        row = vec.layers.index(layer)
        methods[method_name] = {
            "best_layer": layer,
            **{k: float(vec.metrics[k][row]) for k in ("auroc", "accuracy", "cohens_d")},
            "mean_auroc": float(vec.metrics["auroc"].mean()),
        }
    return {
        "vectors": str(paths.vectors(name).relative_to(paths.out)),
        "steering_log": str(log.relative_to(paths.out)),
        "n_train": vecs.metadata["dataset"]["n_train"],
        "n_val": vecs.metadata["dataset"]["n_val"],
        "methods": methods,
        "steer_method": method,
        "detection_layer": vecs[method].best_layer("auroc"),
        "steering_layers": layers,
        "steering_search": result.table().to_dicts(),  # the dev search, per layer
        "steering": result.headline(),  # the setting chosen on dev and its test-half figures, one setting only
        "measures": result.measures,
    }


def _analysis_summary(analysis: PromptSetAnalysis, config: JobConfig) -> dict[str, Any]:
    counts = {g: sum(r["group"] == g for r in analysis.rows) for g in analysis.groups}
    by_note = compare_rows(analysis.rows, config.note_groups, key=note_category)
    return {
        "prompt_set": config.prompt_set,
        "trait": config.monitor_trait,
        "method": config.steer_method,
        "layer": analysis.layer,
        "judge": config.group_judge,
        "groups": list(analysis.groups),
        "counts": counts,
        "unscored": sum(r["group"] is None for r in analysis.rows),
        "comparison": analysis.comparison.to_dict() if analysis.comparison else None,
        "by_note": {
            "groups": list(config.note_groups),
            "counts": {g: sum(note_category(r) == g for r in analysis.rows) for g in config.note_groups},
            "comparison": by_note.to_dict() if by_note else None,
        },
    }


def _projection_view(model: Any, vectors: dict[str, Any], analysis: PromptSetAnalysis, n: int) -> dict[str, Any]:
    """A few requests from each group, every trait projected at the analysis layer, tokens as display text."""
    by_group = [[r for r in analysis.rows if r["group"] == g] for g in analysis.groups]
    chosen: list[dict[str, Any]] = []
    for i in range(n):
        group = by_group[i % 2] if by_group[i % 2] else by_group[(i + 1) % 2]
        if group:
            chosen.append(group.pop(0))
    layer = analysis.layer
    named = {name.split("/")[-1]: vec for name, vec in vectors.items()}
    proj = project(
        model, named, [r["prompt"] for r in chosen], layers=[layer], responses=[r["response"] for r in chosen]
    )
    items = []
    for row, item in zip(chosen, proj.items):
        # The first token is an attention sink with a residual norm many times the rest; its
        # projection would set the colour scale and wash out every other token.
        items.append(
            {
                "id": row["id"],
                "group": row["group"],
                "note": row["note"],
                "tokens": [model.tokenizer.convert_tokens_to_string([t]) for t in item.tokens[1:]],
                "segments": item.segments[1:],
                "centered": {trait: item.centered[(trait, layer)][1:].tolist() for trait in proj.traits},
            }
        )
    return {"layer": layer, "metric": "centered", "traits": proj.traits, "items": items}
