"""Fine-tune a TransformerLens model (HookedTransformer or TransformerBridge) on encoded SFT examples,
with checkpoints (weights, optimizer, schedule, RNGs, data order) that resume bit for bit."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import re
import shutil
import time
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from tl_traits.core.errors import TlTraitsError
from tl_traits.core.files import atomic_directory, atomic_write_json, atomic_write_text
from tl_traits.core.models import model_identity
from tl_traits.core.version import package_version
from tl_traits.quantization.quantize import TensorAlias, restore_aliases, tensor_aliases
from tl_traits.training.sft import IGNORE_INDEX, EncodedExample, collate

SCHEDULES = ("constant", "linear", "cosine")
# Config fields that change a run's arithmetic: resuming requires the same values.
MATH_FIELDS = (
    "lr", "betas", "weight_decay", "batch_size", "grad_accum", "epochs", "max_steps",
    "warmup_steps", "schedule", "trainable", "max_grad_norm", "seed",
)
# Identity fields a checkpoint must share with the model it is resumed on (the fingerprint
# changes with training, so it is not one of them; the frozen weights are checked instead).
IDENTITY_FIELDS = ("kind", "n_layers", "d_model", "dtype")
CHECKPOINTS, HISTORY = "checkpoints", "history.jsonl"
WEIGHTS_FILE, TRAINER_FILE, STATE_FILE = "model.safetensors", "trainer.pt", "state.json"
_STEP_DIR = re.compile(r"step_(\d+)")
_SPEC_FORMS = "'all', 'last:N' (the last N blocks), 'from:L' (blocks L to the end) or a list of block indices"

Evaluate = Callable[[Any], Mapping[str, float]]


class TrainingError(TlTraitsError):
    """A training run that cannot start or continue as asked; the message says what to change."""


# ================================================================================================
# Configuration and result
# ================================================================================================
@dataclass(frozen=True)
class TrainConfig:
    """Optimizer, schedule, batching, which blocks learn, and when to evaluate and checkpoint.

    max_steps counts optimizer steps of `batch_size * grad_accum` examples and overrides epochs.
    The learning rate warms up linearly (warmup step s uses lr * (s+1)/(warmup_steps+1)), then
    follows `schedule` ("linear" and "cosine" reach 0 at the end, "constant" stays at lr).
    trainable: "all", "last:N", "from:L" or block indices; embeddings, the final norm and the
    unembedding train only with "all".
    """

    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    batch_size: int = 8
    grad_accum: int = 1
    epochs: int = 1
    max_steps: int | None = None
    warmup_steps: int = 0
    schedule: str = "linear"
    trainable: str | Sequence[int] = "all"
    max_grad_norm: float | None = 1.0
    eval_every: int | None = None
    checkpoint_every: int | None = None
    keep_checkpoints: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        object.__setattr__(self, "trainable", _normalize_spec(self.trainable))
        problems = _config_problems(self)
        if problems:
            raise TrainingError("invalid TrainConfig: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["betas"] = list(self.betas)
        if not isinstance(self.trainable, str):
            data["trainable"] = list(self.trainable)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TrainingError(f"unknown TrainConfig fields {unknown}; known fields are {sorted(known)}")
        return cls(**dict(data))


def _config_problems(c: TrainConfig) -> list[str]:
    checks = [
        (c.lr >= 0, f"lr must be >= 0, not {c.lr}"),
        (c.weight_decay >= 0, f"weight_decay must be >= 0, not {c.weight_decay}"),
        (len(c.betas) == 2 and all(0 <= b < 1 for b in c.betas), f"betas must be two numbers in [0, 1), not {c.betas}"),
        (c.batch_size >= 1, f"batch_size must be >= 1, not {c.batch_size}"),
        (c.grad_accum >= 1, f"grad_accum must be >= 1, not {c.grad_accum}"),
        (c.epochs >= 1, f"epochs must be >= 1, not {c.epochs}"),
        (c.max_steps is None or c.max_steps >= 1, f"max_steps must be None or >= 1, not {c.max_steps}"),
        (c.warmup_steps >= 0, f"warmup_steps must be >= 0, not {c.warmup_steps}"),
        (c.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}, not {c.schedule!r}"),
        (c.max_grad_norm is None or c.max_grad_norm > 0, f"max_grad_norm must be None or > 0, not {c.max_grad_norm}"),
        (c.eval_every is None or c.eval_every >= 1, f"eval_every must be None or >= 1, not {c.eval_every}"),
        (c.checkpoint_every is None or c.checkpoint_every >= 1,
         f"checkpoint_every must be None or >= 1, not {c.checkpoint_every}"),
        (c.keep_checkpoints >= 1, f"keep_checkpoints must be >= 1, not {c.keep_checkpoints}"),
    ]
    return [message for ok, message in checks if not ok]


@dataclass
class TrainResult:
    """What a `train` call did; `history` has one row per optimizer step plus eval rows."""

    steps: int
    epochs_done: float
    history: list[dict]
    checkpoint: Path | None
    resumed_from: int | None
    seconds: float


# ================================================================================================
# Which parameters train
# ================================================================================================
def _normalize_spec(spec: str | Sequence[int]) -> str | tuple[int, ...]:
    if isinstance(spec, str):
        spec = spec.strip()
        if spec == "all" or re.fullmatch(r"(last|from):\d+", spec):
            return spec
        raise TrainingError(f"trainable={spec!r} is not a known form; use {_SPEC_FORMS}")
    try:
        blocks = tuple(int(i) for i in spec)
    except (TypeError, ValueError) as exc:
        raise TrainingError(f"trainable={spec!r} is not a known form; use {_SPEC_FORMS}") from exc
    if not blocks:
        raise TrainingError(f"trainable is an empty list: nothing would train; use {_SPEC_FORMS}")
    return blocks


def _selected_blocks(spec: str | tuple[int, ...], n_layers: int) -> set[int] | None:
    """Block indices chosen by `spec` (None: every parameter, embeddings included)."""
    if spec == "all":
        return None
    bad = TrainingError(
        f"trainable={spec!r} does not fit this model (n_layers={n_layers}); valid forms: 'all', "
        f"'last:N' with 1 <= N <= {n_layers}, 'from:L' with 0 <= L <= {n_layers - 1}, "
        f"or block indices in 0..{n_layers - 1}"
    )
    if isinstance(spec, str):
        form, number = spec.split(":")
        k = int(number)
        if form == "last" and 1 <= k <= n_layers:
            return set(range(n_layers - k, n_layers))
        if form == "from" and 0 <= k < n_layers:
            return set(range(k, n_layers))
        raise bad
    if any(not 0 <= i < n_layers for i in spec):
        raise bad
    return set(spec)


def _block_of_params(model: Any) -> dict[int, int]:
    """id(parameter) -> index of the block that owns it, found through `model.blocks` (both TL kinds)."""
    blocks = getattr(model, "blocks", None)
    if blocks is None:
        raise TrainingError(f"{type(model).__name__} has no `blocks`; train a HookedTransformer or a TransformerBridge")
    return {id(p): i for i, block in enumerate(blocks) for p in block.parameters()}


def trainable_parameters(model: Any, spec: str | Sequence[int]) -> list[tuple[str, torch.nn.Parameter]]:
    """The (name, parameter) pairs that `spec` trains, in `model.named_parameters()` order.

    Names are the model's own: `blocks.3.attn.W_Q` (HookedTransformer) or
    `model.layers.3._original_component.self_attn...` (TransformerBridge).
    """
    blocks = _selected_blocks(_normalize_spec(spec), int(model.cfg.n_layers))
    named = list(model.named_parameters())
    if blocks is None:
        return named
    owner = _block_of_params(model)
    return [(name, p) for name, p in named if owner.get(id(p)) in blocks]


# ================================================================================================
# Data, loss and schedule
# ================================================================================================
def _as_examples(examples: Any) -> list[EncodedExample]:
    """Encode once up front (an SFTDataset encodes on each access) and check the item type."""
    try:
        data = [examples[i] for i in range(len(examples))]
    except TypeError as exc:
        raise TrainingError("examples must be an SFTDataset or a sequence of EncodedExample") from exc
    if not data:
        raise TrainingError("no examples given: pass at least one EncodedExample")
    wrong = next((type(ex).__name__ for ex in data if not isinstance(ex, EncodedExample)), None)
    if wrong is not None:
        raise TrainingError(f"examples must be EncodedExample (from tl_traits.training.sft.encode_example), not {wrong}")
    return data


def pad_id(model: Any, pad_token_id: int | None) -> int:
    if pad_token_id is not None:
        return int(pad_token_id)
    tokenizer = getattr(model, "tokenizer", None)
    for attr in ("pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, attr, None)
        if value is not None:
            return int(value)
    raise TrainingError(
        "no pad token id: the model's tokenizer has neither a pad nor an EOS token; pass pad_token_id= "
        "(any id works: padding is never labelled and, on the right, never attended by real tokens)"
    )


def _device(model: Any) -> torch.device:
    return next(model.parameters()).device


def _n_labelled(example: EncodedExample) -> int:
    """Labelled tokens the loss sees: the first token is never predicted."""
    return sum(label != IGNORE_INDEX for label in example.labels[1:])


def loss_sum(logits: Float[Tensor, "batch seq vocab"], labels: Int[Tensor, "batch seq"]) -> Float[Tensor, ""]:
    """Summed next-token cross-entropy over labelled positions (0 with a graph when none is labelled)."""
    return F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
        labels[:, 1:].reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )


def forward_batch(model: Any, examples: Sequence[EncodedExample], pad: int, device: torch.device) -> tuple[Tensor, Tensor]:
    batch = collate(examples, pad, padding_side="right")
    # Right padding needs no attention mask in a causal model: real tokens never attend to the
    # pads after them, and pad positions are never labelled.
    logits = model(batch["input_ids"].to(device))
    labels = batch["labels"].to(device)
    return logits, labels


def _total_steps(config: TrainConfig, n_examples: int) -> int:
    if config.max_steps is not None:
        return config.max_steps
    return config.epochs * math.ceil(n_examples / (config.batch_size * config.grad_accum))


def _lr_lambda(config: TrainConfig, total: int) -> Callable[[int], float]:
    warmup, schedule = config.warmup_steps, config.schedule

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 1.0 - progress if schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def _permutation(seed: int, epoch: int, n: int) -> Int[Tensor, " n"]:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))


def _data_fingerprint(data: Sequence[EncodedExample]) -> str:
    digest = hashlib.sha256()
    for ex in data:
        digest.update(np.asarray(ex.input_ids, dtype=np.int64).tobytes())
        digest.update(np.asarray(ex.labels, dtype=np.int64).tobytes())
        digest.update(b"|")
    return digest.hexdigest()[:16]


@torch.no_grad()
def _frozen_fingerprint(model: Any, trainable: set[int], samples_per_tensor: int = 256) -> str:
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
# Evaluation metric
# ================================================================================================
def response_loss(model: Any, examples: Any, *, batch_size: int = 16, pad_token_id: int | None = None) -> float:
    """Mean cross-entropy per labelled (response) token over all examples, in eval mode without grad."""
    data, pad, device = _as_examples(examples), pad_id(model, pad_token_id), _device(model)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        with torch.no_grad():
            for start in range(0, len(data), batch_size):
                logits, labels = forward_batch(model, data[start : start + batch_size], pad, device)
                total += float(loss_sum(logits, labels))
                count += int((labels[:, 1:] != IGNORE_INDEX).sum())
    finally:
        model.train(was_training)
    if count == 0:
        raise TrainingError("the examples have no labelled tokens, so there is no response loss to measure")
    return total / count


# ================================================================================================
# Training mode: requires_grad flags and the bridge's processed-weight views
# ================================================================================================
def _link_views(model: Any, aliases: list[TensorAlias]) -> None:
    """Point each processed-weight view at its parameter through autograd.

    TransformerBridge (compatibility mode) runs a gated MLP on `_processed_W_gate/_in/_out`,
    detached views of the parameters, so those parameters would get no gradient.
    """
    modules, params = dict(model.named_modules()), dict(model.named_parameters())
    for alias in aliases:
        module, param = modules.get(alias.module), params.get(alias.target)
        if module is not None and param is not None:
            view = param.as_strided(alias.size, alias.stride, param.storage_offset() + alias.offset)
            object.__setattr__(module, alias.attr, view)


@contextlib.contextmanager
def _training_mode(model: Any, named: list[tuple[str, torch.nn.Parameter]]) -> Iterator[list[TensorAlias]]:
    """Train mode, requires_grad only on `named`, views linked; all undone on exit, leaving eval mode."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    trainable = {id(p) for _, p in named}
    aliases = tensor_aliases(model)
    try:
        for p, _ in flags:
            p.requires_grad_(id(p) in trainable)
        _link_views(model, aliases)
        model.train()
        yield aliases
    finally:
        # Detached again: a non-leaf tensor attribute would break copy.deepcopy of the model.
        restore_aliases(model, aliases)
        for p, flag in flags:
            p.requires_grad_(flag)
        model.eval()


