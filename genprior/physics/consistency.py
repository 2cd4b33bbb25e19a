"""Data consistency: tie an image estimate to the observation it must explain.

A generator's image x_g rarely reproduces the observation exactly (real images are not in its range). Treat
the truth as ``x = x_g + r`` with a residual ``r ~ N(0, τ² Σ)`` and ``y = A x + n``, ``n ~ N(0, σ² I)``, where
``Σ = D K D``: K a Gaussian smoothing covariance of width ``smoothness`` pixels with unit diagonal (``K = I``
for 0) and D the residual's per-pixel std shape (`structure_scale`: large on x_g's edges and texture, small on
flat regions, mean square 1, so τ is the residual's rms; D = I for ``smoothness`` 0). The posterior mean of x is

    x_g + τ² Σ Aᵀ (τ² A Σ Aᵀ + σ² I)⁻¹ (y - A x_g)                                    (`consistent`)

* σ → 0 with smoothness 0 is the hard projection ``x_g + A⁺ (y - A x_g)`` (box SR: block means corrected;
  colorization: the luma replaced);
* σ > 0 is its noise-aware soft version: residuals the noise can explain are not copied into the image;
* K smooth spreads each correction over ``smoothness`` pixels (kriging of the residual), which avoids block
  and seam artefacts; the default for the restoration methods.

τ² (the generator's misfit) is estimated from the residual itself when not given:
``τ² = max(‖y - A x_g‖² - σ² m, 0) / tr(A Σ Aᵀ)`` (m values observed; the trace by Hutchinson probes).
In-painting keeps the observed pixels exactly and fills the hole with the noise-aware continuation of the
residual on the observed pixels (the σ² term keeps the solve well posed, so the border has no seam); A is
applied through autograd (``Aᵀ`` as a vector-Jacobian product, an affine A by its linear part), so any
linear `Physics` works, solved by conjugate gradients on the observation grid.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .base import Physics
from .denoising import Denoising, classical_denoise
from .inpainting import Inpainting
from .superres import SuperResolution

SIGMA_FLOOR = 1e-3  # the smallest noise std the solver uses (keeps the system well conditioned when σ = 0)


def data_estimate(y: torch.Tensor, physics: Physics) -> torch.Tensor:
    """The strongest simple image-sized estimate from the observation alone, in [0, 1]: bicubic enlargement for
    super-resolution, non-local means at the known σ for denoising, the pseudo-inverse otherwise (mean fill for
    in-painting, grey for colorization)."""
    if isinstance(physics, SuperResolution):
        return F.interpolate(y, scale_factor=physics.factor, mode="bicubic", align_corners=False).clamp(0, 1)
    if isinstance(physics, Denoising):
        return classical_denoise(y, float(physics.sigma))
    return physics.A_dagger(y).clamp(0, 1)


def blend(x: torch.Tensor, y: torch.Tensor, physics: Physics, weight: float) -> torch.Tensor:
    """``weight·x + (1 - weight)·data_estimate(y)``: how much of the generator's image to keep (1: all of it)."""
    if weight >= 1:
        return x
    return weight * x + (1 - weight) * data_estimate(y, physics)


def gaussian_smooth(x: torch.Tensor, width: float) -> torch.Tensor:
    """Separable Gaussian blur with std ``width`` px and zero padding (a symmetric operator); 0 is identity."""
    if width <= 0:
        return x
    r = max(1, int(math.ceil(3 * width)))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / width) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), padding=(0, r), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), padding=(r, 0), groups=c)


def _unit_scale(width: float) -> float:
    """1 / diag(B B) away from the borders, so that K = B B / diag has unit variance per pixel."""
    if width <= 0:
        return 1.0
    r = max(1, int(math.ceil(3 * width)))
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / width) ** 2)
    k = k / k.sum()
    return float(1 / k.square().sum() ** 2)


def structure_scale(x: torch.Tensor, width: float = 1.5, floor: float = 0.3) -> torch.Tensor:
    """Where a generator's misfit lives: (N, 1, H, W) per-pixel std shape of the residual, ``floor + g`` with g
    x's local gradient magnitude (smoothed over ``width`` px, mean 1 per image), rescaled to mean square 1.

    Real images differ from a generator's most on edges and texture; a flat region is reproduced well. Shaping
    the residual's std this way puts the corrections and the posterior's spread where the errors are.
    """
    gx = F.pad((x[..., :, 1:] - x[..., :, :-1]).abs(), (0, 1))
    gy = F.pad((x[..., 1:, :] - x[..., :-1, :]).abs(), (0, 0, 0, 1))
    g = gaussian_smooth((gx + gy).mean(1, keepdim=True), width)
    a = floor + g / g.flatten(1).mean(1).clamp_min(1e-8).view(-1, 1, 1, 1)
    return a / a.square().flatten(1).mean(1).sqrt().view(-1, 1, 1, 1)


