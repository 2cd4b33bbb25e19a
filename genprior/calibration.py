"""Conformal calibration of per-pixel intervals: a coverage guarantee that does not trust the posterior.

A posterior gives each pixel a centre m and a spread u (its std, or its sample quantiles). The interval
``[m - λ·u, m + λ·u]`` (quantiles: ``[m - λ (m - q_lo), m + λ (q_hi - m)]``) leaves a share L_i(λ) of image i's
pixels outside; L is non-increasing in λ. On clean calibration images degraded by the task's forward model and
restored by the method, `calibrate` picks

* ``bound="rcps"`` (default; Bates et al. 2021, risk-controlling prediction sets): the smallest λ whose upper
  confidence bound on the risk E[L(λ)] stays below α for every larger λ; the bound is Waudby-Smith & Ramdas'
  betting bound at level δ, so with probability >= 1 - δ over the calibration set the risk on new images of
  the same kind is <= α;
* ``bound="crc"`` (Angelopoulos et al. 2022, conformal risk control): the smallest λ with
  ``n/(n+1)·R̂(λ) + 1/(n+1) <= α``, so that E[L(λ)] <= α (a guarantee in expectation, tighter).

A `Calibration` records α, δ, λ, the spread's kind, the bound, the generator (sha256 of its weights), the task
and its options, the method and its settings and the number of images; `Calibration.check` refuses a use with
another generator, task, factor, kernel, mask, noise level or method.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from . import __version__
from .errors import GenpriorError
from .io.atomic import atomic_path

KINDS = ("std", "quantile")
BOUNDS = ("rcps", "crc")
LAMBDA_GRID = np.concatenate([np.linspace(0.0, 4.0, 401), np.linspace(4.05, 20.0, 320)])
CHECKED = ("task", "factor", "kernel", "mask", "sigma")  # the task options a calibration is tied to


def generator_hash(G: torch.nn.Module) -> str:
    """sha256 of a generator's weights and buffers (sorted names, float32 bytes): identifies the prior."""
    h = hashlib.sha256()
    for name, t in sorted(G.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def interval(mean: torch.Tensor, lam: float, kind: str, *, std: torch.Tensor | None = None,
             samples: torch.Tensor | None = None, level: float = 0.9) -> tuple[torch.Tensor, torch.Tensor]:
    """(lower, upper) (N, C, H, W) of the scaled interval; quantile kind uses the samples' central ``level`` range."""
    if kind == "std":
        if std is None:
            raise GenpriorError("a std interval needs the result's per-pixel std (a method with samples: vi, mcmc)")
        return mean - lam * std, mean + lam * std
    if kind == "quantile":
        if samples is None:
            raise GenpriorError("a quantile interval needs the result's samples (a method with samples: vi, mcmc)")
        lo = torch.quantile(samples, (1 - level) / 2, dim=1)
        hi = torch.quantile(samples, 1 - (1 - level) / 2, dim=1)
        return mean - lam * (mean - lo).clamp_min(0), mean + lam * (hi - mean).clamp_min(0)
    raise GenpriorError(f"unknown interval kind {kind!r}; choose from {', '.join(KINDS)}")


def miscoverage(lower: torch.Tensor, upper: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Share of pixels (and channels) outside [lower, upper], per image -> (N,)."""
    outside = (truth < lower) | (truth > upper)
    return outside.float().flatten(1).mean(1)


def wsr_upper_bound(losses: Sequence[float], delta: float, tol: float = 1e-6) -> float:
    """An upper confidence bound at level δ on the mean of losses in [0, 1] (Waudby-Smith & Ramdas' betting).

    For a hypothesised mean m the wealth ``Π_t (1 - ν_t (x_t - m))`` (bets ν_t chosen from the losses before t)
    is a non-negative supermartingale when the true mean is >= m, so reaching 1/δ rules such m out; the bound is
    the smallest m not ruled out, found by bisection.
    """
    x = np.clip(np.asarray(losses, dtype=np.float64), 0.0, 1.0)
    n = len(x)
    if n == 0:
        return 1.0
    t = np.arange(1, n + 1)
    mu = (np.cumsum(x) + 0.5) / (t + 1)
    var = (np.cumsum((x - mu) ** 2) + 0.25) / (t + 1)
    var_before = np.concatenate([[0.25], var[:-1]])  # predictable: only losses before t
    nu = np.minimum(np.sqrt(2 * math.log(1 / delta) / (n * var_before)), 1.0)

    def log_wealth(m: float) -> float:
        bets = np.minimum(nu, 0.999 / max(1 - m, 1e-12))
        return float(np.max(np.cumsum(np.log1p(-bets * (x - m)))))

    target = math.log(1 / delta)
    lo, hi = float(x.mean()), 1.0
    if log_wealth(hi) < target:
        return 1.0
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if log_wealth(mid) >= target:
            hi = mid
        else:
            lo = mid
    return hi


def choose_lambda(loss_at: Callable[[float], np.ndarray], alpha: float, delta: float, bound: str,
                  grid: np.ndarray = LAMBDA_GRID) -> tuple[float, float, float]:
    """(λ, empirical risk at λ, its bound) scanning the grid from large to small λ; see the module doc."""
    if bound not in BOUNDS:
        raise GenpriorError(f"unknown bound {bound!r}; choose from {', '.join(BOUNDS)}")
    chosen = None
    for lam in grid[::-1]:
        losses = loss_at(float(lam))
        n = len(losses)
        risk = float(np.mean(losses))
        ucb = wsr_upper_bound(losses, delta) if bound == "rcps" else (n * risk + 1) / (n + 1)
        if ucb > alpha:
            break
        chosen = (float(lam), risk, ucb)
    if chosen is None:
        losses = loss_at(float(grid[-1]))
        raise GenpriorError(f"no interval scale up to {grid[-1]:g} controls the miscoverage at alpha {alpha} with "
                            f"{len(losses)} calibration images (risk at the largest scale {np.mean(losses):.3f}); "
                            "use more calibration images or a larger alpha/delta")
    return chosen


@dataclass
class Calibration:
    """A calibrated interval scale and everything it is valid for (see the module doc)."""

    alpha: float
    delta: float
    lam: float
    kind: str
    bound: str
    generator_sha256: str
    generator: str
    task_options: dict[str, Any]
    method: str
    method_settings: dict[str, Any]
    n_images: int
    risk: float  # the calibration images' mean miscoverage at λ
    risk_bound: float  # its upper bound (rcps) or the conformal-risk-control statistic (crc)
    raw_coverage: float  # the uncalibrated interval's coverage (λ = 1) on the calibration images
    version: str = __version__
    extra: dict[str, Any] = field(default_factory=dict)

    def guarantee(self) -> str:
        if self.bound == "rcps":
            return (f"with probability >= {1 - self.delta:g} over the {self.n_images} calibration images, the "
                    f"expected share of pixels outside [lower, upper] is <= {self.alpha:g}")
        return f"the expected share of pixels outside [lower, upper] is <= {self.alpha:g} ({self.n_images} images)"

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        with atomic_path(Path(path), overwrite=overwrite) as tmp:
            tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Calibration":
        try:
            data = json.loads(Path(path).read_text())
            return cls(**data)
        except FileNotFoundError:
            raise GenpriorError(f"{path}: no such calibration file") from None
        except (json.JSONDecodeError, TypeError) as exc:
            raise GenpriorError(f"{path}: not a genprior calibration file ({exc})") from None

    def check(self, G_sha256: str, task_options: dict[str, Any], method: str) -> None:
        """GenpriorError naming the first mismatch between this calibration and a planned use."""
        if G_sha256 != self.generator_sha256:
            raise GenpriorError(f"this calibration was made for another generator ({self.generator}, sha256 "
                                f"{self.generator_sha256[:12]}...), not this one ({G_sha256[:12]}...)")
        if method != self.method:
            raise GenpriorError(f"this calibration was made for --method {self.method}, not {method}")
        for key in CHECKED:
            a, b = self.task_options.get(key), task_options.get(key)
            if key in ("factor", "kernel") and task_options.get("task") != "superres":
                continue
            if key == "mask" and task_options.get("task") != "inpaint":
                continue
            if a != b:
                raise GenpriorError(f"this calibration was made for {key} {a!r}, not {b!r}")


def task_key(opts: Any) -> dict[str, Any]:
    """The task options a calibration is tied to, from `genprior.restore.RestoreOptions`."""
    kernel = opts.kernel or "box"  # calibration degrades clean images: box unless a kernel is named
    return {"task": opts.task, "factor": opts.factor, "kernel": kernel, "mask": opts.mask, "sigma": opts.sigma}


def calibrate(files: Sequence[str | os.PathLike], G: Any, opts: Any, *, generator: str, alpha: float = 0.1,
              delta: float = 0.1, kind: str = "std", bound: str = "rcps", batch: int = 8,
              log: Callable[[str], None] | None = None) -> Calibration:
    """Degrade each clean image with the task's forward model (seeded per image), restore it with ``opts``'
    method, and choose λ; see the module doc. ``opts``: a `RestoreOptions` with a sampling method."""
    from .restore import restore

    if not 0 < alpha < 1 or not 0 < delta < 1:
        raise GenpriorError(f"alpha and delta must be in (0, 1), got {alpha}, {delta}")
    if kind not in KINDS:
        raise GenpriorError(f"unknown interval kind {kind!r}; choose from {', '.join(KINDS)}")
    if opts.method not in ("vi", "mcmc"):
        raise GenpriorError(f"calibration needs a method with samples (vi or mcmc), not {opts.method}")
    if len(files) < 2:
        raise GenpriorError(f"calibration needs at least 2 images, got {len(files)}")
    results = []
    for i, path in enumerate(files):
        from dataclasses import replace

        res = restore(path, G, replace(opts, simulate=True, seed=opts.seed + i))
        results.append((res.mean, res.std, res.samples, res.images["truth"]))
        if log:
            log(f"calibration image {i + 1}/{len(files)}: {Path(path).name}")

    def loss_at(lam: float) -> np.ndarray:
        out = []
        for mean, std, samples, truth in results:
            lo, hi = interval(mean, lam, kind, std=std, samples=samples)
            out.append(float(miscoverage(lo, hi, truth)[0]))
        return np.array(out)

    lam, risk, ucb = choose_lambda(loss_at, alpha, delta, bound)
    settings = dict(res.config)
    method_settings = {k: v for k, v in settings.items() if k not in ("generator", "physics", "input", "notes")}
    return Calibration(alpha=alpha, delta=delta, lam=lam, kind=kind, bound=bound, generator_sha256=generator_hash(G),
                       generator=generator, task_options=task_key(opts), method=opts.method,
                       method_settings=json.loads(json.dumps(method_settings, default=str)), n_images=len(files),
                       risk=risk, risk_bound=ucb, raw_coverage=1 - float(np.mean(loss_at(1.0))))
