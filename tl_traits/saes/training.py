"""Train a TopK SAE on one layer's activations with sae-lens's own trainer, and save it in sae-lens's format.

`activation_batches` (in `saes.activations`) streams real-token activations from a TransformerLens model
(no full cache is kept); `train_sae` hands them to `sae_lens.SAETrainer` (which does all the optimisation),
saves the inference SAE atomically, and measures it on held-out text. sae-lens is imported only when an SAE
is trained.
"""

from __future__ import annotations

import math
import os
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from tl_traits.core.extras import require
from tl_traits.core.files import atomic_directory
from tl_traits.saes.activations import (  # SAETrainingError: also re-exported, the error of SAE training
    SAETrainingError,
    activation_batches,
    check_corpus,
    check_layer_hook,
    text_activations,
)
from tl_traits.saes.sae import load_sae


# -- quality -----------------------------------------------------------------------------------------
@torch.no_grad()
def sae_quality(sae: Any, acts: Float[Tensor, "n d_model"]) -> dict[str, Any]:
    """Explained variance (1 - residual var / total var, summed over dims), mean L0 and dead-feature fraction.

    A feature is dead when it fires on none of the rows of `acts`. `density` is each feature's firing
    rate over the rows (a `[d_sae]` tensor).
    """
    x = acts.to(device=sae.W_dec.device, dtype=sae.W_dec.dtype)
    feats = sae.encode(x)
    recon = sae.decode(feats)
    total = (x - x.mean(0)).pow(2).sum()
    resid = (x - recon).pow(2).sum()
    fired = feats != 0
    return {
        "explained_variance": float(1 - resid / total) if total > 0 else float("nan"),
        "mean_l0": float(fired.sum(-1).float().mean()),
        "dead_fraction": float((~fired.any(0)).float().mean()),
        "n_tokens": int(x.shape[0]),
        "density": fired.float().mean(0).cpu(),
    }


# -- training ----------------------------------------------------------------------------------------
@dataclass
class SAETrainingResult:
    """A trained TopK SAE (sae-lens inference `SAE`), where it was saved, and how good it is on held-out tokens."""

    sae: Any
    folder: Path | None
    hook_name: str
    explained_variance: float
    mean_l0: float
    dead_fraction: float
    train_seconds: float
    n_train_tokens: int
    n_eval_tokens: int
    config: dict[str, Any] = field(default_factory=dict)
    feature_density: Tensor | None = None  # [d_sae] firing rate of each feature on the held-out tokens

    def summary(self) -> dict[str, Any]:
        return {
            "folder": None if self.folder is None else str(self.folder),
            "hook_name": self.hook_name,
            "explained_variance": self.explained_variance,
            "mean_l0": self.mean_l0,
            "dead_fraction": self.dead_fraction,
            "train_seconds": self.train_seconds,
            "n_train_tokens": self.n_train_tokens,
            "n_eval_tokens": self.n_eval_tokens,
            **self.config,
        }


def split_corpus(texts: Sequence[str], seed: int = 0, eval_fraction: float = 0.1) -> tuple[list[str], list[str]]:
    """(train, held-out) texts: a seeded `eval_fraction` (at least one text) is held out; one text is used for both."""
    texts = list(texts)
    if len(texts) < 2:
        return texts, texts
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    n_eval = max(1, int(round(eval_fraction * len(texts))))
    held = set(order[:n_eval])
    return [t for i, t in enumerate(texts) if i not in held], [t for i, t in enumerate(texts) if i in held]


