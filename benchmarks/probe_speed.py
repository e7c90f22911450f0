"""The batched probe vs a per-layer sklearn LogisticRegression(C=1) loop: wall time and held-out accuracy."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import numpy as np
import torch
from jaxtyping import Float
from tl_traits.plugins.extractors.probe import logistic_regression, probe
from torch import Tensor


def residual_like(n: int, layers: int, d_model: int, seed: int) -> tuple[Float[Tensor, "n layer d_model"], ...]:
    """Train pos, train neg, test pos, test neg shaped like residual streams; a probe scores about 80% on them.

    Each layer has a large shared offset (one layer's residuals point nearly the same way),
    anisotropic noise and a planted trait direction.
    """
    gen = torch.Generator().manual_seed(seed)
    offset = torch.randn(layers, d_model, generator=gen) * torch.linspace(2.0, 6.0, layers)[:, None]
    spectrum = torch.logspace(0.0, -1.5, d_model)
    mixing = torch.randn(layers, d_model, d_model, generator=gen) / d_model**0.5
    trait = torch.nn.functional.normalize(torch.randn(layers, d_model, generator=gen), dim=-1)
    shift = 2.0 * trait * spectrum.norm() / d_model**0.5  # ~2 noise sds along the trait

    def draw(sign: float) -> Tensor:
        noise = torch.einsum("kle,led->kld", torch.randn(n, layers, d_model, generator=gen) * spectrum, mixing)
        return offset + noise + sign * shift

    return draw(1.0), draw(-1.0), draw(1.0), draw(-1.0)


def measure_probe_speed(n: int = 80, layers: int = 30, d_model: int = 576, seed: int = 0, repeats: int = 15) -> dict:
    """Median wall time of our probe and of sklearn's per-layer loop on the same data, and their test accuracy.

    Each side is timed back to back after a warm-up. sklearn gets every advantage: inputs already
    row-normalised float32 NumPy arrays (our time includes normalising and checking), and one BLAS
    thread (faster for fits this small, and its idle threads cannot steal cores from torch).
    """
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    pos, neg, test_pos, test_neg = residual_like(n, layers, d_model, seed)
    x_train, y_train = _normalised(pos, neg)
    x_test, y_test = _normalised(test_pos, test_neg)

    def sklearn_fit() -> list:
        with threadpool_limits(limits=1, user_api="blas"):
            return [LogisticRegression(C=1.0).fit(x_train[layer], y_train) for layer in range(layers)]

    ours_s, sklearn_s = _median_time(lambda: probe(pos, neg), repeats), _median_time(sklearn_fit, repeats)
    w, b = logistic_regression(pos, neg)
    logits = np.einsum("lnd,ld->ln", x_test, w.numpy()) + b.numpy()[:, None]
    return {
        "ours_s": ours_s,
        "sklearn_s": sklearn_s,
        "speedup": sklearn_s / ours_s,
        "ours_acc": float(((logits > 0) == y_test).mean()),
        "sklearn_acc": float(np.mean([clf.score(x_test[i], y_test) for i, clf in enumerate(sklearn_fit())])),
    }


def _normalised(pos: Tensor, neg: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """`[layer, N, d]` row-normalised float32 examples and their 0/1 labels, as sklearn takes them."""
    x = torch.cat([pos, neg]).transpose(0, 1)
    x = (x / x.norm(dim=-1, keepdim=True)).contiguous().numpy()
    return x, np.r_[np.ones(len(pos)), np.zeros(len(neg))]


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median seconds per call over back-to-back repeats, after one warm-up call (timeit's steady state)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


if __name__ == "__main__":
    result = measure_probe_speed()
    print(
        f"probe {result['ours_s'] * 1e3:.1f} ms vs sklearn loop {result['sklearn_s'] * 1e3:.1f} ms: "
        f"{result['speedup']:.1f}x faster; held-out accuracy {result['ours_acc']:.3f} vs {result['sklearn_acc']:.3f}"
    )
