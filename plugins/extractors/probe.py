"""probe: L2 logistic regression on row-normalised activations, all layers in one batched solve."""

from __future__ import annotations

from typing import Sequence

import warnings

import torch
from jaxtyping import Float
from tl_traits.extraction.checks import check_pair, unit_rows
from torch import Tensor

from tl_traits.extraction.extract import ExtractionError
from tl_traits.plugins.extractors import catalogue


@catalogue.probe
def probe(
    pos: Float[Tensor, "n layer d_model"],
    neg: Float[Tensor, "m layer d_model"],
    *,
    seed: int = 0,
    layers: Sequence[int] | None = None,  # filled by extract: the model layer of each slice
    C: float = 1.0,
    max_iter: int = 200,
    tol: float = 1e-5,
) -> Float[Tensor, "layer d_model"]:
    """Weights of sklearn's L2 logistic regression (0.5||w||² + C·Σ logloss, free intercept), unit norm.

    Each example is divided by its L2 norm (per layer) first. Solved by nonlinear conjugate
    gradients batched over layers, stopping at every layer once ||gradient|| <= tol·||params||
    (or float32's rounding floor): the ridge makes the loss 1-strongly convex in w, so this
    bounds w's relative error by about `tol`. sklearn's default (tol=1e-4 on its scaled loss)
    left w about 1e-2 off in our checks. Deterministic; `seed` is ignored.
    """
    w, _ = logistic_regression(pos, neg, C=C, max_iter=max_iter, tol=tol)
    return unit_rows(w, "probe", layers)


def logistic_regression(
    pos: Float[Tensor, "n layer d_model"],
    neg: Float[Tensor, "m layer d_model"],
    *,
    C: float = 1.0,
    max_iter: int = 200,
    tol: float = 1e-5,
) -> tuple[Float[Tensor, "layer d_model"], Float[Tensor, " layer"]]:
    """The probe's classifier per layer: predict positive where x/||x||·w + b > 0."""
    pos, neg = check_pair(pos, neg, "probe")
    if C <= 0:
        raise ExtractionError(f"probe: C must be positive (it is the inverse regularisation strength); got {C}")
    return _LogReg([pos, neg], C).fit(max_iter, tol)