# ================================================================================================
# RNG state as plain types (torch.load(weights_only=True) refuses numpy arrays)
# ================================================================================================
def _rng_state() -> dict[str, Any]:
    np_kind, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": str(np_kind), "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
                  "pos": int(np_pos), "has_gauss": int(np_has_gauss), "cached_gaussian": float(np_cached)},
        "python": {"version": int(py_version), "state": [int(v) for v in py_state], "gauss_next": py_gauss},
    }


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
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


def _rotate(out_dir: Path, keep: int) -> None:
    for _, path in _checkpoint_dirs(out_dir)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)


def _unique_tensors(named: list[tuple[str, Tensor]]) -> tuple[dict[str, Tensor], dict[str, str]]:
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
    tensors = load_file(str(folder / WEIGHTS_FILE))
    state_file = folder / STATE_FILE
    aliases = json.loads(state_file.read_text()).get("aliases", {}) if state_file.is_file() else {}
    for alias, saved in aliases.items():
        tensors[alias] = tensors[saved]
    return tensors


def _named_tensors(model: Any) -> dict[str, Tensor]:
    """Every name a state_dict of this model may use: parameter and buffer names, and the bridge's TL-style keys."""
    named: dict[str, Tensor] = dict(model.state_dict(keep_vars=True))
    named.update(model.named_parameters(remove_duplicate=False))
    named.update(model.named_buffers(remove_duplicate=False))
    return named


