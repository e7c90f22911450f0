"""What a dashboard request may ask for, checked before it reaches the model: the caps on prompt length and new
tokens, the conversation's shape, and vectors, layers and strength named by id."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from tl_traits.app.serve.catalog import Catalog, ServedVector, ServeError

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Limits:
    """The caps every request is held to (the CLI's --max-prompt-chars and --max-new-tokens set the first two)."""

    max_prompt_chars: int = 2000  # the whole conversation's text
    max_new_tokens: int = 200
    default_new_tokens: int = 48
    max_messages: int = 24
    max_vectors: int = 8  # monitored at once
    max_strength: float = 10.0  # |strength|, in the vector's units
    max_body_bytes: int = 256 * 1024

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def conversation(body: dict[str, Any], limits: Limits) -> list[dict[str, str]]:
    """`message` (one user turn) or `messages` (a conversation ending with the user's turn), within the caps."""
    if "messages" in body:
        raw = body["messages"]
        if not isinstance(raw, list) or not raw:
            raise ServeError("messages must be a non-empty list of {role, content} objects")
    elif "message" in body:
        raw = [{"role": "user", "content": body["message"]}]
    else:
        raise ServeError('send a message: {"message": "..."} or {"messages": [{"role": "user", ...}]}')
    if len(raw) > limits.max_messages:
        raise ServeError(
            f"the conversation has {len(raw)} messages; the dashboard takes at most "
            f"{limits.max_messages} (start a new chat)",
            413,
        )
    messages = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise ServeError(f'message {i} must be {{"role": one of {", ".join(ROLES)}, "content": text}}')
        messages.append({"role": m["role"], "content": m["content"]})
    if messages[-1]["role"] != "user" or not messages[-1]["content"].strip():
        raise ServeError("the last message must be the user's, and not empty")
    chars = sum(len(m["content"]) for m in messages)
    if chars > limits.max_prompt_chars:
        raise ServeError(
            f"the prompt is {chars} characters; the dashboard takes at most {limits.max_prompt_chars} "
            "(shorten it, start a new chat, or restart serve with a larger --max-prompt-chars)",
            413,
        )
    return messages


def new_tokens(body: dict[str, Any], limits: Limits) -> int:
    value = body.get("max_new_tokens", limits.default_new_tokens)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ServeError(f"max_new_tokens must be a whole number >= 1, not {value!r:.40}")
    if value > limits.max_new_tokens:
        raise ServeError(
            f"max_new_tokens is {value}; the dashboard generates at most {limits.max_new_tokens} "
            "(restart serve with a larger --max-new-tokens)",
            413,
        )
    return value


def vector_ids(body: dict[str, Any], catalog: Catalog, limits: Limits, key: str = "vectors") -> list[ServedVector]:
    """The monitored vectors, by id (none: the catalog's defaults)."""
    raw = body.get(key, catalog.defaults.get("chat_vectors", []))
    if not isinstance(raw, list):
        raise ServeError(f"{key} must be a list of vector ids from /api/info")
    if len(raw) > limits.max_vectors:
        raise ServeError(f"{len(raw)} vectors asked for; the dashboard monitors at most {limits.max_vectors} at once")
    chosen = [catalog.vector(v) for v in raw]
    return list({v.id: v for v in chosen}.values())


def monitor_layer(body: dict[str, Any], served: ServedVector) -> int:
    """`layer`: "best" (default: each vector's best detection layer) or one layer every monitored vector has."""
    value = body.get("layer", "best")
    if value in ("best", None, ""):
        vec = served.vector
        return vec.best_layer("auroc") if "auroc" in vec.metrics else vec.layers[len(vec.layers) // 2]
    return layer_number(value, "layer")


def layer_number(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise ServeError(f"{what} must be a layer number, not {value!r:.40}")
    return value


def steering_request(body: dict[str, Any], catalog: Catalog, limits: Limits) -> tuple[ServedVector, list[int], float]:
    """The steering vector (by id), its layers and the signed strength (`direction` +1 toward, -1 away)."""
    served = catalog.vector(body.get("vector"))
    layers_raw = body.get("layers")
    if layers_raw in (None, [], ""):
        raise ServeError("choose the layer(s) to steer at")
    layers = [
        layer_number(x, "each steering layer") for x in (layers_raw if isinstance(layers_raw, list) else [layers_raw])
    ]
    missing = [x for x in layers if x not in served.vector.layers]
    if missing:
        raise ServeError(
            f"vector {served.id!r} has no layer {missing[0]}; its layers are "
            f"{', '.join(map(str, served.vector.layers))}"
        )
    strength = body.get("strength", 0.0)
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength):
        raise ServeError(f"strength must be a finite number, not {strength!r:.40}")
    if abs(strength) > limits.max_strength:
        raise ServeError(
            f"strength {strength} is past the dashboard's cap of {limits.max_strength} (x the layer's "
            "mean residual norm); answers break long before that"
        )
    direction = body.get("direction", 1)
    if direction not in (1, -1):
        raise ServeError(f"direction must be 1 (toward the trait) or -1 (away), not {direction!r:.20}")
    return served, sorted(set(layers)), float(strength) * direction
