"""The grid sweeps, `steer-sweep` and `quant-sweep`: one run folder per grid point, on any executor."""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, List, Optional, get_type_hints

import typer

from tl_traits.app.cli.options import (
    JsonOpt,
    KindOpt,
    LimitOpt,
    MaxNewTokensOpt,
    MethodsOpt,
    ModelOpt,
    QuestionsOpt,
    QuietOpt,
    output_folder,
    parse_layers,
    split_values,
    trait_files,
)
from tl_traits.app.cli.quantization import (
    BackendsOpt,
    ExtractLayersOpt,
    SteeringLayersOpt,
    SteerOpt,
)
from tl_traits.app.cli.sweeps import (
    DeviceMapOpt,
    DtypeOpt,
    ExecutorOpt,
    ExecutorOptionOpt,
    NDevicesOpt,
    RetriesOpt,
    RunsDirOpt,
    WorkersOpt,
    executor_for,
    finish_sweep,
    model_for,
)
from tl_traits.quantization.study import DEFAULT_BACKENDS
from tl_traits.scale.grids import quantization_sweep, steering_sweep

TraitsArg = typer.Argument(..., help="Traits: bundled names (emotion/joy), folders or JSONL files.")


def _option(typer_option: Any) -> Any:
    return field(metadata={"option": typer_option})


@dataclass(frozen=True)
class GridOptions:
    """The options every grid command takes, defined once (`grid_command` adds them); --help lists them after the
    command's own, in this order."""

    runs_dir: Path = _option(RunsDirOpt)
    questions: int = _option(QuestionsOpt)
    max_new_tokens: int = _option(MaxNewTokensOpt)
    model: Optional[str] = _option(ModelOpt)
    kind: str = _option(KindOpt)
    dtype: str = _option(DtypeOpt)
    n_devices: int = _option(NDevicesOpt)
    device_map: Optional[str] = _option(DeviceMapOpt)
    executor: str = _option(ExecutorOpt)
    workers: int = _option(WorkersOpt)
    retries: int = _option(RetriesOpt)
    executor_option: Optional[List[str]] = _option(ExecutorOptionOpt)
    limit: Optional[int] = _option(LimitOpt)
    as_json: bool = _option(JsonOpt)
    quiet: bool = _option(QuietOpt)

    @property
    def n_questions(self) -> int:
        return self.questions if not self.limit else min(self.questions, self.limit)

    def check_runs_dir(self, traits: list[str]) -> None:
        """The runs folder is not a file and holds none of the traits' files (runs write inside it)."""
        output_folder(self.runs_dir, "--runs-dir", inputs={"TRAITS": [f for t in traits for f in trait_files(t)]})

    def start(self) -> tuple[Any, Any]:
        """The executor, and the model for it (loaded here, or a spec for remote runs)."""
        engine = executor_for(self.executor, self.workers, self.retries, self.executor_option, self.quiet)
        return engine, model_for(engine, self.model, self.kind, self.dtype, self.n_devices, self.device_map)

    def finish(self, result: Any) -> None:
        finish_sweep(result, self.runs_dir, len(result.rows), self.as_json)


def grid_command(func: Callable[..., None]) -> Callable[..., None]:
    """`func` with GridOptions' options added after its own; it gets them as one `grid: GridOptions` argument."""
    hints = get_type_hints(GridOptions)
    own = [p for p in inspect.signature(func, eval_str=True).parameters.values() if p.name != "grid"]
    shared = [
        inspect.Parameter(
            f.name, inspect.Parameter.KEYWORD_ONLY, default=f.metadata["option"], annotation=hints[f.name]
        )
        for f in fields(GridOptions)
    ]

    @functools.wraps(func)
    def command(**values: Any) -> None:
        grid = GridOptions(**{f.name: values.pop(f.name) for f in fields(GridOptions)})
        func(**values, grid=grid)

    command.__signature__ = inspect.Signature([*own, *shared])  # type: ignore[attr-defined]  # what typer reads
    command.__annotations__ = {p.name: p.annotation for p in command.__signature__.parameters.values()}  # type: ignore[attr-defined]
    return command


@grid_command
def steer_sweep(
    traits: List[str] = TraitsArg,
    methods: Optional[List[str]] = typer.Option(None, "--methods", help="Extractors (default mean_diff)."),
    layers: Optional[str] = typer.Option(None, "--layers", help="Comma-separated layers (default: 3 at 25-55% depth)."),
    *,
    grid: GridOptions,
) -> None:
    """Steering sweep: per (trait, method, layer) extract the vector there and search the steering strength."""
    grid.check_runs_dir(traits)
    layer_list = parse_layers(layers)
    if layer_list == "all":
        raise typer.BadParameter("--layers takes comma-separated layers for a steering sweep, not 'all'")
    engine, model = grid.start()
    result = steering_sweep(
        model,
        traits,
        split_values(methods) or ["mean_diff"],
        layer_list,
        runs_dir=grid.runs_dir,
        questions=grid.n_questions,
        max_new_tokens=grid.max_new_tokens,
        limit=grid.limit,
        executor=engine,
        progress=not grid.quiet,
        log=engine.log,
    )
    grid.finish(result)


@grid_command
def quant_sweep(
    traits: List[str] = TraitsArg,
    backends: Optional[List[str]] = BackendsOpt,
    methods: Optional[List[str]] = MethodsOpt,
    layers: Optional[str] = ExtractLayersOpt,
    steering_layers: Optional[str] = SteeringLayersOpt,
    steer_flag: bool = SteerOpt,
    *,
    grid: GridOptions,
) -> None:
    """The quantization study over traits x backends, one run per pair (each with its own float32 reference)."""
    grid.check_runs_dir(traits)
    layer_spec, steer_at = parse_layers(layers), parse_layers(steering_layers)
    engine, model = grid.start()
    result = quantization_sweep(
        model,
        traits,
        split_values(backends) or list(DEFAULT_BACKENDS),
        runs_dir=grid.runs_dir,
        executor=engine,
        progress=not grid.quiet,
        log=engine.log,
        methods=split_values(methods) or ["mean_diff", "probe"],
        layers=layer_spec,
        steering_layers=steer_at,
        steer=steer_flag,
        questions=grid.n_questions,
        max_new_tokens=grid.max_new_tokens,
        limit=grid.limit,
    )
    grid.finish(result)