class _LogReg:
    """The probe's objective over example blocks `[k, layer, d]`, read in place (no stacked copy).

    Rows are normalised and centred implicitly. With a free intercept, centring the features
    leaves the optimal w unchanged, and it removes the shared-mean direction that otherwise
    dominates the curvature (one layer's residuals all point nearly the same way), so a few
    conjugate-gradient steps suffice. Parameters: theta = [w, beta], logits x'·w + beta / scale.
    Per-layer vectors are kept as `[layer, 1, size]`, the shape bmm takes and returns.
    """

    def __init__(self, blocks: list[Tensor], C: float) -> None:
        self.blocks = [b.transpose(0, 1) for b in blocks]  # [layer, k, d] strided views
        self.blocks_t = [b.transpose(1, 2) for b in self.blocks]
        self.split = self.blocks[0].shape[1]
        inv_norms = [1 / torch.linalg.vector_norm(b, dim=-1, keepdim=True).mT.clamp_min(1e-12) for b in self.blocks]
        self.sums = [torch.bmm(s, b) for s, b in zip(inv_norms, self.blocks)]  # Σ x/||x|| per block
        self.inv_norm = torch.cat(inv_norms, dim=-1)  # [layer, 1, N]
        self.n, self.C = self.inv_norm.shape[-1], C
        ones = torch.ones_like(self.inv_norm[..., :1])
        self.y = torch.cat([torch.ones_like(inv_norms[0]), torch.zeros_like(inv_norms[1])], dim=-1)
        self.scale = max(C * self.n / 4, 1.0) ** 0.5  # gives beta a curvature near w's (about 1)
        # logit offset·theta
        self.offset = torch.cat([-(self.sums[0] + self.sums[1]) / self.n, ones / self.scale], dim=-1)
        self.ridge = torch.cat([torch.ones_like(self.sums[0]), 0 * ones], dim=-1)  # the intercept is not penalised
        self.zero = 0 * ones
        # float32 rounding of a C·N-term gradient, squared
        self.floor = (torch.finfo(torch.float32).eps * C * self.n) ** 2

    def margins(self, theta: Float[Tensor, "layer 1 d+1"]) -> Float[Tensor, "layer 1 N"]:
        """Logits x'·w + beta / scale, x' the normalised, centred rows."""
        z = torch.cat([torch.bmm(theta[..., :-1], b) for b in self.blocks_t], dim=-1)
        return torch.addcmul(_dot(self.offset, theta), z, self.inv_norm)

    def grad(self, theta: Float[Tensor, "layer 1 d+1"], r: Float[Tensor, "layer 1 N"]) -> Float[Tensor, "layer 1 d+1"]:
        """Gradient in theta given the residuals r = sigmoid(z) - y."""
        rs = r * self.inv_norm
        xr = torch.bmm(rs[..., : self.split], self.blocks[0]) + torch.bmm(rs[..., self.split :], self.blocks[1])
        xr = torch.cat([xr, self.zero], dim=-1)
        return torch.addcmul(xr, self.offset, r.sum(-1, keepdim=True)).mul_(self.C).addcmul_(theta, self.ridge)

    def fit(self, max_iter: int, tol: float) -> tuple[Float[Tensor, "layer d"], Float[Tensor, " layer"]]:
        """Polak-Ribière+ conjugate gradients with a Newton/secant line search per layer."""
        C, y = self.C, self.y
        theta, z = torch.zeros_like(self.offset), torch.zeros_like(self.inv_norm)
        # At theta = 0 every residual is 1/2 - y, so the first gradient needs only the block sums
        g = torch.cat([(self.sums[1] - self.sums[0]) / 2, self.zero], dim=-1)
        g = torch.addcmul(g, self.offset, self.zero + (self.n - 2 * self.split) / 2).mul_(C)
        p, gg, curv = -g, _dot(g, g), torch.full_like(z, 0.25)  # curv: sigmoid'(z), 1/4 at z = 0
        active = torch.ones_like(gg, dtype=torch.bool)
        for step in range(max_iter + 1):  # the extra round only checks the last step
            active &= gg > tol**2 * _dot(theta, theta) + self.floor
            if not active.any() or step == max_iter:
                break
            dz = self.margins(p)
            pw = p[..., :-1]
            reg0, reg1, slope = _dot(theta[..., :-1], pw), _dot(pw, pw), _dot(g, p)
            t1 = -slope / (reg1 + C * _dot(curv, dz * dz))  # Newton step from t = 0
            s1 = reg0 + t1 * reg1 + C * _dot(torch.sigmoid(torch.addcmul(z, t1, dz)) - y, dz)
            # Convex along the line: past the minimum, the secant root of the slope lies in (0, t1)
            t = torch.where(active, torch.where(s1 > 0, t1 * slope / (slope - s1), t1), 0.0)
            theta, z = torch.addcmul(theta, t, p), torch.addcmul(z, t, dz)
            sig = torch.sigmoid(z)
            curv = sig * (1 - sig)
            g_new = self.grad(theta, sig - y)
            gg_new = _dot(g_new, g_new)
            mix = ((gg_new - _dot(g_new, g)) / gg.clamp_min(1e-30)).clamp_min(0)
            g, gg, p = g_new, gg_new, mix * p - g_new
            p = torch.where(_dot(g, p) < 0, p, -g)  # not downhill: restart along the gradient
        if active.any():
            warnings.warn(
                f"probe: not converged to tol={tol} in {max_iter} iterations at layers "
                f"{active.flatten().nonzero().flatten().tolist()}; raise max_iter or tol",
                stacklevel=2,
            )
        return theta[:, 0, :-1], _dot(self.offset, theta)[:, 0, 0]  # b = beta / scale - mean·w undoes the centring


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise dot product over the last axis, kept as a size-1 axis."""
    return (a * b).sum(-1, keepdim=True)