def _covariance(x: torch.Tensor, width: float, scale: torch.Tensor | None = None) -> torch.Tensor:
    """Σ x with Σ = D K D, K = B B / diag (B the Gaussian blur; symmetric positive semi-definite, unit diagonal;
    K = I for width 0) and D = diag(scale) (`structure_scale`; None: D = I)."""
    if scale is not None:
        x = x * scale
    x = gaussian_smooth(gaussian_smooth(x, width), width) * _unit_scale(width)
    return x if scale is None else x * scale


def _residual_scale(x: torch.Tensor, smoothness: float) -> torch.Tensor | None:
    """The residual's std shape for an estimate x: `structure_scale` in the smooth (kriging) regime, else None."""
    return structure_scale(x) if smoothness > 0 else None


def _operators(physics: Physics, shape: torch.Size, smoothness: float, scale: torch.Tensor | None,
               like: torch.Tensor):
    """(v ↦ Σ Aᵀ v, v ↦ A Σ Aᵀ v) for v on the observation grid and images of ``shape``; A by its linear part
    (an in-painting fill is affine: its offset A 0 is computed once here, not at every solver step)."""
    offset = physics.A(torch.zeros(shape, device=like.device, dtype=like.dtype))

    def spread(v: torch.Tensor) -> torch.Tensor:
        return _covariance(_adjoint(physics, v, shape), smoothness, scale)

    def gram(v: torch.Tensor) -> torch.Tensor:
        return physics.A(spread(v)) - offset

    return spread, gram


def _observed_values(physics: Physics, y: torch.Tensor) -> torch.Tensor:
    """(N,) how many values of y carry a measurement (an in-painting hole does not)."""
    if isinstance(physics, Inpainting):
        return (physics._mask_like(y) > 0).to(y.dtype).expand_as(y).flatten(1).sum(1)
    return torch.full((y.shape[0],), float(y[0].numel()), device=y.device, dtype=y.dtype)


