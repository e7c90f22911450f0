"""`make demo`: load the embedded model and answer one chat question greedily."""

from __future__ import annotations

import time

from tl_traits.generation import generate
from tl_traits.models import load_model, model_identity

QUESTION = "What is the capital of France?"


def main() -> None:
    start = time.perf_counter()
    model = load_model()
    identity = model_identity(model)
    print(
        f"loaded {identity.name} ({identity.kind}, {identity.n_layers} layers, d_model {identity.d_model}, "
        f"{identity.dtype}) in {time.perf_counter() - start:.1f}s"
    )
    answer = generate(model, [QUESTION], max_new_tokens=40)[0]
    print(f"Q: {QUESTION}\nA: {answer.strip()}")


if __name__ == "__main__":
    main()