def train_sae(
    model: Any,
    layer: int,
    corpus: Sequence[Any],
    *,
    d_sae: int,
    k: int,
    n_tokens: int,
    batch_tokens: int = 1024,
    lr: float = 1e-3,
    out: str | os.PathLike[str] | None = None,
    hook: str = "resid_post",
    seed: int = 0,
    progress: bool = True,
    seq_batch: int = 8,
    max_length: int = 128,
    eval_fraction: float = 0.1,
    max_eval_tokens: int = 20_000,
    memory_tokens: int = 0,
) -> SAETrainingResult:
    """Train a TopK SAE (`d_sae` features, `k` active) on `n_tokens` activations at `blocks.{layer}.hook_{hook}`.

    corpus: plain-text strings and chat turns (see `activation_batches`; `tl_traits.saes.corpus` builds
    the offline corpus used for the embedded model). memory_tokens: when the corpus gives at most
    this many tokens, run the model over it once and train later passes from memory (much faster
    when n_tokens spans several passes; see `activation_batches`). A seeded
    `eval_fraction` of the texts is held out; the quality figures are measured on (up to
    `max_eval_tokens` of) their tokens after training. sae-lens's `SAETrainer` runs the training
    (Adam at `lr`, constant schedule, grad-norm clip 1, TopK aux loss for dead features); `n_tokens`
    is rounded down to whole batches.

    out: a folder to save the SAE in sae-lens's inference format (`SAE.load_from_disk`,
    `tl_traits.saes.sae.load_sae`); written to a temp folder beside it and renamed when complete. It must
    not exist yet. The SAE's metadata records `hook_name` and `model_name` (the model's
    cfg.model_name), which the `sae` extractor checks against the layer and hook asked for.
    """
    name = check_layer_hook(model, layer, hook)
    texts = check_corpus(corpus)
    for label, value in (("d_sae", d_sae), ("k", k), ("n_tokens", n_tokens), ("batch_tokens", batch_tokens)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SAETrainingError(f"{label} must be a positive int, got {value!r}")
    if k > d_sae:
        raise SAETrainingError(f"k={k} is larger than d_sae={d_sae}: a TopK SAE cannot keep more features than it has")
    if n_tokens < batch_tokens:
        raise SAETrainingError(
            f"n_tokens={n_tokens} is less than batch_tokens={batch_tokens}: training needs at least one full batch"
        )
    if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise SAETrainingError(f"lr must be a positive number, got {lr!r}")
    if out is not None and Path(out).exists():
        raise SAETrainingError(f"SAE folder '{out}' already exists; pick a new folder or remove it first")

    require("sae_lens")
    from sae_lens import SAE, SAETrainer, TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.config import SAETrainerConfig

    device = str(getattr(model.cfg, "device", None) or "cpu")
    model_name = str(getattr(model.cfg, "model_name", "") or "")
    train_texts, eval_texts = split_corpus(texts, seed, eval_fraction)

    torch.manual_seed(seed)
    cfg = TopKTrainingSAEConfig(d_in=int(model.cfg.d_model), d_sae=d_sae, k=k, device=device, dtype="float32")
    cfg.metadata.hook_name = name
    cfg.metadata.model_name = model_name
    training_sae = TopKTrainingSAE(cfg)

    n_steps = n_tokens // batch_tokens
    trainer_cfg = SAETrainerConfig(
        total_training_samples=n_steps * batch_tokens,
        train_batch_size_samples=batch_tokens,
        lr=float(lr),
        lr_end=float(lr),  # constant schedule; the trainer needs it set (its runner config fills it in)
        device=device,
        dead_feature_window=max(1, min(1000, n_steps // 4)),
        feature_sampling_window=max(1, min(2000, n_steps)),
    )
    data = activation_batches(
        model,
        train_texts,
        layer,
        hook=hook,
        batch_tokens=batch_tokens,
        seq_batch=seq_batch,
        max_length=max_length,
        shuffle_seed=seed,
        repeat=True,
        memory_tokens=memory_tokens,
    )
    import sae_lens.training.sae_trainer as _trainer_module
    from tqdm.auto import (
        tqdm as _tqdm,  # sae-lens's trainer draws its own bar; silence it when asked
    )

    trainer = SAETrainer(cfg=trainer_cfg, sae=training_sae, data_provider=data)
    started = time.perf_counter()
    original_tqdm = _trainer_module.tqdm
    try:
        if not progress:
            _trainer_module.tqdm = lambda *a, **kw: _tqdm(*a, **{**kw, "disable": True})
        trainer.fit()
    finally:
        _trainer_module.tqdm = original_tqdm
        data.close()
    train_seconds = time.perf_counter() - started

    # inference form: sae-lens's own save -> load round trip (drops training-only parts and settings)
    if out is None:
        with tempfile.TemporaryDirectory(prefix="tl_traits_sae_") as tmp:
            training_sae.save_inference_model(tmp)
            sae = SAE.load_from_disk(tmp, device=device)
        folder = None
    else:
        with atomic_directory(out) as tmp:
            training_sae.save_inference_model(tmp)
        folder = Path(out)
        sae = load_sae(folder, device=device)

    eval_rows: list[Tensor] = []
    n_eval = 0
    for rows in text_activations(model, eval_texts, name, layer, seq_batch, max_length):
        eval_rows.append(rows)
        n_eval += rows.shape[0]
        if n_eval >= max_eval_tokens:
            break
    quality = sae_quality(sae, torch.cat(eval_rows)[:max_eval_tokens])
    return SAETrainingResult(
        sae=sae,
        folder=folder,
        hook_name=name,
        explained_variance=quality["explained_variance"],
        mean_l0=quality["mean_l0"],
        dead_fraction=quality["dead_fraction"],
        train_seconds=train_seconds,
        n_train_tokens=trainer.n_training_samples,
        n_eval_tokens=quality["n_tokens"],
        feature_density=quality["density"],
        config={
            "architecture": "topk",
            "d_sae": d_sae,
            "k": k,
            "lr": float(lr),
            "batch_tokens": batch_tokens,
            "layer": layer,
            "hook": hook,
            "model_name": model_name,
            "seed": seed,
        },
    )