def _adjoint(physics: Physics, r: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Aᵀ r through autograd (A is linear)."""
    with torch.enable_grad():
        x = torch.zeros(shape, device=r.device, dtype=r.dtype, requires_grad=True)
        (g,) = torch.autograd.grad(physics.A(x), x, r)
    return g


def _cg(op, b: torch.Tensor, iters: int, tol: float = 1e-10) -> torch.Tensor:
    """Solve op(u) = b per image (SPD op) by conjugate gradients; b (N, ...)."""
    dims = tuple(range(1, b.ndim))
    shape = (-1,) + (1,) * (b.ndim - 1)
    u = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rs = (r * r).sum(dims)
    for _ in range(iters):
        ap = op(p)
        alpha = rs / (p * ap).sum(dims).clamp_min(1e-30)
        u = u + alpha.view(shape) * p
        r = r - alpha.view(shape) * ap
        rs_new = (r * r).sum(dims)
        if bool((rs_new <= tol * (b * b).sum(dims).clamp_min(1e-30)).all()):
            break
        p = r + (rs_new / rs.clamp_min(1e-30)).view(shape) * p
        rs = rs_new
    return u


def misfit_variance(residual: torch.Tensor, physics: Physics, shape: torch.Size, sigma: float, smoothness: float,
                    probes: int = 4, estimate: torch.Tensor | None = None) -> torch.Tensor:
    """τ² per image (N,) from the residual y - A x_g: the part of its energy the noise does not explain
    (estimate: x_g, which shapes the residual's std, `structure_scale`; None: uniform)."""
    scale = None if estimate is None else _residual_scale(estimate, smoothness)
    return _misfit_variance(residual, physics, shape, sigma, smoothness, scale, probes)


def _misfit_variance(residual: torch.Tensor, physics: Physics, shape: torch.Size, sigma: float, smoothness: float,
                     scale: torch.Tensor | None, probes: int = 4) -> torch.Tensor:
    """`misfit_variance` for a given std shape ``scale``."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    _, gram = _operators(physics, shape, smoothness, scale, residual)
    trace = torch.zeros(residual.shape[0], device=residual.device)
    for _ in range(probes):  # Hutchinson: E[zᵀ A Σ Aᵀ z] = tr(A Σ Aᵀ), z Rademacher
        z = (torch.randint(0, 2, residual.shape, generator=gen).float() * 2 - 1).to(residual.device)
        trace = trace + (z * gram(z)).flatten(1).sum(1)
    trace = (trace / probes).clamp_min(1e-12)
    excess = (residual.flatten(1).square().sum(1) - sigma ** 2 * _observed_values(physics, residual)).clamp_min(0)
    return excess / trace


def _solve(x: torch.Tensor, d: torch.Tensor, physics: Physics, t: torch.Tensor, sigma: float, smoothness: float,
           scale: torch.Tensor | None, iters: int) -> torch.Tensor:
    """The posterior-mean correction ``τ² Σ Aᵀ (τ² A Σ Aᵀ + σ² I)⁻¹ d`` for a residual d on y's grid."""
    spread, gram = _operators(physics, x.shape, smoothness, scale, x)
    u = _cg(lambda v: t * gram(v) + sigma ** 2 * v, d, iters)
    return t * spread(u)


def _keep_observed(x: torch.Tensor, y: torch.Tensor, physics: Physics) -> torch.Tensor:
    """In-painting: the observed pixels are y's exactly; other physics: x unchanged."""
    if not isinstance(physics, Inpainting):
        return x
    m = (physics._mask_like(x) > 0).to(x.dtype).expand_as(x)
    return m * physics.A_dagger(y) + (1 - m) * x


@torch.no_grad()
def consistent(x: torch.Tensor, y: torch.Tensor, physics: Physics, *, sigma: float | None = None,
               smoothness: float = 1.0, tau2: torch.Tensor | None = None, iters: int = 300) -> torch.Tensor:
    """The data-consistent version of x (N, C, R, R) for observation y: the posterior mean above.

    sigma: the observation's noise std (default: the physics'); smoothness: width of K in pixels (0: white,
    the hard / soft projection); tau2: the misfit variance per image (N,), estimated when None.
    In-painting: observed pixels are y exactly, the hole gets the noise-aware continuation of the residual.
    """
    sigma = max(float(physics.sigma if sigma is None else sigma), SIGMA_FLOOR)
    residual = y - physics.A(x)
    scale = _residual_scale(x, smoothness)
    if tau2 is None:
        tau2 = _misfit_variance(residual, physics, x.shape, sigma, smoothness, scale)
    if not bool((tau2 > 0).any()):
        return _keep_observed(x, y, physics)
    t = tau2.view(-1, *([1] * (x.ndim - 1)))
    return _keep_observed(x + _solve(x, residual, physics, t, sigma, smoothness, scale, iters), y, physics)


def _smooth_noise(shape: torch.Size, smoothness: float, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """A draw from N(0, K): the blur B applied to white noise, rescaled (K = B B / diag, B symmetric)."""
    eps = torch.randn(shape, generator=gen, device=device)
    return gaussian_smooth(eps, smoothness) * _unit_scale(smoothness) ** 0.5


@torch.no_grad()
def posterior_sample(x: torch.Tensor, y: torch.Tensor, physics: Physics, *, tau2: torch.Tensor,
                     smoothness: float = 1.0, gen: torch.Generator, sigma: float | None = None,
                     iters: int = 300) -> torch.Tensor:
    """One draw of the truth ``x + r`` with r from its posterior given the observation (Matheron's rule).

    r_prior ~ N(0, τ² Σ), n ~ N(0, σ² I):
    ``r = r_prior + τ² Σ Aᵀ (τ² A Σ Aᵀ + σ² I)⁻¹ (y - A x - A r_prior - n)``.
    Where the data are silent (an in-painting hole, detail below a super-resolution factor) the draw varies
    with the prior's τ; where they speak it agrees with them up to the noise (an observed pixel of in-painting
    varies by about σ around y). x (N, C, R, R); tau2 (N,) the misfit variance; gen the only randomness.
    """
    t = tau2.view(-1, *([1] * (x.ndim - 1))).to(x)
    scale = _residual_scale(x, smoothness)
    r0 = t.sqrt() * _smooth_noise(x.shape, smoothness, gen, x.device)
    if scale is not None:
        r0 = r0 * scale
    sigma = max(float(physics.sigma if sigma is None else sigma), SIGMA_FLOOR)
    noise = sigma * torch.randn(y.shape, generator=gen, device=y.device)
    d = y - physics.A(x + r0) - noise
    return x + r0 + _solve(x, d, physics, t, sigma, smoothness, scale, iters)
