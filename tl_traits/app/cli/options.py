"""What every command shares: the exit codes, the common typer options and the small helpers
that parse, load and print."""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, List, Mapping, Optional, Union, cast

import typer

from tl_traits.core.errors import TlTraitsError
from tl_traits.core.models import ModelKind, load_model
from tl_traits.core.numeric import check_number
from tl_traits.core.progress import Stages
from tl_traits.core.vectors import TraitVectors, has_vectors_header
from tl_traits.interop.gguf_control_vectors import import_gguf, read_control_vector
from tl_traits.interop.safetensors_vectors import import_safetensors

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130

ModelOpt = typer.Option(
    None,
    "--model",
    "-m",
    help="A local HF folder or TL model name; default: $TL_TRAITS_MODEL, else the embedded SmolLM2-135M-Instruct.",
)
KindOpt = typer.Option("bridge", "--kind", help="bridge (TransformerBridge) or hooked (HookedTransformer).")
JsonOpt = typer.Option(False, "--json", help="Print a JSON result on stdout (progress goes to stderr).")
LimitOpt = typer.Option(None, "--limit", min=1, envvar="TL_TRAITS_LIMIT", help="Try the run on N examples first.")
QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress bars.")
MethodsOpt = typer.Option(None, "--methods", help="Extractors (default mean_diff,probe).")
# the steering search in quant-study and the grid sweeps: one definition, so their defaults stay the same
QuestionsOpt = typer.Option(
    8,
    "--questions",
    min=1,
    help="Steering questions per half: the setting is chosen on this "
    "many dev questions, scored on as many test questions.",
)
MaxNewTokensOpt = typer.Option(32, "--max-new-tokens", min=1)


# what a command reads, for the check that its output does not write over it: {option or argument: path(s)}
Inputs = Mapping[str, Union[Path, str, None, Iterable[Union[Path, str, None]]]]


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
        raise typer.BadParameter(
            f"layers must be 'all' or comma-separated integers like 6,10,14, not {text!r}"
        ) from None


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


def output_file(path: Optional[Path], option: str, inputs: Optional[Inputs] = None) -> Optional[Path]:
    """`path` when a file can be written there without writing over one of `inputs`; checked before any model work,
    so a typo costs nothing."""
    if path is None:
        return None
    if path.is_dir():
        raise CommandLineError(
            f"{option} {path} is a folder; give a file path inside it, e.g. {path / 'out.safetensors'}"
        )
    _check_parents(path, option)
    not_an_input(path, option, inputs)
    return path


def output_folder(
    path: Optional[Path], option: str, inputs: Optional[Inputs] = None, writes: Optional[tuple[str, ...]] = None
) -> Optional[Path]:
    """`path` when a folder can be made or reused there without writing over one of `inputs`; checked before any
    model work. writes: the file names the command writes in it (None: any file in it may be replaced)."""
    if path is None:
        return None
    if path.exists() and not path.is_dir():
        raise CommandLineError(f"{option} {path} is a file, not a folder; give a folder path")
    _check_parents(path, option)
    not_an_input(path, option, inputs, writes=writes, folder=True)
    return path


def not_an_input(
    out: Path, option: str, inputs: Optional[Inputs], *, writes: Optional[tuple[str, ...]] = None, folder: bool = False
) -> None:
    """Refuse an output that would write over a file the command reads (the same file through a symlink or a
    hard link too): `export-gguf v.safetensors -o v.safetensors` would otherwise replace its input.

    inputs: {option or argument name: path or paths}; paths that do not exist are skipped (the command
    reports them itself). An output folder clashes with an input file named in `writes`, or with any file
    inside it when `writes` is None."""
    for name, given in (inputs or {}).items():
        paths = [given] if isinstance(given, (str, Path)) or given is None else list(given)
        for raw in paths:
            if raw is None or not Path(raw).is_file():
                continue
            source = Path(raw)
            if not folder:
                clash = _same_file(out, source)
            elif writes is None:
                clash = source.resolve().is_relative_to(out.resolve())
            else:
                clash = any(_same_file(out / written, source) for written in writes)
            if clash:
                where = (
                    f"{option} {out} is" if not folder else f"{option} {out} is where the command writes, and it holds"
                )
                raise CommandLineError(
                    f"{where} {name} {source}, which this command reads: writing there would "
                    f"replace its input; give another {option}"
                )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)  # symlinks and hard links included
    except OSError:  # one of them does not exist (yet)
        return a.resolve() == b.resolve()


