"""Fine-tune a TransformerLens model (HookedTransformer or TransformerBridge) on encoded SFT examples,
with checkpoints (weights, optimizer, schedule, RNGs, data order) that resume bit for bit."""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import torch
from jaxtyping import Int
from torch import Tensor
from tqdm.auto import tqdm

from tl_traits.core.files import atomic_directory, atomic_write_json, atomic_write_text
from tl_traits.core.models import model_device, model_identity
from tl_traits.core.version import package_version
from tl_traits.core.weight_views import TensorAlias, restore_aliases, tensor_aliases
from tl_traits.training.checkpoints import (
    CHECKPOINTS,
    HISTORY,
    STATE_FILE,
    TRAINER_FILE,
    WEIGHTS_FILE,
    data_fingerprint,
    frozen_fingerprint,
    latest_checkpoint,
    load_checkpoint_weights,
    rewind_history,
    rng_state,
    rotate_checkpoints,
    set_rng_state,
    unique_tensors,
)
from tl_traits.training.config import (
    MATH_FIELDS,
    TrainConfig,
    TrainingError,
    lr_lambda,
    total_steps,
    trainable_parameters,
)
from tl_traits.training.loss import (
    as_examples,
    forward_batch,
    loss_sum,
    n_labelled,
    training_pad_id,
)
from tl_traits.training.sft import EncodedExample

# Identity fields a checkpoint must share with the model it is resumed on (the fingerprint
# changes with training, so it is not one of them; the frozen weights are checked instead).
IDENTITY_FIELDS = ("kind", "n_layers", "d_model", "dtype")

Evaluate = Callable[[Any], Mapping[str, float]]


@dataclass
class TrainResult:
    """What a `train` call did; `history` has one row per optimizer step plus eval rows."""

    steps: int
    epochs_done: float
    history: list[dict]
    checkpoint: Path | None
    resumed_from: int | None
    seconds: float


def _permutation(seed: int, epoch: int, n: int) -> Int[Tensor, " n"]:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))


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

    def __init__(
        self,
        model: Any,
        data: list[EncodedExample],
        config: TrainConfig,
        named: list[tuple[str, torch.nn.Parameter]],
        pad: int,
        out_dir: Path | None,
    ) -> None:
        self.model, self.data, self.config, self.named, self.pad, self.out_dir = (
            model,
            data,
            config,
            named,
            pad,
            out_dir,
        )
        self.device = model_device(model)
        self.total = total_steps(config, len(data))
        self.optimizer = torch.optim.AdamW(
            [p for _, p in named], lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(config, self.total))
        self.step = 0
        self.cursor = _Cursor(0, 0, _permutation(config.seed, 0, len(data)))
        self.history: list[dict] = []
        self.grads_checked = False
        self.data_fingerprint = data_fingerprint(data)
        self.frozen_fingerprint = frozen_fingerprint(model, {id(p) for _, p in named})

    # -- one optimizer step ----------------------------------------------------------------------
    def train_step(self) -> dict[str, Any]:
        c, cfg = self.cursor, self.config
        group = [self.data[i] for i in c.order[c.position : c.position + cfg.batch_size * cfg.grad_accum].tolist()]
        # One denominator for the whole group: grad_accum=k on batches of b equals one batch of k*b.
        denominator = max(1, sum(n_labelled(ex) for ex in group))
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
        return {
            "step": self.step,
            "epoch": self.epochs_done,
            "loss": loss / denominator,
            "lr": lr,
            "grad_norm": float(grad_norm),
        }

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
            tensors, aliases = unique_tensors(self.named)
            save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"step": str(self.step)})
            torch.save(
                {
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                    "rng": rng_state(),
                    "order": self.cursor.order.clone(),
                },
                tmp / TRAINER_FILE,
            )
            atomic_write_json(tmp / STATE_FILE, self._state(aliases))
        rotate_checkpoints(self.out_dir, self.config.keep_checkpoints)
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
        set_rng_state(trainer["rng"])
        self.cursor = _Cursor(int(state["epoch"]), int(state["position"]), trainer["order"])
        self.step = int(state["step"])
        self.history = rewind_history(self.out_dir, self.step)
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
            raise TrainingError(
                f"cannot resume from {checkpoint}: it trained other parameters than this model offers "
                f"for trainable={self.config.trainable!r}; is it the same model?"
            )
        saved_id, now_id = state["model"], model_identity(self.model).to_dict()
        differs = [f for f in IDENTITY_FIELDS if saved_id.get(f) != now_id.get(f)]
        if differs:
            raise TrainingError(
                f"cannot resume from {checkpoint}: the model differs in {differs} "
                f"({[(saved_id.get(f), now_id.get(f)) for f in differs]}); load the "
                "model it was trained on"
            )
        if state["frozen_fingerprint"] != self.frozen_fingerprint:
            raise TrainingError(
                f"cannot resume from {checkpoint}: the frozen (base) weights differ from the run's; "
                "load the same base model it started from"
            )
        if state["n_examples"] != len(self.data) or state["data_fingerprint"] != self.data_fingerprint:
            raise TrainingError(
                f"cannot resume from {checkpoint}: the examples differ from the run's "
                f"({state['n_examples']} then, {len(self.data)} now); pass the same examples"
            )


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
    data, pad = as_examples(examples), training_pad_id(model, pad_token_id)
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
        checkpoint = latest_checkpoint(out) if resumed_from is not None and out is not None else None
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
    return TrainResult(
        run.step, run.epochs_done, run.history, checkpoint, resumed_from, round(time.perf_counter() - started, 3)
    )


def _due(step: int, every: int | None) -> bool:
    return every is not None and step % every == 0
