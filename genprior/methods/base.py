"""The one contract every restoration method follows.

A method is configured once and called many times::

    method = BRGM(G, steps=300)                      # or VariationalBRGM, LatentMCMC, MGANPrior, BIGPrior
    result = method(y, physics, seed=0, callback=print)   # -> Reconstruction

* ``y``: the observation (N, C', H', W') on the forward model's grid, float in about [0, 1];
* ``physics``: a `genprior.physics.Physics` whose ``out_shape`` maps the generator's images (N, C, R, R) to
  y's shape;
* ``seed``: every random choice of the call comes from one local ``torch.Generator`` seeded with it (the
  global RNG is never touched), so the same call gives the same result;
* ``callback(step)``: called once per optimisation or sampling step with a `Step` record.

`Method.__call__` runs the shared prologue (`check_observation`: shape, finiteness, device), times the call,
and stamps the result's config (method name, its settings, generator and physics configs, seed) and history
(``loss`` and ``terms`` per stage, ``seconds``). ``Reconstruction.render(G)`` re-renders a result exactly from its
saved state, through `renderer_for` (each method registers how it renders).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any, Callable, ClassVar

import torch

from ..errors import GenpriorError
from ..generators import Generator
from ..physics import Physics
from ..result import Reconstruction


class DivergenceError(GenpriorError):
    """An optimisation produced NaN or infinite values."""


@dataclass(frozen=True)
class Step:
    """One step of a method, as every method reports it to its callback.

    stage: which part of the method ("map", "tune", "ilo", "vi", "mcmc", "inversion"); step: 0-based within
    the stage; loss: (N,) the per-image objective; terms: unweighted parts of it, each (N,).
    """

    stage: str
    step: int
    loss: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)


Callback = Callable[[Step], None]


class History:
    """Per-stage curves of the mean loss and of each term: ``{"loss": {stage: [...]}, "terms": {stage: {t: [...]}}}``."""

    def __init__(self, callback: Callback | None = None) -> None:
        self.callback = callback
        self.loss: dict[str, list[float]] = {}
        self.terms: dict[str, dict[str, list[float]]] = {}

    def record(self, stage: str, step: int, loss: torch.Tensor, terms: dict[str, torch.Tensor] | None = None) -> None:
        """Store one step and pass it to the callback; raise `DivergenceError` on a non-finite loss."""
        loss = loss.detach()
        value = float(loss.mean())
        if not math.isfinite(value):
            raise DivergenceError(f"the {stage} stage diverged at step {step} (loss {value}); lower its learning "
                                  "rate or check the observation and the noise level")
        terms = {k: v.detach() for k, v in (terms or {}).items()}
        self.loss.setdefault(stage, []).append(value)
        for k, v in terms.items():
            self.terms.setdefault(stage, {}).setdefault(k, []).append(float(v.float().mean()))
        if self.callback is not None:
            self.callback(Step(stage, step, loss, terms))

    def as_dict(self) -> dict[str, Any]:
        return {"loss": self.loss, "terms": self.terms}


def check_counts(cfg: Any, least: dict[str, int]) -> None:
    """Raise ValueError unless each named setting of ``cfg`` is an integer (not a bool) >= its least value."""
    for name, bound in least.items():
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < bound:
            raise ValueError(f"{name} must be an integer >= {bound}, got {value!r}")


def check_observation(y: Any, physics: Any, G: Generator) -> torch.Tensor:
    """y as float32 on G's device, after checking it fits ``physics`` applied to G's images; else ValueError.

    Checks: physics is a `Physics`; y is a finite floating (N, C', H', W') tensor; its shape equals
    ``physics.out_shape((N, G.channels, R, R))``.
    """
    if not isinstance(physics, Physics):
        raise ValueError(f"physics must be a genprior.physics.Physics, got {type(physics).__name__}")
    if not isinstance(y, torch.Tensor) or y.ndim != 4:
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"the observation must be a tensor (N, C, H, W), got {shape}")
    if not y.is_floating_point():
        raise ValueError(f"the observation must be a float tensor in [0, 1], got dtype {y.dtype}")
    if not bool(torch.isfinite(y).all()):
        raise ValueError("the observation contains NaN or infinite values")
    expected = physics.out_shape((y.shape[0], G.channels, G.resolution, G.resolution))
    if physics.fit_parameters() and bool((y.flatten(1).std(1) < 1e-3).any()):
        import warnings

        warnings.warn(f"{physics.name}: the observation is flat, so its unknown kernel cannot be estimated; the "
                      "kernel stays at its starting guess", stacklevel=3)
    if tuple(y.shape) != tuple(expected):
        raise ValueError(f"the observation has shape {tuple(y.shape)}, but {physics.name} on this generator's "
                         f"{G.channels}x{G.resolution}x{G.resolution} images gives {tuple(expected)}")
    return y.to(G.device).float()


def physics_config(physics: Physics) -> dict[str, Any]:
    return physics.config()


_RENDERERS: dict[str, Callable[[Generator, Reconstruction], torch.Tensor]] = {}


def register_renderer(method: str, fn: Callable[[Generator, Reconstruction], torch.Tensor]) -> None:
    """Make ``Reconstruction.render`` work for results whose ``config["method"]`` is ``method``."""
    _RENDERERS[method] = fn


def has_renderer(method: str) -> bool:
    return method in _RENDERERS


def renderer_for(method: str) -> Callable[[Generator, Reconstruction], torch.Tensor]:
    if method not in _RENDERERS:
        raise ValueError(f"results of method {method!r} cannot be re-rendered (known: {sorted(_RENDERERS)})")
    return _RENDERERS[method]


class Method:
    """Base class: subclasses set ``name``, build ``self.cfg`` (a dataclass) and implement `run`."""

    name: ClassVar[str] = ""
    accepts_start: ClassVar[bool] = False  # whether `run` can continue from a MAP result
    cfg: Any

    def __init__(self, G: Generator, *, progress: bool = False) -> None:
        if not isinstance(G, Generator):
            raise ValueError(f"G must be a genprior Generator, got {type(G).__name__}")
        self.G = G
        self.progress = progress

    def settings(self) -> dict[str, Any]:
        """The method's settings, JSON-able (saved with every result)."""
        return asdict(self.cfg) if is_dataclass(self.cfg) else dict(self.cfg)

    def total_steps(self) -> int:
        """How many times one call invokes the callback."""
        raise NotImplementedError

    def run(self, y: torch.Tensor, physics: Physics, gen: torch.Generator, history: History,
            start: Reconstruction | None = None) -> Reconstruction:
        """The method itself on a checked observation; ``gen`` is the call's only source of randomness;
        ``start``: an earlier MAP result of the same observation to continue from (posterior methods)."""
        raise NotImplementedError

    def __call__(self, y: torch.Tensor, physics: Physics, *, seed: int = 0, callback: Callback | None = None,
                 start: Reconstruction | None = None) -> Reconstruction:
        """Restore y; ``start`` (VI, MCMC): a `BRGM` result of the same y and physics whose latent, noise maps and
        range extension are taken instead of fitting them again."""
        y = check_observation(y, physics, self.G)
        physics = physics.to(self.G.device)
        gen = torch.Generator(device=self.G.device).manual_seed(int(seed))
        history = History(callback)
        t0 = time.perf_counter()
        if start is not None and not self.accepts_start:
            raise ValueError(f"{self.name} does not continue from an earlier result")
        result = self.run(y, physics, gen, history, start)
        result.seed = int(seed)
        result.config = {"method": self.name, **self.settings(), **result.config,
                         "generator": self.G.config, "physics": physics.config()}
        result.history = {**history.as_dict(), **result.history, "seconds": time.perf_counter() - t0}
        if result.observation is None:
            result.observation = y.cpu()
        return result