def trait_files(trait: Optional[str]) -> list[Path]:
    """The files a trait argument names on disk: a JSONL file, or the files `load_trait` reads in a trait folder
    (none for a bundled name or a Hugging Face dataset)."""
    if not trait:
        return []
    path = Path(trait).expanduser()
    if path.is_dir():
        return [path / name for name in ("positive.jsonl", "negative.jsonl", "steering.json", "definition.txt")]
    return [path]


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
    checked = cast(ModelKind, kind)  # load_model refuses any other kind
    if stages is None:
        return load_model(model, kind=checked)
    with stages.stage("load model"):
        return load_model(model, kind=checked)


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


VECTOR_FILES = (
    "a vectors file from extract, a GGUF control vector (llama.cpp, ollama, repeng) or a plain "
    "{layer: tensor} safetensors file"
)


@dataclass
class VectorFile:
    """A vectors file named on the command line, read (or for another tool's file, checked) before the model loads.

    kind: "tl_traits" (from extract), "gguf" or "safetensors" (another tool's {layer: tensor}); the last two
    become a vector only for a model (`for_model`), as `import_gguf` and `import_safetensors` make them."""

    path: Path
    kind: str
    vector: Any = None  # a tl_traits file's vector, read at once

    @property
    def imported(self) -> bool:
        return self.vector is None

    def for_model(self, model: Any) -> Any:
        if self.vector is not None:
            return self.vector
        if self.kind == "gguf":
            return import_gguf(self.path, model)
        return import_safetensors(self.path, model)


def load_vector(path: Path, method: Optional[str]) -> VectorFile:
    """Any vectors file the library reads: our own (the `method` in it, default mean_diff), a GGUF control vector,
    or another tool's {layer: tensor} safetensors file (one vector: --method does not apply)."""
    if not path.is_file():
        raise CommandLineError(f"no vectors file at {path}")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic == b"GGUF":
        read_control_vector(path)  # a clear error now, before the model loads
        kind = "gguf"
    else:
        try:
            ours = has_vectors_header(path)
        except Exception as exc:  # noqa: BLE001 - whatever the reader says, the file is not one we read
            raise CommandLineError(
                f"{path} is incomplete or not a vectors file tl_traits reads ({VECTOR_FILES}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if ours:
            vecs = TraitVectors.load(path)
            if method is None:
                method = "mean_diff" if "mean_diff" in vecs.methods else vecs.methods[0]
            return VectorFile(path, "tl_traits", vecs[method])
        kind = "safetensors"
    if method is not None:
        raise CommandLineError(
            f"--method picks a method in a vectors file from extract; {path} is "
            f"{'a GGUF control vector' if kind == 'gguf' else 'a {layer: tensor} safetensors file'} "
            "holding one vector: leave --method out"
        )
    return VectorFile(path, kind)


def finite(value: Optional[float]) -> Optional[float]:
    """Option callback: refuse nan, inf and numbers that overflow float32 (1e39) before any model work (they would
    steer to empty text); `core.numeric.check_number` is the one check every number a user gives goes through."""
    try:
        return check_number(value, "the value", optional=True)
    except TlTraitsError as exc:
        raise typer.BadParameter(str(exc)) from None


def steering_line(h: dict) -> str:
    """One setting's steering figures in a line: where, how strong, test score vs unsteered,
    the gain with its interval."""
    if h.get("test_score") is None:
        return "no steering setting was scored"

    def num(value: float | None, fmt: str) -> str:
        return "n/a" if value is None else format(value, fmt)

    where = f"layer {h['layers'][0]}" if len(h["layers"]) == 1 else f"layers {h['layers'][0]}-{h['layers'][-1]}"
    low, high = h["gain_interval"] or (None, None)
    interval = "" if low is None else f", 95% interval {low:+.1f} to {high:+.1f}"
    return (
        f"steering at {where}, strength {num(h['strength'], '.3g')} (chosen on dev): test score "
        f"{num(h['test_score'], '.1f')} vs unsteered {num(h['unsteered_test_score'], '.1f')} "
        f"(gain {num(h['gain'], '+.1f')}{interval})"
    )