def load_checkpoint_weights(model: Any, checkpoint_or_state_dict: str | os.PathLike[str] | Mapping[str, Tensor]) -> None:
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
    wrong = [f"{n}: saved {tuple(t.shape)}, model {tuple(targets[n].shape)}"
             for n, t in tensors.items() if tuple(t.shape) != tuple(targets[n].shape)]
    if wrong:
        raise TrainingError(f"shape mismatch for {len(wrong)} tensors, e.g. {wrong[:3]}; the checkpoint is for another model")
    with torch.no_grad():
        for name, value in tensors.items():
            targets[name].copy_(value.to(targets[name].device))


# ================================================================================================
# The run
# ================================================================================================
@dataclass
class _Cursor:
    """Where the data order stands: this epoch's permutation and how many of it were consumed."""

    epoch: int
    position: int
    order: Tensor


class _Run:
    """One training run's mutable state: optimizer, schedule, data cursor, history and checkpoints."""

    def __init__(self, model: Any, data: list[EncodedExample], config: TrainConfig,
                 named: list[tuple[str, torch.nn.Parameter]], pad: int, out_dir: Path | None) -> None:
        self.model, self.data, self.config, self.named, self.pad, self.out_dir = model, data, config, named, pad, out_dir
        self.device = _device(model)
        self.total = _total_steps(config, len(data))
        self.optimizer = torch.optim.AdamW(
            [p for _, p in named], lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _lr_lambda(config, self.total))
        self.step = 0
        self.cursor = _Cursor(0, 0, _permutation(config.seed, 0, len(data)))
        self.history: list[dict] = []
        self.grads_checked = False
        self.data_fingerprint = _data_fingerprint(data)
        self.frozen_fingerprint = _frozen_fingerprint(model, {id(p) for _, p in named})

    # -- one optimizer step ----------------------------------------------------------------------
    def train_step(self) -> dict[str, Any]:
        c, cfg = self.cursor, self.config
        group = [self.data[i] for i in c.order[c.position : c.position + cfg.batch_size * cfg.grad_accum].tolist()]
        # One denominator for the whole group: grad_accum=k on batches of b equals one batch of k*b.
        denominator = max(1, sum(_n_labelled(ex) for ex in group))
        lr = self.scheduler.get_last_lr()[0]
        loss = 0.0
        for start in range(0, len(group), cfg.batch_size):
            logits, labels = forward_batch(self.model, group[start : start + cfg.batch_size], self.pad, self.device)
            micro = loss_sum(logits, labels)
            (micro / denominator).backward()
            loss += float(micro.detach())
        self._check_grads()
        params = [p for _, p in self.named]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm or math.inf)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self._advance(len(group))
        return {"step": self.step, "epoch": self.epochs_done, "loss": loss / denominator, "lr": lr,
                "grad_norm": float(grad_norm)}

    def _check_grads(self) -> None:
        if self.grads_checked:
            return
        missing = [name for name, p in self.named if p.grad is None]
        if missing:
            raise TrainingError(
                f"{len(missing)} trainable parameters got no gradient: {missing[:5]}"
                f"{' ...' if len(missing) > 5 else ''}. They would silently not train: the model's forward "
                "does not reach them through autograd. Leave them out with `trainable`, or fix the forward."
            )
        self.grads_checked = True

    def _advance(self, consumed: int) -> None:
        c = self.cursor
        c.position += consumed
        if c.position >= len(self.data):
            self.cursor = _Cursor(c.epoch + 1, 0, _permutation(self.config.seed, c.epoch + 1, len(self.data)))

    @property
    def epochs_done(self) -> float:
        return self.cursor.epoch + self.cursor.position / len(self.data)

    # -- evaluation and history ------------------------------------------------------------------
    def evaluate(self, evaluate: Evaluate, aliases: list[TensorAlias]) -> dict[str, Any]:
        restore_aliases(self.model, aliases)  # plain views while evaluating: the callback may copy the model
        self.model.eval()
        try:
            with torch.no_grad():
                scores = evaluate(self.model)
        finally:
            _link_views(self.model, aliases)
            self.model.train()
        if not isinstance(scores, Mapping):
            raise TrainingError(f"evaluate(model) must return a dict name -> number, not {type(scores).__name__}")
        return {"step": self.step, **{f"eval/{name}": float(value) for name, value in scores.items()}}

    def record(self, row: dict[str, Any]) -> None:
        self.history.append(row)
        if self.out_dir is not None:
            with open(self.out_dir / HISTORY, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")

    # -- checkpoints -----------------------------------------------------------------------------
    def save(self) -> Path:
        assert self.out_dir is not None
        path = self.out_dir / CHECKPOINTS / f"step_{self.step:06d}"
        from safetensors.torch import save_file

        with atomic_directory(path) as tmp:
            tensors, aliases = _unique_tensors(self.named)
            save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"step": str(self.step)})
            torch.save(
                {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                 "rng": _rng_state(), "order": self.cursor.order.clone()},
                tmp / TRAINER_FILE,
            )
            atomic_write_json(tmp / STATE_FILE, self._state(aliases))
        _rotate(self.out_dir, self.config.keep_checkpoints)
        return path

    def _state(self, aliases: dict[str, str]) -> dict[str, Any]:
        return {
            "step": self.step,
            "total_steps": self.total,
            "epoch": self.cursor.epoch,
            "position": self.cursor.position,
            "epochs_done": self.epochs_done,
            "config": self.config.to_dict(),
            "trainable": [name for name, _ in self.named],
            "aliases": aliases,
            "n_examples": len(self.data),
            "data_fingerprint": self.data_fingerprint,
            "frozen_fingerprint": self.frozen_fingerprint,
            "model": model_identity(self.model).to_dict(),
            "tl_traits_version": package_version(),
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }

    def restore(self, checkpoint: Path) -> int:
        state = json.loads((checkpoint / STATE_FILE).read_text())
        self._check_resumable(checkpoint, state)
        load_checkpoint_weights(self.model, checkpoint)
        trainer = torch.load(checkpoint / TRAINER_FILE, map_location="cpu", weights_only=True)
        self.optimizer.load_state_dict(trainer["optimizer"])
        self.scheduler.load_state_dict(trainer["scheduler"])
        _set_rng_state(trainer["rng"])
        self.cursor = _Cursor(int(state["epoch"]), int(state["position"]), trainer["order"])
        self.step = int(state["step"])
        self.history = _rewind_history(self.out_dir, self.step)
        return self.step

    def _check_resumable(self, checkpoint: Path, state: Mapping[str, Any]) -> None:
        saved, now = TrainConfig.from_dict(state["config"]).to_dict(), self.config.to_dict()
        changed = [f for f in MATH_FIELDS if saved[f] != now[f]]
        if changed:
            detail = ", ".join(f"{f}: {saved[f]!r} -> {now[f]!r}" for f in changed)
            raise TrainingError(
                f"cannot resume from {checkpoint}: the config changed in {changed} ({detail}); "
                "resume with the checkpoint's values, or train into a new out_dir"
            )
        names = [name for name, _ in self.named]
        if state["trainable"] != names:
            raise TrainingError(f"cannot resume from {checkpoint}: it trained other parameters than this model offers "
                                f"for trainable={self.config.trainable!r}; is it the same model?")
        saved_id, now_id = state["model"], model_identity(self.model).to_dict()
        differs = [f for f in IDENTITY_FIELDS if saved_id.get(f) != now_id.get(f)]
        if differs:
            raise TrainingError(f"cannot resume from {checkpoint}: the model differs in {differs} "
                                f"({[(saved_id.get(f), now_id.get(f)) for f in differs]}); load the model it was trained on")
        if state["frozen_fingerprint"] != self.frozen_fingerprint:
            raise TrainingError(f"cannot resume from {checkpoint}: the frozen (base) weights differ from the run's; "
                                "load the same base model it started from")
        if state["n_examples"] != len(self.data) or state["data_fingerprint"] != self.data_fingerprint:
            raise TrainingError(f"cannot resume from {checkpoint}: the examples differ from the run's "
                                f"({state['n_examples']} then, {len(self.data)} now); pass the same examples")


