"""Where a capture's batches go: into one in-memory activation set, or into safetensors shards on disk.

Both sinks take the same `write(rows, acts, norms)` calls from the one capture loop
(`tl_traits.core.capture`); only what `finish` returns differs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor

from tl_traits.core.activations import ActivationSet, CaptureError
from tl_traits.core.files import atomic_write_json

INDEX = "index.json"  # written last: a folder without it is an unfinished capture


class CaptureSink(Protocol):
    """Receives each batch's reduced activations, rows in input order indices."""

    def write(
        self, rows: Sequence[int], acts: Float[Tensor, "b layer d_model"], norms: Float[Tensor, "b layer"]
    ) -> None: ...


class MemorySink:
    """Fills `[n, layers, d_model]` tensors in input order."""

    def __init__(self, n: int, n_layers: int, d_model: int) -> None:
        self.acts = torch.empty(n, n_layers, d_model, dtype=torch.float32)
        self.norms = torch.empty(n, n_layers, dtype=torch.float32)

    def write(
        self, rows: Sequence[int], acts: Float[Tensor, "b layer d_model"], norms: Float[Tensor, "b layer"]
    ) -> None:
        index = torch.tensor(list(rows))
        self.acts[index] = acts.cpu()
        self.norms[index] = norms.cpu()

    def finish(
        self, labels: Int[Tensor, " n"] | None, layers: list[int], hook: str, position: str, metadata: dict[str, Any]
    ) -> ActivationSet:
        return ActivationSet(self.acts, self.norms, labels, layers, hook, position, metadata)


@dataclass(frozen=True)
class ShardedActivations:
    """A capture streamed to a folder: one safetensors shard per batch and an index. Nothing is in memory
    until `load()` gathers it (or `shards()` reads one shard at a time)."""

    folder: Path
    layers: list[int]
    hook: str
    position: str
    n_examples: int
    metadata: dict[str, Any] = field(default_factory=dict)

    def shards(self) -> Iterator[tuple[list[int], ActivationSet]]:
        return iter_shards(self.folder)

    def load(self) -> ActivationSet:
        return load_shards(self.folder)

    @classmethod
    def open(cls, folder: str | os.PathLike[str]) -> "ShardedActivations":
        index = _index(Path(folder))
        return cls(
            Path(folder),
            index["layers"],
            index["hook"],
            index["position"],
            sum(len(s["rows"]) for s in index["shards"]),
            index["metadata"],
        )


class ShardSink:
    """Writes each batch as `shard_00000.safetensors`, ... with its rows' labels; `finish` seals the folder."""

    def __init__(
        self, folder: str | os.PathLike[str], labels: Sequence[int] | None, layers: list[int], hook: str, position: str
    ) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / INDEX).unlink(missing_ok=True)  # an earlier, sealed capture here is no longer valid
        self.labels, self.layers, self.hook, self.position = labels, layers, hook, position
        self.shards: list[dict[str, Any]] = []

    def write(
        self, rows: Sequence[int], acts: Float[Tensor, "b layer d_model"], norms: Float[Tensor, "b layer"]
    ) -> None:
        labels = None if self.labels is None else torch.tensor([self.labels[i] for i in rows])
        name = f"shard_{len(self.shards):05d}.safetensors"
        ActivationSet(acts.cpu(), norms.cpu(), labels, self.layers, self.hook, self.position).save(self.folder / name)
        self.shards.append({"file": name, "rows": list(rows)})

    def finish(
        self, labels: Int[Tensor, " n"] | None, layers: list[int], hook: str, position: str, metadata: dict[str, Any]
    ) -> ShardedActivations:
        atomic_write_json(
            self.folder / INDEX,
            {"layers": layers, "hook": hook, "position": position, "metadata": metadata, "shards": self.shards},
        )
        return ShardedActivations(
            self.folder, layers, hook, position, sum(len(s["rows"]) for s in self.shards), metadata
        )


def _index(folder: Path) -> dict[str, Any]:
    index_file = folder / INDEX
    if not index_file.is_file():
        raise CaptureError(f"{folder} has no {INDEX}: the streamed capture did not finish; run it again")
    return json.loads(index_file.read_text())


def iter_shards(folder: str | os.PathLike[str]) -> Iterator[tuple[list[int], ActivationSet]]:
    """(row indices, activations) for each shard a streamed capture wrote, one at a time."""
    folder = Path(folder)
    for shard in _index(folder)["shards"]:
        yield shard["rows"], ActivationSet.load(folder / shard["file"])


def load_shards(folder: str | os.PathLike[str]) -> ActivationSet:
    """Gather a streamed capture back into one in-memory set, in input order."""
    index = _index(Path(folder))
    parts = list(iter_shards(folder))
    n = sum(len(rows) for rows, _ in parts)
    first = parts[0][1]
    acts = torch.empty(n, *first.acts.shape[1:])
    norms = torch.empty(n, first.token_norms.shape[1])
    labels = None if first.labels is None else torch.empty(n, dtype=torch.long)
    for rows, part in parts:
        acts[rows] = part.acts
        norms[rows] = part.token_norms
        if labels is not None and part.labels is not None:
            labels[rows] = part.labels
    return ActivationSet(acts, norms, labels, index["layers"], index["hook"], index["position"], index["metadata"])
