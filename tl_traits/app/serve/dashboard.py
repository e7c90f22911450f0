"""The dashboard's state and its three kinds of model work (chat, steer, an example's projections), each checked on
the event loop and run as one job on the model's thread; `build_dashboard` loads it all from the command line."""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, cast

from tl_traits.app.serve.catalog import Catalog, ServeError, load_catalog
from tl_traits.app.serve.inputs import (
    Limits,
    conversation,
    monitor_layer,
    new_tokens,
    steering_request,
    vector_ids,
)
from tl_traits.app.serve.projections import Baselines, answer_for, example_view, neutral_baselines
from tl_traits.app.serve.scores import JudgePanel
from tl_traits.app.serve.streaming import Answer, Monitor, replay, stream_answer
from tl_traits.app.serve.worker import ModelWorker
from tl_traits.core.models import ModelKind, load_model, model_identity
from tl_traits.core.progress import Stages
from tl_traits.steering.layers import default_steering_layer
from tl_traits.steering.steer import steer

Work = Callable[[], Iterator[dict[str, Any]]]
CACHED_ANSWERS = 64


@dataclass
class Dashboard:
    """One model, what it serves, and the queue in front of it."""

    model: Any
    catalog: Catalog
    baselines: Baselines
    judges: JudgePanel
    limits: Limits = field(default_factory=Limits)
    worker: ModelWorker = field(default_factory=ModelWorker)
    _unsteered: "OrderedDict[str, Answer]" = field(default_factory=OrderedDict)

    # -- what the page starts from --------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        identity = model_identity(self.model)
        n_layers = identity.n_layers
        vectors = [v.describe(default_steering_layer(n_layers, v.vector.layers)) for v in self.catalog.vectors.values()]
        return {
            "model": {"name": identity.name, "kind": identity.kind, "n_layers": n_layers, "d_model": identity.d_model},
            "sources": self.catalog.sources,
            "vectors": vectors,
            "prompt_sets": [s.describe() for s in self.catalog.prompt_sets.values()],
            "defaults": self.catalog.defaults,
            "limits": self.limits.to_dict(),
            "baseline": self.baselines.describe(),
            "judges": self.judges.enabled,
        }

    def monitors(self, body: dict[str, Any], key: str = "vectors") -> list[Monitor]:
        return [
            self.baselines.monitor(v.id, v.vector, monitor_layer(body, v))
            for v in vector_ids(body, self.catalog, self.limits, key)
        ]

    # -- model work: each returns the job's event iterator, checked before it is queued --------------------
    def chat(self, body: dict[str, Any]) -> Work:
        messages = conversation(body, self.limits)
        tokens = new_tokens(body, self.limits)
        monitors = self.monitors(body)

        def work() -> Iterator[dict[str, Any]]:
            yield from stream_answer(self.model, messages, monitors, max_new_tokens=tokens, which="chat")

        return work

    def steer(self, body: dict[str, Any]) -> Work:
        """The unsteered answer (streamed once, then reused) and the steered one, then both judged."""
        messages = conversation(body, self.limits)
        tokens = new_tokens(body, self.limits)
        monitors = self.monitors(body)
        served, layers, strength = steering_request(body, self.catalog, self.limits)
        steering = steer(self.model, served.vector, layers, strength=strength)  # checked now, attached in the job
        key = json.dumps([messages, tokens, [(m.id, m.layer) for m in monitors]])
        direction = -1 if strength < 0 or body.get("direction") == -1 else 1

        def work() -> Iterator[dict[str, Any]]:
            yield {
                "type": "setting",
                "vector": served.id,
                "layers": layers,
                "strength": strength,
                "description": repr(steering),
            }
            unsteered = self._unsteered.get(key)
            if unsteered is not None:
                self._unsteered.move_to_end(key)
                yield from replay(unsteered, monitors, "unsteered")
            else:
                unsteered = Answer()
                yield from stream_answer(
                    self.model, messages, monitors, max_new_tokens=tokens, which="unsteered", record=unsteered
                )
                self._remember(key, unsteered)
            steered = Answer()
            yield from stream_answer(
                self.model,
                messages,
                monitors,
                max_new_tokens=tokens,
                steering=steering,
                which="steered",
                record=steered,
            )
            if self.judges.enabled:
                yield {"type": "judging"}
            yield self.judges.score(
                served.trait, messages[-1]["content"], {"unsteered": unsteered.text, "steered": steered.text}, direction
            )

        return work

    def example(self, set_id: str, body: dict[str, Any]) -> Work:
        """One prompt-set row's per-token projections (its own response, or a greedy answer when it has none)."""
        row = self.catalog.prompt_set(set_id).row(body.get("index"))
        if len(row.prompt) > self.limits.max_prompt_chars * 4:
            raise ServeError(f"this prompt is {len(row.prompt)} characters, too long to project here", 413)
        tokens = new_tokens(body, self.limits)
        monitors = self.monitors(body)

        def work() -> Iterator[dict[str, Any]]:
            response, generated = answer_for(self.model, row.prompt, row.response, tokens)
            view = example_view(self.model, monitors, row.prompt, response)
            yield {"type": "result", "set": set_id, "index": row.index, "generated": generated, **view}

        return work

    def _remember(self, key: str, answer: Answer) -> None:
        self._unsteered[key] = answer
        while len(self._unsteered) > CACHED_ANSWERS:
            self._unsteered.popitem(last=False)

    def status(self) -> dict[str, Any]:
        s = self.worker.stats
        return {
            "busy": s.busy,
            "queued": self.worker.queued,
            "completed": s.completed,
            "cancelled": s.cancelled,
            "skipped": s.skipped,
            "failed": s.failed,
            "events": s.events,
        }


def build_dashboard(
    sources: Sequence[str | Path],
    *,
    model: Any = None,
    model_name: str | None = None,
    kind: str | None = None,
    limits: Limits | None = None,
    judges: bool = True,
    stages: Stages | None = None,
) -> Dashboard:
    """Read the sources, load the model they were made with (or `model_name`), check every vector against it and
    compute the neutral baselines."""
    stages = stages or Stages(enabled=False)
    catalog = load_catalog(sources)
    if model is None:
        with stages.stage("load model"):
            model = load_model(model_name or catalog.model, kind=cast(ModelKind, kind or catalog.kind))
    for served in catalog.vectors.values():
        served.vector.check_model(model)
    with stages.stage(f"neutral baseline ({len(catalog.vectors)} vectors)"):
        baselines = neutral_baselines(model, {k: v.vector for k, v in catalog.vectors.items()})
    return Dashboard(model, catalog, baselines, JudgePanel(model, enabled=judges), limits or Limits())