def _rewind_history(out_dir: Path | None, step: int) -> list[dict]:
    """History rows up to `step`; history.jsonl is rewritten without the later rows."""
    if out_dir is None or not (out_dir / HISTORY).is_file():
        return []
    rows = [row for row in map(_parse_row, (out_dir / HISTORY).read_text(encoding="utf-8").splitlines())
            if row is not None and row["step"] <= step]
    atomic_write_text(out_dir / HISTORY, "".join(json.dumps(row) + "\n" for row in rows))
    return rows


def _parse_row(line: str) -> dict | None:
    """One history line; None for a blank line or the half-written last line of a killed run."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    return row if isinstance(row, dict) and "step" in row else None


def _start(run: _Run, out_dir: Path | None, resume: bool) -> int | None:
    """Resume from the latest checkpoint when asked (None: started fresh); refuse to mix runs."""
    checkpoint = latest_checkpoint(out_dir) if out_dir is not None else None
    if checkpoint is not None and not resume:
        raise TrainingError(
            f"{out_dir} already holds checkpoints (latest {checkpoint.name}); pass resume=True to continue "
            "that run, or train into an empty out_dir"
        )
    if checkpoint is not None:
        return run.restore(checkpoint)
    if out_dir is not None:
        atomic_write_text(out_dir / HISTORY, "")
    return None


def train(
    model: Any,
    examples: Any,
    config: TrainConfig = TrainConfig(),
    *,
    out_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    evaluate: Evaluate | None = None,
    pad_token_id: int | None = None,
    progress: bool = True,
    stop_after: int | None = None,
) -> TrainResult:
    """Fine-tune `model` in place on encoded examples (an SFTDataset or a list of EncodedExample).

    out_dir: checkpoints go to `out_dir/checkpoints/step_NNNNNN/` every `checkpoint_every` steps
        and at the last step, and one history row per line to `out_dir/history.jsonl`.
    resume: continue from the latest checkpoint in out_dir (none: start fresh); the config's
        math fields, the trainable names, the examples and the frozen weights must match.
    evaluate: `evaluate(model) -> {name: value}`, called in eval mode without grad every
        `eval_every` steps and after the last step; logged as `eval/<name>`.
    stop_after: stop after this optimizer step as if interrupted (checkpointed when out_dir is set).
    The model is left in eval mode with its requires_grad flags as they were.
    """
    started = time.perf_counter()
    data, pad = _as_examples(examples), pad_id(model, pad_token_id)
    named = trainable_parameters(model, config.trainable)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    if resume and out is None:
        raise TrainingError("resume=True needs out_dir: the folder whose checkpoints/ to resume from")
    if stop_after is not None and stop_after < 0:
        raise TrainingError(f"stop_after must be >= 0, not {stop_after}")
    with _training_mode(model, named) as aliases:
        run = _Run(model, data, config, named, pad, out)
        resumed_from = _start(run, out, resume)
        checkpoint = latest_checkpoint(out) if resumed_from is not None else None
        last = run.total if stop_after is None else min(run.total, stop_after)
        bar = tqdm(total=run.total, initial=run.step, desc="train", unit="step", disable=not progress)
        try:
            while run.step < last:
                row = run.train_step()
                run.record(row)
                bar.update(1)
                bar.set_postfix(loss=f"{row['loss']:.4f}")
                if evaluate is not None and (_due(run.step, config.eval_every) or run.step == run.total):
                    run.record(run.evaluate(evaluate, aliases))
                if out is not None and (_due(run.step, config.checkpoint_every) or run.step == last):
                    checkpoint = run.save()
        finally:
            bar.close()
    return TrainResult(run.step, run.epochs_done, run.history, checkpoint, resumed_from,
                       round(time.perf_counter() - started, 3))


def _due(step: int, every: int | None) -> bool:
    return every is not None and step % every == 0
