"""The `tl-traits` command line: run (the main job), extract, steer, evaluate, monitor, report, plugins, quant-study, poison,
sweep, steer-sweep, quant-sweep, aggregate, train-sae.

Exit codes: 0 done, 1 an unexpected failure (a bug: rerun with --debug for the traceback),
2 bad input (the message names the problem and the fix), 130 interrupted.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, List, Optional

import typer

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Trait directions in language models: extract, steer, judge, monitor and report.",
)
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
_state = {"debug": False}

ModelOpt = typer.Option(None, "--model", "-m", help="A local HF folder or TL model name; default: the embedded SmolLM2-135M-Instruct.")
KindOpt = typer.Option("bridge", "--kind", help="bridge (TransformerBridge) or hooked (HookedTransformer).")
JsonOpt = typer.Option(False, "--json", help="Print a JSON result on stdout (progress goes to stderr).")
LimitOpt = typer.Option(None, "--limit", min=1, help="Try the run on N examples first.")
QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress bars.")


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show the full traceback on errors.")) -> None:
    _state["debug"] = debug


def _split(values: Optional[List[str]]) -> list[str] | None:
    """Options given repeatedly or comma-separated: --methods a,b --methods c."""
    if not values:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def _layers(text: Optional[str]) -> Any:
    if text is None or text == "all":
        return "all" if text else None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"layers must be 'all' or comma-separated integers like 6,10,14, not {text!r}")


def _load(model: Optional[str], kind: str, stages: Any = None) -> Any:
    from tl_traits.core.models import load_model

    if stages is None:
        return load_model(model, kind=kind)
    with stages.stage("load model"):
        return load_model(model, kind=kind)


def _stages(quiet: bool, as_json: bool) -> Any:
    from tl_traits.core.progress import Stages

    return Stages(enabled=not quiet and (not as_json or sys.stderr.isatty()))


def _emit(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def _vectors(path: Path, method: Optional[str]) -> Any:
    from tl_traits.core.vectors import TraitVectors

    vecs = TraitVectors.load(path)
    if method is None:
        method = "mean_diff" if "mean_diff" in vecs.methods else vecs.methods[0]
    return vecs[method]


# -- commands -----------------------------------------------------------------------------------------
@app.command()
def run(
    out: Path = typer.Option(Path("out"), "--out", "-o", help="Output folder (report.html, vectors, results)."),
    model: Optional[str] = ModelOpt,
    kind: str = KindOpt,
    traits: Optional[List[str]] = typer.Option(None, "--traits", help="Traits (default emotion/joy,alignment/refusal)."),
    methods: Optional[List[str]] = typer.Option(None, "--methods", help="Extractors (default: every registered one)."),
    steps: int = typer.Option(6, "--steps", min=1, help="Coefficient-search steps per trait."),
    questions: int = typer.Option(12, "--questions", min=1, help="Steering questions per trait."),
    max_new_tokens: int = typer.Option(40, "--max-new-tokens", min=1),
    limit: Optional[int] = LimitOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """The main job: extract all methods at all layers, steer with judges, compare request groups, write a report."""
    from tl_traits.app.main_job import JobConfig, run_main_job

    config = JobConfig(model=model, kind=kind, out=str(out), limit=limit, steps=steps, questions=questions,
                       max_new_tokens=max_new_tokens)
    if _split(traits):
        config.traits = tuple(_split(traits))
        if config.monitor_trait not in config.traits:
            config.monitor_trait = config.traits[-1]
    if _split(methods):
        config.methods = tuple(_split(methods))
    with _stages(quiet, as_json) as stages:
        summary = run_main_job(config, stages=stages)
    if as_json:
        _emit(summary)
        return
    comp = summary["requests"]["comparison"]
    for trait, info in summary["traits"].items():
        m = info["methods"][info["steer_method"]]
        delta = info["coherent_delta"]
        typer.echo(f"{trait}: {info['steer_method']} AUROC {m['auroc']:.3f} at layer {m['best_layer']}; "
                   f"coherent delta {'n/a' if delta is None else f'{delta:+.1f}'} at layer {info['best_steering_layer']}")
    if comp:
        g = summary["requests"]["groups"]
        typer.echo(f"requests: {g[0]} vs {g[1]} ({comp['n_a']}/{comp['n_b']}): Cohen's d {comp['cohens_d']:.2f}, "
                   f"AUROC {comp['auroc']:.3f}, p {comp['p_value']:.2g}")
    by_note = summary["requests"]["by_note"]
    if by_note["comparison"]:
        c, g = by_note["comparison"], by_note["groups"]
        typer.echo(f"requests by note: {g[0]} vs {g[1]} ({c['n_a']}/{c['n_b']}): Cohen's d {c['cohens_d']:.2f}, "
                   f"AUROC {c['auroc']:.3f}, p {c['p_value']:.2g}")
    typer.echo(f"report: {Path(summary['report']).resolve()}")


@app.command()
def extract(
    trait: str = typer.Argument(..., help="A bundled trait (emotion/joy), a folder or a JSONL file."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Save the vectors here (.safetensors)."),
    methods: Optional[List[str]] = typer.Option(None, "--methods", help="Extractors (default mean_diff,probe)."),
    position: str = typer.Option("response[:]", "--position", help="prompt[-1], response[:5], response[:], all"),
    layers: Optional[str] = typer.Option("all", "--layers", help="'all' or comma-separated layers."),
    model: Optional[str] = ModelOpt,
    kind: str = KindOpt,
    limit: Optional[int] = LimitOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Extract trait vectors for one trait set and print held-out metrics per method."""
    from tl_traits.core.trait_sets import load_trait
    from tl_traits.extraction.extract import extract as do_extract

    dataset = load_trait(trait)
    if limit:
        dataset = dataset.limit(limit)
    layer_spec = _layers(layers)
    with _stages(quiet, as_json) as stages:
        m = _load(model, kind, stages)
        with stages.stage(f"extract {dataset.name}"):
            vecs = do_extract(m, dataset, _split(methods) or ["mean_diff", "probe"], layers=layer_spec,
                              position=position, progress=False)
    saved = str(vecs.save(out)) if out else None
    if as_json:
        _emit({"trait": dataset.name, "saved": saved, "methods": {
            name: {"best_layer": vecs[name].best_layer(), **{k: float(v[vecs[name].layers.index(vecs[name].best_layer())])
                                                            for k, v in vecs[name].metrics.items()}}
            for name in vecs.methods}})
        return
    typer.echo(vecs.report())
    if saved:
        typer.echo(f"saved: {saved}")


