"""What every command shares: the exit codes, the common typer options and the small helpers that parse, load and print."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any, List, Optional

import typer

from tl_traits.core.errors import TlTraitsError
from tl_traits.core.models import load_model
from tl_traits.core.progress import Stages
from tl_traits.core.vectors import TraitVectors

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130

ModelOpt = typer.Option(None, "--model", "-m", help="A local HF folder or TL model name; default: the embedded SmolLM2-135M-Instruct.")
KindOpt = typer.Option("bridge", "--kind", help="bridge (TransformerBridge) or hooked (HookedTransformer).")
JsonOpt = typer.Option(False, "--json", help="Print a JSON result on stdout (progress goes to stderr).")
LimitOpt = typer.Option(None, "--limit", min=1, help="Try the run on N examples first.")
QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress bars.")
MethodsOpt = typer.Option(None, "--methods", help="Extractors (default mean_diff,probe).")
# the steering search in quant-study and the grid sweeps: one definition, so their defaults stay the same
QuestionsOpt = typer.Option(8, "--questions", min=1, help="Steering questions per half: the setting is chosen on this many dev questions, scored on as many test questions.")
MaxNewTokensOpt = typer.Option(32, "--max-new-tokens", min=1)


class CommandLineError(TlTraitsError):
    """A value given on the command line that the command itself finds wrong (a file that is not there)."""


def split_values(values: Optional[List[str]]) -> list[str] | None:
    """Options given repeatedly or comma-separated: --methods a,b --methods c."""
    if not values:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def parse_layers(text: Optional[str]) -> Any:
    if text is None or text == "all":
        return "all" if text else None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"layers must be 'all' or comma-separated integers like 6,10,14, not {text!r}")


def parse_options(values: Optional[List[str]]) -> dict[str, Any]:
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


def existing_file(path: Path, option: str) -> Path:
    """`path` when it is a file, else a bad-input error naming the option that gave it."""
    if not path.is_file():
        raise CommandLineError(f"{option} {path}: no such file")
    return path


def output_file(path: Optional[Path], option: str) -> Optional[Path]:
    """`path` when a file can be written there; checked before any model work, so a typo costs nothing."""
    if path is None:
        return None
    if path.is_dir():
        raise CommandLineError(f"{option} {path} is a folder; give a file path inside it, e.g. {path / 'out.safetensors'}")
    _check_parents(path, option)
    return path


def output_folder(path: Optional[Path], option: str) -> Optional[Path]:
    """`path` when a folder can be made or reused there; checked before any model work."""
    if path is None:
        return None
    if path.exists() and not path.is_dir():
        raise CommandLineError(f"{option} {path} is a file, not a folder; give a folder path")
    _check_parents(path, option)
    return path


def _check_parents(path: Path, option: str) -> None:
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise CommandLineError(f"{option} {path}: {parent} is a file, so nothing can be written under it")
            if not os.access(parent, os.W_OK):
                raise CommandLineError(f"{option} {path}: {parent} is not writable")
            return


def model_from(model: Optional[str], kind: str, stages: Any = None) -> Any:
    """The model --model and --kind name, loaded (as a progress stage when `stages` is given)."""
    if stages is None:
        return load_model(model, kind=kind)
    with stages.stage("load model"):
        return load_model(model, kind=kind)


def stages_for(quiet: bool, as_json: bool) -> Any:
    if quiet:
        silence_library_bars()
    return Stages(enabled=not quiet and (not as_json or sys.stderr.isatty()))


def silence_library_bars() -> None:
    """--quiet means no bar at all: also transformers' "Loading weights" and the Hub's download bars."""
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass
    try:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    except ImportError:  # pragma: no cover
        pass


def emit(obj: Any) -> None:
    """Print JSON that every parser reads: NaN and infinities (not JSON) become null."""
    typer.echo(json.dumps(_json_safe(obj), indent=2, ensure_ascii=False, default=str, allow_nan=False))


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: _json_safe(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(value) for value in obj]
    return obj


def load_vector(path: Path, method: Optional[str]) -> Any:
    vecs = TraitVectors.load(path)
    if method is None:
        method = "mean_diff" if "mean_diff" in vecs.methods else vecs.methods[0]
    return vecs[method]


def finite(value: float) -> float:
    """Option callback: refuse nan and inf before any model work (they would steer to empty text)."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"must be a finite number, not {value}")
    return value


def steering_line(h: dict) -> str:
    """One setting's steering figures in a line: where, how strong, test score vs unsteered, the gain with its interval."""
    if h.get("test_score") is None:
        return "no steering setting was scored"

    def num(value: float | None, fmt: str) -> str:
        return "n/a" if value is None else format(value, fmt)

    where = f"layer {h['layers'][0]}" if len(h["layers"]) == 1 else f"layers {h['layers'][0]}-{h['layers'][-1]}"
    low, high = h["gain_interval"] or (None, None)
    interval = "" if low is None else f", 95% interval {low:+.1f} to {high:+.1f}"
    return (f"steering at {where}, strength {num(h['strength'], '.3g')} (chosen on dev): test score "
            f"{num(h['test_score'], '.1f')} vs unsteered {num(h['unsteered_test_score'], '.1f')} "
            f"(gain {num(h['gain'], '+.1f')}{interval})")
