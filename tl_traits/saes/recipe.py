"""Train an SAE into the SAE store (what `tl-traits train-sae` and `make sae` run): defaults, corpus, record, plot."""

from __future__ import annotations

import json
import shutil
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Sequence

from tl_traits.core.embedded import cache_dir
from tl_traits.core.figures import save_figure
from tl_traits.core.files import atomic_write_json
from tl_traits.core.models import weights_fingerprint
from tl_traits.core.version import package_version
from tl_traits.saes.corpus import default_corpus
from tl_traits.saes.sae import stored_sae_folder
from tl_traits.saes.training import SAETrainingError, train_sae

DEPTH = 0.4  # the benchmarks steer at 40% depth; the SAE sits there so `sae` is compared where it is steered
MEMORY_TOKENS = 1_500_000  # keep one corpus pass in RAM up to this many rows (3.5 GB at d_model 576)
CORPUS_NOTE = (
    "Python language reference paragraphs (pydoc_data.topics) and standard-library docstrings, both shipped "
    "with CPython under the PSF License; the model's own sampled replies to a templated prompt set (tl_traits, "
    "MIT), rendered with its chat template and repeated 3 times"
)


def default_layer(model: Any) -> int:
    return round(DEPTH * (int(model.cfg.n_layers) - 1))


def target_folder(model: Any, layer: int | None, hook: str, out: str | Path | None) -> Path:
    """Where `train_and_store` puts the SAE: `out`, else the SAE store's folder for this model, layer and hook."""
    layer = default_layer(model) if layer is None else layer
    return Path(out) if out is not None else stored_sae_folder(str(model.cfg.model_name), layer, hook)


def read_corpus(path: str | Path) -> list[Any]:
    """Texts from a .txt file (paragraphs split by blank lines) or .jsonl rows ({"text"} or {"prompt", "response"})."""
    path = Path(path)
    if not path.is_file():
        raise SAETrainingError(f"corpus file '{path}' does not exist; give a .txt or .jsonl file")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if isinstance(row, dict) and isinstance(row.get("text"), str):
                rows.append(row["text"])
            elif isinstance(row, dict) and isinstance(row.get("prompt"), str) and isinstance(row.get("response"), str):
                rows.append({"prompt": row["prompt"], "response": row["response"]})
            else:
                raise SAETrainingError(f"{path}:{n}: a corpus row needs 'text', or 'prompt' and 'response' strings")
        return rows
    if path.suffix in (".txt", ".md", ""):
        return [p.strip() for p in text.split("\n\n") if p.strip()]
    raise SAETrainingError(f"corpus file '{path}' is neither .txt nor .jsonl")


def train_and_store(
    model: Any,
    *,
    layer: int | None = None,
    hook: str = "resid_post",
    d_sae: int | None = None,
    k: int = 32,
    n_tokens: int = 1_000_000,
    lr: float = 1e-3,
    corpus: Sequence[Any] | None = None,
    replies: int = 320,
    out: str | Path | None = None,
    force: bool = False,
    seed: int = 0,
    progress: bool = True,
    stages: Any = None,
) -> dict[str, Any]:
    """Train a TopK SAE (default: 40% depth, 8 x d_model features, k=32, the offline corpus) and save it with
    `training.json` (figures, settings, corpus) and `feature_density.png` beside sae-lens's files.

    out: default is the SAE store's folder for this model and hook, where the `sae` extractor looks.
    An existing SAE there is replaced only with `force`, and only once the new one is complete.
    """

    folder = target_folder(model, layer, hook, out)
    layer = default_layer(model) if layer is None else layer
    d_sae = d_sae or 8 * int(model.cfg.d_model)
    if folder.exists() and not force:
        raise SAETrainingError(
            f"an SAE already exists at '{folder}'; pass --force (force=True) to replace it once the new one is "
            "complete, or --out for another folder"
        )

    def stage(name: str) -> Any:
        return stages.stage(name) if stages is not None else nullcontext()

    with stage("corpus"):
        texts = (
            list(corpus)
            if corpus is not None
            else default_corpus(model, n_prompts=replies, cache=cache_dir() / "corpora", progress=progress)
        )
    fresh = folder.with_name(folder.name + ".training")
    if fresh.exists():  # left by an interrupted run
        shutil.rmtree(fresh)
    fresh.parent.mkdir(parents=True, exist_ok=True)
    with stage(f"train SAE at layer {layer}"):
        result = train_sae(
            model,
            layer,
            texts,
            d_sae=d_sae,
            k=k,
            n_tokens=n_tokens,
            lr=lr,
            out=fresh,
            hook=hook,
            seed=seed,
            progress=progress,
            seq_batch=16,
            memory_tokens=MEMORY_TOKENS,
        )
    n_chat = sum(isinstance(t, dict) for t in texts)
    record = {
        **result.summary(),
        "folder": str(folder),
        "corpus": {
            "description": CORPUS_NOTE if corpus is None else "given by the user",
            "plain_texts": len(texts) - n_chat,
            "chat_turns": n_chat,
        },
        "model_fingerprint": weights_fingerprint(model),
        "tl_traits_version": package_version(),
    }
    atomic_write_json(fresh / "training.json", record)
    if result.feature_density is not None:
        from tl_traits.saes.figures import feature_density_figure  # needs the [report] extra

        save_figure(feature_density_figure(result.feature_density.tolist()), fresh / "feature_density.png")
    if folder.exists():
        old = folder.with_name(folder.name + ".old")
        folder.rename(old)
        fresh.rename(folder)
        shutil.rmtree(old)
    else:
        fresh.rename(folder)
    return record