@app.command()
def steer(
    vectors: Path = typer.Argument(..., help="A .safetensors file written by extract."),
    layer: Optional[int] = typer.Option(None, "--layer", "-l", help="Default: the method's best held-out layer."),
    strength: float = typer.Option(0.5, "--strength", "-s", help="x the mean residual norm at the layer (negative: away)."),
    prompt: Optional[List[str]] = typer.Option(None, "--prompt", "-p", help="Prompts; none: an interactive prompt."),
    method: Optional[str] = typer.Option(None, "--method", help="Which method in the file (default mean_diff)."),
    compare: bool = typer.Option(True, "--compare/--no-compare", help="Also show the unsteered answer."),
    max_new_tokens: int = typer.Option(60, "--max-new-tokens", min=1),
    model: Optional[str] = ModelOpt,
    kind: str = KindOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Generate with a trait vector added at one layer; interactive when no --prompt is given."""
    from tl_traits.core.generation import generate
    from tl_traits.steering.steer import steer as do_steer

    vec = _vectors(vectors, method)
    m = _load(model, kind)
    vec.check_model(m)
    at = layer if layer is not None else vec.best_layer()

    def answer(prompts: list[str]) -> list[dict[str, Any]]:
        base = generate(m, prompts, max_new_tokens=max_new_tokens) if compare else [None] * len(prompts)
        with do_steer(m, vec, at, strength=strength):
            steered = generate(m, prompts, max_new_tokens=max_new_tokens)
        return [{"prompt": p, "layer": at, "strength": strength, "steered": s, "unsteered": b}
                for p, s, b in zip(prompts, steered, base)]

    def show(rows: list[dict[str, Any]]) -> None:
        for row in rows:
            if row["unsteered"] is not None:
                typer.echo(f"unsteered: {row['unsteered'].strip()}")
            typer.echo(f"steered (layer {at}, strength {strength:g}): {row['steered'].strip()}\n")

    if prompt:
        rows = answer(list(prompt))  # each --prompt whole: prompts may contain commas
        _emit(rows) if as_json else show(rows)
        return
    typer.echo(f"steering with {vec.method} at layer {at}, strength {strength:g}; an empty line or Ctrl-D quits", err=True)
    while True:
        try:
            line = input("> ")
        except EOFError:
            break
        if not line.strip():
            break
        rows = answer([line])
        _emit(rows) if as_json else show(rows)


@app.command()
def evaluate(
    vectors: Path = typer.Argument(..., help="A .safetensors file written by extract."),
    trait: str = typer.Argument(..., help="The trait whose steering questions and definition are used."),
    layers: Optional[str] = typer.Option(None, "--layers", help="Comma-separated layers (default: the best layer)."),
    judges: Optional[List[str]] = typer.Option(None, "--judges", help="A trait judge and a coherence judge (default vader,perplexity)."),
    method: Optional[str] = typer.Option(None, "--method"),
    direction: int = typer.Option(1, "--direction", help="+1 toward the trait, -1 away from it."),
    steps: int = typer.Option(6, "--steps", min=1),
    max_new_tokens: int = typer.Option(40, "--max-new-tokens", min=1),
    log: Optional[Path] = typer.Option(None, "--log", help="JSONL log to append to and resume from."),
    model: Optional[str] = ModelOpt,
    kind: str = KindOpt,
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Use the first N steering questions."),
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Coefficient search with judges: per layer, the best trait gain that keeps coherence."""
    from tl_traits.steering.evaluation import evaluate_steering

    vec = _vectors(vectors, method)
    layer_list = _layers(layers) or [vec.best_layer()]
    with _stages(quiet, as_json) as stages:
        m = _load(model, kind, stages)
        with stages.stage(f"evaluate {vec.method}", total=steps + 1) as advance:
            result = evaluate_steering(m, vec, trait, layers=layer_list, judges=_split(judges) or ["vader", "perplexity"],
                                       direction=direction, subset=limit, steps=steps, max_new_tokens=max_new_tokens,
                                       log=log, on_step=advance)
    rows = result.table()
    if as_json:
        _emit({"baseline_trait": result.baseline_trait, "baseline_coherence": result.baseline_coherence, "layers": rows})
        return
    typer.echo(f"baseline: trait {result.baseline_trait:.1f}, coherence {result.baseline_coherence:.1f}")
    for r in rows:
        delta = "none coherent" if r["coherent_delta"] is None else f"{r['coherent_delta']:+.1f} (strength {r['strength']:.2f})"
        typer.echo(f"layer {r['layer']:>3}: coherent delta {delta}")


@app.command()
def monitor(
    vectors: List[Path] = typer.Argument(..., help="One or more .safetensors files (one trait each)."),
    prompt: Optional[List[str]] = typer.Option(None, "--prompt", "-p", help="Prompts to project (default: the prompt set)."),
    prompt_set: str = typer.Option("requests", "--prompt-set", help="A bundled set name or a JSON file."),
    judge: str = typer.Option("refusal", "--judge", help="The judge that splits the prompt set into groups."),
    layer: Optional[int] = typer.Option(None, "--layer", help="Default: the first vector's best layer."),
    method: Optional[str] = typer.Option(None, "--method"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the per-token page here (.html)."),
    max_new_tokens: int = typer.Option(40, "--max-new-tokens", min=1),
    model: Optional[str] = ModelOpt,
    kind: str = KindOpt,
    limit: Optional[int] = LimitOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Per-token trait projections for prompts, or a group comparison over a prompt set."""
    from tl_traits.monitoring.monitor import analyze_prompt_set, project
    from tl_traits.monitoring.views import token_projections

    named = {}
    for path in vectors:
        vec = _vectors(path, method)
        named[str(vec.metadata.get("dataset", {}).get("name", path.stem)).split("/")[-1]] = vec
    first = next(iter(named.values()))
    at = layer if layer is not None else first.best_layer()
    with _stages(quiet, as_json) as stages:
        m = _load(model, kind, stages)
        if prompt:
            with stages.stage("project"):
                proj = project(m, named, list(prompt)[:limit] if limit else list(prompt), layers=[at],
                               max_new_tokens=max_new_tokens)
            if out:
                token_projections(m, projections=proj, layer=at).save(out)
            if as_json:
                _emit(proj.to_dataframe().to_dict(orient="records"))
            else:
                for item in proj.items:
                    means = {t: float(item.centered[(t, at)].mean()) for t in proj.traits}
                    typer.echo(f"prompt {item.prompt_id}: " + ", ".join(f"{t} {v:+.2f}" for t, v in means.items())
                               + f" | {item.response.strip()[:100]}")
                if out:
                    typer.echo(f"page: {out.resolve()}")
            return
        with stages.stage(f"analyse {prompt_set}"):
            analysis = analyze_prompt_set(m, first, prompt_set, judge=judge, layer=at, limit=limit,
                                          max_new_tokens=max_new_tokens)
    comp = analysis.comparison
    if as_json:
        _emit({"layer": at, "groups": list(analysis.groups), "comparison": comp.to_dict() if comp else None,
               "rows": analysis.rows})
        return
    counts = {g: sum(r["group"] == g for r in analysis.rows) for g in analysis.groups}
    typer.echo(f"{analysis.trait} at layer {at}: " + ", ".join(f"{g} {n}" for g, n in counts.items()))
    if comp:
        typer.echo(f"Cohen's d {comp.cohens_d:.2f} (95% CI {comp.d_ci[0]:.2f}..{comp.d_ci[1]:.2f}), "
                   f"AUROC {comp.auroc:.3f}, Welch p {comp.p_value:.2g}")
    else:
        typer.echo("too few prompts in one group to compare (each needs at least 2)")


@app.command("quant-study")
def quant_study(
    trait: str = typer.Argument("emotion/joy", help="The trait to extract and steer."),
    backends: Optional[List[str]] = typer.Option(None, "--backends", help="Quantizers (default fp16,bf16,int8,int4,nf4)."),
    methods: Optional[List[str]] = typer.Option(None, "--methods", help="Extractors (default mean_diff,probe)."),
    layers: Optional[str] = typer.Option("all", "--layers", help="'all' or comma-separated layers to extract."),
    steering_layers: Optional[str] = typer.Option(None, "--steering-layers", help="Comma-separated (default: 3 mid layers)."),
    steer_flag: bool = typer.Option(True, "--steer/--no-steer", help="Also measure the retained steering effect."),
    questions: int = typer.Option(8, "--questions", min=1),
    steps: int = typer.Option(4, "--steps", min=1),
    max_new_tokens: int = typer.Option(32, "--max-new-tokens", min=1),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write study.json, study.md and study.png here."),
    model: Optional[str] = ModelOpt,
    kind: str = KindOpt,
    limit: Optional[int] = LimitOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """How much each quantizer bends the trait direction, the activations and the steering effect."""
    from tl_traits.quantization.study import DEFAULT_BACKENDS, quantization_study

    layer_spec = _layers(layers)
    steer_at = _layers(steering_layers)
    with _stages(quiet, as_json) as stages:
        study = quantization_study(
            lambda: _load(model, kind), trait, backends=_split(backends) or DEFAULT_BACKENDS,
            methods=_split(methods) or ["mean_diff", "probe"], layers=layer_spec, steering_layers=steer_at,
            steer=steer_flag, questions=questions if not limit else min(questions, limit), steps=steps,
            max_new_tokens=max_new_tokens, limit=limit, stages=stages,
        )
    saved = {k: str(v) for k, v in study.save(out).items()} if out else {}
    if as_json:
        _emit({**study.to_dict(), "saved": saved})
        return
    typer.echo(study.to_markdown())
    for kind_, path in saved.items():
        typer.echo(f"{kind_}: {path}")


def _options(values: Optional[List[str]]) -> dict[str, Any]:
    """--option key=value (repeatable); values parse as JSON when they can (numbers, lists), else stay text."""
    out: dict[str, Any] = {}
    for item in values or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"options look like key=value, not {item!r}")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def _read_rows(path: Optional[Path], split: str, n: Optional[int]) -> list[dict[str, Any]]:
    """Rows of a JSONL file, or the bundled instruction set's split."""
    if path is None:
        from tl_traits.training.instruction_data import instruction_dataset

        data = instruction_dataset()
        rows = data.train if split == "train" else data.test
    else:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return rows[:n] if n else rows


OptionOpt = typer.Option(None, "--option", help="An attack option, key=value (repeatable), e.g. --option trigger=cf.")
ExecutorOpt = typer.Option("local", "--executor", help="Where runs go: local, ray or slurm (docs/scaling.md).")
WorkersOpt = typer.Option(1, "--workers", min=1, help="local: processes running runs side by side (each loads the model).")
RetriesOpt = typer.Option(1, "--retries", min=0, help="Retry a failed run this many times before recording it as failed.")
ExecutorOptionOpt = typer.Option(None, "--executor-option", help="key=value for the executor (repeatable): "
                                 "ray address=auto, cpus=4, gpus=1; slurm partition=gpu, timeout_min=240, gpus=1, folder=logs.")


def _executor(name: str, workers: int, retries: int, options: Optional[List[str]], quiet: bool) -> Any:
    """The executor the sweep commands hand their runs to; progress and retries reported on stderr."""
    from tl_traits.scale.executors import EXECUTORS, make_executor

    if name not in EXECUTORS:
        raise typer.BadParameter(f"unknown executor '{name}'; use one of {', '.join(EXECUTORS)}")
    extra = _options(options)
    if name == "local":
        extra["workers"] = workers
    elif workers != 1:
        raise typer.BadParameter("--workers is for --executor local; Ray and Slurm size themselves (--executor-option cpus=N)")
    log = (lambda msg: typer.echo(msg, err=True)) if not quiet else (lambda msg: None)
    return make_executor(name, retries=retries, progress=not quiet, log=log, **extra)


DtypeOpt = typer.Option("float32", "--dtype", help="float32, bfloat16 or float16 (a 70B model: bfloat16).")
NDevicesOpt = typer.Option(1, "--n-devices", min=1, help="Split the model's layers over this many GPUs (TL's placement).")
DeviceMapOpt = typer.Option(None, "--device-map", help="bridge: a Hugging Face device map, auto or balanced.")


def _model_for(engine: Any, model: Optional[str], kind: str, dtype: str = "float32", n_devices: int = 1,
               device_map: Optional[str] = None) -> Any:
    """In-process runs use a model loaded here; remote runs get a spec and load it where they run."""
    from tl_traits.core.models import ModelSpec, load_model

    if engine.remote:
        return ModelSpec(model, kind, dtype, n_devices=n_devices, device_map=device_map)
    return load_model(model, kind=kind, dtype=dtype, n_devices=n_devices, device_map=device_map)  # type: ignore[arg-type]


def _report_failures(result: Any) -> None:
    for folder, error in result.failed:
        last = [line for line in error.strip().splitlines() if line.strip()][-1:] or [error]
        typer.echo(f"FAILED {folder}: {last[0]} (details: {folder / 'failure.json'})", err=True)


@app.command()
def poison(
    out: Path = typer.Option(..., "--out", "-o", help="Folder for poisoned_train.jsonl, poisoned_indices.npy, poison.json."),
    attack: str = typer.Option("trigger", "--attack", "-a", help="An attack plugin (tl-traits plugins lists them)."),
    rate: float = typer.Option(0.05, "--rate", min=0.0, max=1.0, help="Fraction of examples to poison."),
    seed: int = typer.Option(0, "--seed"),
    data: Optional[Path] = typer.Option(None, "--data", help="A JSONL file of prompt/response rows; default: the bundled train split."),
    option: Optional[List[str]] = OptionOpt,
    limit: Optional[int] = LimitOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Poison an instruction dataset with an attack plugin; write the rows and which ones were attacked."""
    from tl_traits.training.poisoning import poison as poison_rows

    made = poison_rows(_read_rows(data, "train", limit), attack, rate, seed, **_options(option))
    made.save(out, source=str(data) if data else "bundled instruction set (train)")
    info = made.metadata()
    if as_json:
        _emit({**info, "out": str(out)})
        return
    typer.echo(f"{info['n_poisoned']} of {info['n_rows']} rows poisoned with '{attack}' (rate {rate}, seed {seed}): {out}")


@app.command()
def sweep(
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", "-o", help="Where run folders go; finished runs are skipped."),
    model: Optional[str] = ModelOpt,
    kind: str = KindOpt,
    attacks: Optional[List[str]] = typer.Option(None, "--attacks", help="Attack plugins (default: trigger)."),
    rates: Optional[List[str]] = typer.Option(None, "--rates", help="Poison rates (default 0.005,0.01,0.05,0.1)."),
    seeds: Optional[List[str]] = typer.Option(None, "--seeds", help="Seeds (default 0)."),
    option: Optional[List[str]] = typer.Option(None, "--option", help="attack.key=value (repeatable), e.g. trigger.trigger=cf."),
    n_train: int = typer.Option(300, "--n-train", min=1, help="Bundled train rows."),
    n_test: int = typer.Option(100, "--n-test", min=1, help="Bundled test rows."),
    epochs: int = typer.Option(2, "--epochs", min=1),
    lr: float = typer.Option(1e-4, "--lr"),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    trainable: str = typer.Option("last:4", "--trainable", help="all, last:N or from:L."),
    detect_layer: Optional[int] = typer.Option(None, "--detect-layer", help="Also score detection (spectral, trait) at this layer."),
    dtype: str = DtypeOpt,
    n_devices: int = NDevicesOpt,
    device_map: Optional[str] = DeviceMapOpt,
    executor: str = ExecutorOpt,
    workers: int = WorkersOpt,
    retries: int = RetriesOpt,
    executor_option: Optional[List[str]] = ExecutorOptionOpt,
    limit: Optional[int] = LimitOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Poison-rate sweep on the bundled instruction set: poison, fine-tune, measure ASR / clean accuracy per run."""
    from tl_traits.scale.poison_sweep import DEFAULT_RATES, DetectionSpec, poison_sweep
    from tl_traits.training.instruction_data import instruction_dataset
    from tl_traits.training.trainer import TrainConfig

    try:
        rate_list = [float(r) for r in _split(rates)] if rates else list(DEFAULT_RATES)
        seed_list = [int(s) for s in _split(seeds)] if seeds else [0]
    except ValueError as exc:
        raise typer.BadParameter(f"rates are fractions and seeds integers: {exc}")
    per_attack: dict[str, dict[str, Any]] = {}
    for key, value in _options(option).items():
        name, dot, field = key.partition(".")
        if not dot:
            raise typer.BadParameter(f"sweep options look like attack.key=value, not {key!r}")
        per_attack.setdefault(name, {})[field] = value
    data = instruction_dataset(min(n_train, limit or n_train), min(n_test, limit or n_test))
    config = TrainConfig(lr=lr, epochs=epochs, batch_size=batch_size, trainable=trainable)
    detection = DetectionSpec(detect_layer, methods=("spectral", "trait")) if detect_layer is not None else None
    engine = _executor(executor, workers, retries, executor_option, quiet)
    result = poison_sweep(
        _model_for(engine, model, kind, dtype, n_devices, device_map), data, _split(attacks) or ["trigger"], rate_list, seed_list, runs_dir=runs_dir,
        train_config=config, attack_kwargs=per_attack, detection=detection, executor=engine, progress=not quiet,
        log=engine.log,
    )
    _finish_sweep(result, runs_dir, len(result.summaries), as_json)


def _finish_sweep(result: Any, runs_dir: Path, n_done: int, as_json: bool) -> None:
    """Aggregate the run folders, print (or emit) the table, name failures; exit 1 when a run failed."""
    from tl_traits.scale.poison_sweep import aggregate

    _report_failures(result)
    table = aggregate(runs_dir) if n_done else None
    if as_json:
        _emit({"runs_dir": str(runs_dir), "seconds": round(result.seconds, 1), "executor": result.executor,
               "skipped": [str(p) for p in result.skipped],
               "failed": [{"folder": str(f), "error": e} for f, e in result.failed],
               "runs": json.loads(table.to_json(orient="records")) if table is not None else []})
    else:
        if table is not None:
            _print_sweep(table)
        typer.echo(f"{n_done} runs done ({len(result.skipped)} skipped, {len(result.failed)} failed) in "
                   f"{result.seconds:.0f} s; table: {runs_dir / 'aggregate.csv'}, plot: {runs_dir / 'aggregate.png'}")
    if result.failed:
        raise typer.Exit(EXIT_FAILED)


SWEEP_COLUMNS = {
    "poison": ("model", "attack", "rate", "seed", "n_poisoned", "asr", "clean_accuracy", "clean_exact", "clean_loss",
               "detection_auroc_spectral", "detection_auroc_trait"),
    "steering": ("model", "trait", "method", "layer", "auroc", "baseline_trait", "steered_trait", "coherent_delta",
                 "strength", "steered_coherence"),
    "quantization": ("model", "trait", "backend", "method", "mean_cosine", "min_cosine", "ref_auroc_mean", "max_drift",
                     "coherent_delta", "retained"),
}


def _print_sweep(table: Any) -> None:
    for kind, columns in SWEEP_COLUMNS.items():
        part = table[table["sweep"] == kind] if "sweep" in table.columns else table
        if part.empty:
            continue
        present = [c for c in columns if c in part.columns]
        typer.echo(part[present].to_string(index=False, float_format=lambda x: f"{x:.3f}"))


@app.command("steer-sweep")
def steer_sweep(
    traits: List[str] = typer.Argument(..., help="Traits: bundled names (emotion/joy), folders or JSONL files."),
    methods: Optional[List[str]] = typer.Option(None, "--methods", help="Extractors (default mean_diff)."),
    layers: Optional[str] = typer.Option(None, "--layers", help="Comma-separated layers (default: 3 at 25-55% depth)."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", "-o", help="Where run folders go; finished runs are skipped."),
    questions: int = typer.Option(8, "--questions", min=1),
    steps: int = typer.Option(4, "--steps", min=1),
    max_new_tokens: int = typer.Option(32, "--max-new-tokens", min=1),
    model: Optional[str] = ModelOpt,
    kind: str = KindOpt,
    dtype: str = DtypeOpt,
    n_devices: int = NDevicesOpt,
    device_map: Optional[str] = DeviceMapOpt,
    executor: str = ExecutorOpt,
    workers: int = WorkersOpt,
    retries: int = RetriesOpt,
    executor_option: Optional[List[str]] = ExecutorOptionOpt,
    limit: Optional[int] = LimitOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Steering sweep: per (trait, method, layer) extract the vector there and search the steering strength."""
    from tl_traits.scale.grids import steering_sweep

    engine = _executor(executor, workers, retries, executor_option, quiet)
    layer_list = _layers(layers)
    if layer_list == "all":
        raise typer.BadParameter("--layers takes comma-separated layers for a steering sweep, not 'all'")
    result = steering_sweep(
        _model_for(engine, model, kind, dtype, n_devices, device_map), traits, _split(methods) or ["mean_diff"], layer_list, runs_dir=runs_dir,
        questions=questions if not limit else min(questions, limit), steps=steps, max_new_tokens=max_new_tokens,
        limit=limit, executor=engine, progress=not quiet, log=engine.log,
    )
    _finish_sweep(result, runs_dir, len(result.rows), as_json)


@app.command("quant-sweep")
def quant_sweep(
    traits: List[str] = typer.Argument(..., help="Traits: bundled names (emotion/joy), folders or JSONL files."),
    backends: Optional[List[str]] = typer.Option(None, "--backends", help="Quantizers (default fp16,bf16,int8,int4,nf4)."),
    methods: Optional[List[str]] = typer.Option(None, "--methods", help="Extractors (default mean_diff,probe)."),
    layers: Optional[str] = typer.Option("all", "--layers", help="'all' or comma-separated layers to extract."),
    steering_layers: Optional[str] = typer.Option(None, "--steering-layers", help="Comma-separated (default: 3 mid layers)."),
    steer_flag: bool = typer.Option(True, "--steer/--no-steer", help="Also measure the retained steering effect."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", "-o", help="Where run folders go; finished runs are skipped."),
    questions: int = typer.Option(8, "--questions", min=1),
    steps: int = typer.Option(4, "--steps", min=1),
    max_new_tokens: int = typer.Option(32, "--max-new-tokens", min=1),
    model: Optional[str] = ModelOpt,
    kind: str = KindOpt,
    dtype: str = DtypeOpt,
    n_devices: int = NDevicesOpt,
    device_map: Optional[str] = DeviceMapOpt,
    executor: str = ExecutorOpt,
    workers: int = WorkersOpt,
    retries: int = RetriesOpt,
    executor_option: Optional[List[str]] = ExecutorOptionOpt,
    limit: Optional[int] = LimitOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """The quantization study over traits x backends, one run per pair (each with its own float32 reference)."""
    from tl_traits.quantization.study import DEFAULT_BACKENDS
    from tl_traits.scale.grids import quantization_sweep

    engine = _executor(executor, workers, retries, executor_option, quiet)
    result = quantization_sweep(
        _model_for(engine, model, kind, dtype, n_devices, device_map), traits, _split(backends) or list(DEFAULT_BACKENDS), runs_dir=runs_dir,
        executor=engine, progress=not quiet, log=engine.log, methods=_split(methods) or ["mean_diff", "probe"],
        layers=_layers(layers), steering_layers=_layers(steering_layers), steer=steer_flag,
        questions=questions if not limit else min(questions, limit), steps=steps, max_new_tokens=max_new_tokens,
        limit=limit,
    )
    _finish_sweep(result, runs_dir, len(result.rows), as_json)


@app.command()
def aggregate(
    runs_dir: Path = typer.Argument(Path("runs"), help="A folder of sweep runs."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="CSV path (default RUNS_DIR/aggregate.csv); the plot goes beside it."),
    as_json: bool = JsonOpt,
) -> None:
    """Merge every summary.csv below RUNS_DIR (any sweep, any executor) into one CSV and plot it."""
    from tl_traits.scale.poison_sweep import aggregate as merge

    table = merge(runs_dir, out)
    if as_json:
        _emit(json.loads(table.to_json(orient="records")))
        return
    _print_sweep(table)
    path = out or runs_dir / "aggregate.csv"
    typer.echo(f"table: {path}, plot: {path.with_suffix('.png')}")


@app.command("train-sae")
def train_sae_command(
    layer: Optional[int] = typer.Option(None, "--layer", "-l", help="Layer to train on (default: 40% depth, layer 12 of 30)."),
    hook: str = typer.Option("resid_post", "--hook", help="resid_post, resid_pre, resid_mid, attn_out or mlp_out."),
    d_sae: Optional[int] = typer.Option(None, "--d-sae", min=1, help="Features (default 8 x d_model)."),
    k: int = typer.Option(32, "--k", min=1, help="Active features per token (TopK)."),
    tokens: int = typer.Option(1_000_000, "--tokens", min=1, help="Training tokens (activations seen)."),
    lr: float = typer.Option(1e-3, "--lr", help="Adam learning rate (constant)."),
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="A .txt (paragraphs split by blank lines) or .jsonl "
                                          "(text, or prompt+response) file; default: the offline corpus (docs/sae.md)."),
    replies: int = typer.Option(320, "--replies", min=1, help="Model replies in the default corpus (generated once, cached)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="SAE folder (default: the SAE store, where the sae extractor looks)."),
    force: bool = typer.Option(False, "--force", help="Replace an SAE already in that folder (after the new one is complete)."),
    if_missing: bool = typer.Option(False, "--if-missing", help="Do nothing when that folder already holds an SAE."),
    seed: int = typer.Option(0, "--seed"),
    model: Optional[str] = ModelOpt,
    kind: str = KindOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Train a TopK SAE on one layer with sae-lens's trainer and store it where the `sae` extractor finds it."""
    from tl_traits.saes.recipe import read_corpus, train_and_store

    texts = read_corpus(corpus) if corpus is not None else None
    with _stages(quiet, as_json) as stages:
        m = _load(model, kind, stages)
        if if_missing and not force:
            from tl_traits.saes.recipe import target_folder

            folder = target_folder(m, layer, hook, out)
            if (folder / "cfg.json").is_file():
                typer.echo(f"an SAE is already stored at {folder}; nothing to do (--force retrains it)", err=True)
                return
        summary = train_and_store(
            m, layer=layer, hook=hook, d_sae=d_sae, k=k, n_tokens=tokens, lr=lr, corpus=texts, replies=replies,
            out=out, force=force, seed=seed, progress=not quiet, stages=stages,
        )
    if as_json:
        _emit(summary)
        return
    typer.echo(
        f"SAE {summary['hook_name']} ({summary['d_sae']} features, k={summary['k']}): explained variance "
        f"{summary['explained_variance']:.3f}, mean L0 {summary['mean_l0']:.1f}, dead {summary['dead_fraction']:.1%} "
        f"on {summary['n_eval_tokens']} held-out tokens; {summary['n_train_tokens']} training tokens in "
        f"{summary['train_seconds']:.0f} s\nsaved: {summary['folder']}"
    )


@app.command()
def report(out: Path = typer.Argument(Path("out"), help="A folder written by `tl-traits run`.")) -> None:
    """Rebuild report.html from a run's output folder (no model needed)."""
    from tl_traits.app.report import write_report

    typer.echo(f"report: {write_report(out).resolve()}")


@app.command()
def plugins(as_json: bool = JsonOpt) -> None:
    """Every registry's plugins and where each came from (distribution, entry point or decorator)."""
    from tl_traits.core.registry import attacks, extractors, judges, quantizers

    listing = {
        reg.kind: {name: {"origin": s.origin, "distribution": s.distribution, "target": s.target}
                   for name, s in reg.sources().items()}
        for reg in (extractors, judges, attacks, quantizers)
    }
    if as_json:
        _emit(listing)
        return
    for kind, entries in listing.items():
        typer.echo(f"{kind} ({len(entries)})")
        for name, s in entries.items():
            typer.echo(f"  {name:<18} {s['distribution'] or '(this process)':<20} {s['origin']:<12} {s['target']}")
        if not entries:
            typer.echo("  (none installed)")


# -- errors -------------------------------------------------------------------------------------------
def _bad_input_types() -> tuple[type[BaseException], ...]:
    from tl_traits.core.models import ModelLoadError
    from tl_traits.core.registry import RegistryError

    return (ValueError, LookupError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError,
            ModelLoadError, RegistryError)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning exceptions into one line and a meaningful exit code."""
    try:
        app(args=argv, standalone_mode=False)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - the one place that turns errors into exit codes
        if isinstance(exc, typer.Abort):
            sys.exit(EXIT_INTERRUPTED)
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # click's usage errors (typer may vendor click)
            exc.show()
            sys.exit(EXIT_BAD_INPUT)
        if _state["debug"]:
            raise
        bad_input = isinstance(exc, _bad_input_types())
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        typer.echo(f"error: {message}" + ("" if bad_input else " (rerun with --debug for the traceback)"), err=True)
        sys.exit(EXIT_BAD_INPUT if bad_input else EXIT_FAILED)
    sys.exit(EXIT_OK)


if __name__ == "__main__":
    main()
