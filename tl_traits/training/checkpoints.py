"""A run folder on disk: atomic checkpoint folders (weights, optimizer, schedule, RNGs, data order)
with rotation, loading weights back, the history file, and the fingerprints a resume is checked against."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from tl_traits.core.files import atomic_write_text, parse_json_object
from tl_traits.training.config import TrainingError
from tl_traits.training.sft import EncodedExample

CHECKPOINTS, HISTORY = "checkpoints", "history.jsonl"
WEIGHTS_FILE, TRAINER_FILE, STATE_FILE = "model.safetensors", "trainer.pt", "state.json"
_STEP_DIR = re.compile(r"step_(\d+)")


# ================================================================================================
# What a resume is checked against
# ================================================================================================
def data_fingerprint(data: Sequence[EncodedExample]) -> str:
    digest = hashlib.sha256()
    for ex in data:
        digest.update(np.asarray(ex.input_ids, dtype=np.int64).tobytes())
        digest.update(np.asarray(ex.labels, dtype=np.int64).tobytes())
        digest.update(b"|")
    return digest.hexdigest()[:16]


@torch.no_grad()
def frozen_fingerprint(model: Any, trainable: set[int], samples_per_tensor: int = 256) -> str:
    """A hash of a strided sample of every frozen parameter: the base a checkpoint's weights sit on."""
    digest = hashlib.sha256()
    for name, p in model.named_parameters():
        if id(p) in trainable:
            continue
        flat = p.detach().reshape(-1)
        sample = flat[:: max(1, flat.numel() // samples_per_tensor)][:samples_per_tensor]
        digest.update(name.encode())
        digest.update(sample.to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


# ================================================================================================
# RNG state as plain types (torch.load(weights_only=True) refuses numpy arrays)
# ================================================================================================
def rng_state() -> dict[str, Any]:
    np_kind, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "kind": str(np_kind),
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_cached),
        },
        "python": {"version": int(py_version), "state": [int(v) for v in py_state], "gauss_next": py_gauss},
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))


# ================================================================================================
# Checkpoint files
# ================================================================================================
def _checkpoint_dirs(out_dir: Path) -> list[tuple[int, Path]]:
    """Complete step folders, oldest first (unfinished ones are hidden `.partial` temp folders)."""
    root = Path(out_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _STEP_DIR.fullmatch(path.name)
        if match and all((path / f).is_file() for f in (WEIGHTS_FILE, TRAINER_FILE, STATE_FILE)):
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(out_dir: str | os.PathLike[str]) -> Path | None:
    """The newest complete `out_dir/checkpoints/step_NNNNNN` folder, or None."""
    found = _checkpoint_dirs(Path(out_dir))
    return found[-1][1] if found else None


def rotate_checkpoints(out_dir: Path, keep: int) -> None:
    """Delete all but the newest `keep` complete checkpoints."""
    for _, path in _checkpoint_dirs(out_dir)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)


def unique_tensors(named: Sequence[tuple[str, Tensor]]) -> tuple[dict[str, Tensor], dict[str, str]]:
    """CPU copies to save, one per storage view; `aliases` maps a name sharing a view to the saved name."""
    saved: dict[tuple, str] = {}
    tensors: dict[str, Tensor] = {}
    aliases: dict[str, str] = {}
    for name, p in named:
        key = (p.untyped_storage().data_ptr(), p.storage_offset(), tuple(p.shape), tuple(p.stride()), p.dtype)
        if key in saved:
            aliases[name] = saved[key]
            continue
        saved[key] = name
        tensors[name] = p.detach().to("cpu", copy=True).contiguous()
    return tensors, aliases


def _read_checkpoint_tensors(folder: Path) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    if not (folder / WEIGHTS_FILE).is_file():
        latest = latest_checkpoint(folder)
        if latest is None:
            raise TrainingError(f"{folder} holds no {WEIGHTS_FILE} and no complete checkpoints/step_* folder")
        folder = latest
    try:
        tensors = load_file(str(folder / WEIGHTS_FILE))
    except Exception as exc:  # safetensors raises its own SafetensorError (and OSError) on a cut or foreign file
        raise TrainingError(
            f"{folder / WEIGHTS_FILE} is incomplete or not a safetensors file ({exc}); "
            "use an earlier checkpoint or retrain"
        ) from exc
    state_file = folder / STATE_FILE
    state = (
        parse_json_object(state_file.read_text(encoding="utf-8"), str(state_file), TrainingError)
        if state_file.is_file()
        else {}
    )
    aliases = state.get("aliases", {})
    for alias, saved in aliases.items():
        tensors[alias] = tensors[saved]
    return tensors


def _named_tensors(model: Any) -> dict[str, Tensor]:
    """Every name a state_dict of this model may use: parameter and buffer names, and the bridge's TL-style keys."""
    named: dict[str, Tensor] = dict(model.state_dict(keep_vars=True))
    named.update(model.named_parameters(remove_duplicate=False))
    named.update(model.named_buffers(remove_duplicate=False))
    return named


def load_checkpoint_weights(
    model: Any, checkpoint_or_state_dict: str | os.PathLike[str] | Mapping[str, Tensor]
) -> None:
    """Copy saved weights into `model` in place (no grad).

    Accepts a checkpoint folder (or a run folder: its latest checkpoint) or a mapping name ->
    tensor (a full `model.state_dict()` or some of its entries). Copying in place keeps the
    bridge's processed-weight views in step with their parameters.
    """
    source = checkpoint_or_state_dict
    if isinstance(source, (str, os.PathLike)):
        tensors = _read_checkpoint_tensors(Path(source))
    elif isinstance(source, Mapping):
        tensors = dict(source)
    else:
        raise TrainingError(f"expected a checkpoint folder or a mapping name -> tensor, not {type(source).__name__}")
    targets = _named_tensors(model)
    unknown = [name for name in tensors if name not in targets]
    if unknown:
        raise TrainingError(
            f"{len(unknown)} saved names are not parameters or buffers of this model, e.g. {unknown[:4]}; "
            f"its names look like {list(targets)[:3]}. Was it saved from another model or model kind?"
        )
    wrong = [
        f"{n}: saved {tuple(t.shape)}, model {tuple(targets[n].shape)}"
        for n, t in tensors.items()
        if tuple(t.shape) != tuple(targets[n].shape)
    ]
    if wrong:
        raise TrainingError(
            f"shape mismatch for {len(wrong)} tensors, e.g. {wrong[:3]}; the checkpoint is for another model"
        )
    with torch.no_grad():
        for name, value in tensors.items():
            targets[name].copy_(value.to(targets[name].device))


# ================================================================================================
# History
# ================================================================================================
def rewind_history(out_dir: Path | None, step: int) -> list[dict]:
    """History rows up to `step`; history.jsonl is rewritten without the later rows."""
    if out_dir is None or not (out_dir / HISTORY).is_file():
        return []
    rows = [
        row
        for row in map(_parse_row, (out_dir / HISTORY).read_text(encoding="utf-8").splitlines())
        if row is not None and row["step"] <= step
    ]
    atomic_write_text(out_dir / HISTORY, "".join(json.dumps(row) + "\n" for row in rows))
    return rows


def _parse_row(line: str) -> dict | None:
    """One history line; None for a blank line or the half-written last line of a killed run."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    return row if isinstance(row, dict) and "step" in row else None
