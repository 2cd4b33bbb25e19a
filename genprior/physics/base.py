"""The forward-model contract: ``y = A(x) + n``, ``n ~ N(0, sigma^2 I)``, with a pseudo-inverse and a config.

Every operator is an ``nn.Module`` subclass of `Physics`:

* ``A(x)``: the noiseless operator, differentiable, images N,C,H,W (float, usually in [0, 1]);
* ``forward(x, *, seed=None, generator=None)``: ``A(x)`` plus Gaussian noise of std ``sigma``; with ``seed`` the
  noise comes from a fresh ``torch.Generator`` seeded with it, so the same seed gives the same observation;
* ``A_dagger(y)``: a pseudo-inverse, an image-sized estimate of x (each operator documents which one);
* ``out_shape(in_shape)``: the shape of ``A(x)`` for an input of that shape (validates it);
* ``name`` and ``config()``: a JSON-able dict; ``physics_from_config(cfg)`` rebuilds the operator.

Composition: ``p2 @ p1`` (read as matrices / functions: apply ``p1`` first, then ``p2``), same as
``Composed([p1, p2])``. Only ``@`` is defined; ``*`` is not, so there is one reading of the order.

Bad input raises ``ValueError`` with the problem named: NaN or inf values, a non-floating or non-4-D tensor,
a wrong channel count or image size (expected versus got).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn

Shape = tuple[int, int, int, int]

_REGISTRY: dict[str, type["Physics"]] = {}


def register(cls: type["Physics"]) -> type["Physics"]:
    """Class decorator: make ``cls`` rebuildable by `physics_from_config` under ``cls.name``."""
    if not cls.name or cls.name in _REGISTRY:
        raise RuntimeError(f"physics name {cls.name!r} is empty or already registered")
    _REGISTRY[cls.name] = cls
    return cls


LEGACY_TASK_NAMES = {"inpainting": "inpaint", "denoising": "denoise", "colorization": "colorize"}
"""Names older result folders and fusion files use for the tasks; read as today's (one vocabulary: the CLI's)."""


def physics_from_config(cfg: dict[str, Any]) -> "Physics":
    """Rebuild an operator from ``op.config()`` (the inverse of `Physics.config`)."""
    if not isinstance(cfg, dict) or "name" not in cfg:
        raise ValueError(f"a physics config must be a dict with a 'name' key, got {cfg!r:.200}")
    name = LEGACY_TASK_NAMES.get(cfg["name"], cfg["name"])
    if name not in _REGISTRY:
        raise ValueError(f"unknown physics {name!r}; known: {sorted(_REGISTRY)}")
    kwargs = {k: v for k, v in cfg.items() if k != "name"}
    return _REGISTRY[name].from_config(kwargs)


def check_sigma(sigma: float) -> float:
    """The noise std as a float, >= 0 and finite, or a ValueError."""
    try:
        value = float(sigma)
    except (TypeError, ValueError):
        raise ValueError(f"sigma must be a number, got {sigma!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"sigma must be finite and >= 0, got {sigma!r}")
    return value


def check_image(x: Any, what: str = "input") -> torch.Tensor:
    """Check ``x`` is a finite floating N,C,H,W tensor; return it unchanged, else raise ValueError."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{what} must be a torch.Tensor of shape N,C,H,W, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{what} must have 4 dims N,C,H,W, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{what} must be a floating tensor (float32 in [0, 1]), got dtype {x.dtype}")
    if x.numel() == 0:
        raise ValueError(f"{what} is empty (shape {tuple(x.shape)})")
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        n_nan = int(torch.isnan(x).sum())
        n_inf = int((~finite).sum()) - n_nan
        problems = [p for p, n in (("NaN", n_nan), ("inf", n_inf)) if n]
        raise ValueError(f"{what} contains {' and '.join(problems)} values ({n_nan} NaN, {n_inf} inf)")
    return x


def check_shape(shape: Sequence[int], what: str = "input") -> Shape:
    """A 4-tuple of positive ints N,C,H,W, or a ValueError."""
    shape = tuple(int(s) for s in shape)
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f"{what} shape must be N,C,H,W with positive sizes, got {shape}")
    return shape  # type: ignore[return-value]


class Physics(nn.Module):
    """Base class of forward models. Subclasses set ``name`` and define ``A``, ``A_dagger``, ``out_shape``,
    and ``config`` (adding their own arguments to ``super().config()``)."""

    name: str = ""

    def __init__(self, *, sigma: float = 0.0) -> None:
        super().__init__()
        self.sigma = check_sigma(sigma)

    # ------------------------------------------------------------------ operator
    def A(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802 (the usual name)
        """The noiseless operator."""
        raise NotImplementedError

    def A_dagger(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        """A pseudo-inverse: an image-sized estimate of x from y."""
        raise NotImplementedError

    def out_shape(self, in_shape: Sequence[int]) -> Shape:
        """Shape of ``A(x)`` for ``x`` of shape ``in_shape`` (raises ValueError if the operator rejects it)."""
        raise NotImplementedError

    def fit_parameters(self) -> list[torch.Tensor]:
        """Unknown parts of the operator a method may fit with the latent (e.g. an ``auto`` blur kernel)."""
        return []

    def check_input(self, x: Any) -> torch.Tensor:
        """Validate an image for ``A``: finite floating N,C,H,W that ``out_shape`` accepts."""
        check_image(x)
        self.out_shape(x.shape)
        return x

    # ------------------------------------------------------------------ noise
    @staticmethod
    def make_generator(seed: int | None, device: torch.device | str) -> torch.Generator | None:
        """A torch.Generator on ``device`` seeded with ``seed``; None when ``seed`` is None (global RNG)."""
        if seed is None:
            return None
        return torch.Generator(device=device).manual_seed(int(seed))

    def add_noise(self, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``y`` plus N(0, sigma^2) noise (``y`` itself when sigma is 0)."""
        if self.sigma == 0:
            return y
        noise = torch.randn(y.shape, generator=generator, device=y.device, dtype=y.dtype)
        return y + self.sigma * noise

    def forward(self, x: torch.Tensor, *, seed: int | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """A noisy observation ``A(x) + sigma * eps``; ``seed`` makes it reproducible (or pass a ``generator``)."""
        if generator is None:
            generator = self.make_generator(seed, x.device if isinstance(x, torch.Tensor) else "cpu")
        return self.add_noise(self.A(x), generator)

    # ------------------------------------------------------------------ config
    def config(self) -> dict[str, Any]:
        """JSON-able dict; ``physics_from_config(op.config())`` rebuilds the operator."""
        return {"name": self.name, "sigma": self.sigma}

    @classmethod
    def from_config(cls, kwargs: dict[str, Any]) -> "Physics":
        return cls(**kwargs)

    def extra_repr(self) -> str:
        cfg = {k: v for k, v in self.config().items() if k != "name" and not isinstance(v, (dict, list))}
        return ", ".join(f"{k}={v!r}" for k, v in cfg.items())

    # ------------------------------------------------------------------ composition
    def __matmul__(self, other: "Physics") -> "Composed":
        """``self @ other``: apply ``other`` first, then ``self``."""
        if not isinstance(other, Physics):
            return NotImplemented
        return Composed([other, self])


@register
class Composed(Physics):
    """Operators applied in order: ``Composed([p1, p2])(x) = p2(p1(x))`` (also written ``p2 @ p1``).

    * ``A`` chains the members' noiseless operators; ``A_dagger`` chains their pseudo-inverses in reverse.
    * ``forward`` runs each member's ``forward`` in turn with one shared random generator, so a member's noise
      passes through the members after it (as in a real sensor). For a plain ``y = A(x) + n`` give the noise
      to the last member, e.g. ``Denoising(0.05) @ SuperResolution(4)``.
    * ``sigma`` is the nominal noise level ``sqrt(sum sigma_i^2)``; it is the exact std of the noise on y when
      only the last member is noisy (or the members after the noisy one are masks / identities).
    """

    name = "composed"

    def __init__(self, ops: Iterable[Physics]) -> None:
        nn.Module.__init__(self)
        flat: list[Physics] = []
        for op in ops:
            if not isinstance(op, Physics):
                raise ValueError(f"Composed takes Physics operators, got {type(op).__name__}")
            flat.extend(op.ops if isinstance(op, Composed) else [op])
        if not flat:
            raise ValueError("Composed needs at least one operator")
        self.ops = nn.ModuleList(flat)

    @property
    def sigma(self) -> float:  # type: ignore[override]
        return math.sqrt(sum(op.sigma ** 2 for op in self.ops))

    def _chain(self, x: torch.Tensor, fn: Callable[[Physics, torch.Tensor], torch.Tensor],
               reverse: bool = False) -> torch.Tensor:
        ops = list(self.ops)
        for op in reversed(ops) if reverse else ops:
            x = fn(op, x)
        return x

    def A(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802
        return self._chain(x, lambda op, t: op.A(t))

    def A_dagger(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        return self._chain(y, lambda op, t: op.A_dagger(t), reverse=True)

    def forward(self, x: torch.Tensor, *, seed: int | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        if generator is None:
            generator = self.make_generator(seed, x.device if isinstance(x, torch.Tensor) else "cpu")
        return self._chain(x, lambda op, t: op.forward(t, generator=generator))

    def out_shape(self, in_shape: Sequence[int]) -> Shape:
        shape = check_shape(in_shape)
        for op in self.ops:
            shape = op.out_shape(shape)
        return shape

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "ops": [op.config() for op in self.ops]}

    @classmethod
    def from_config(cls, kwargs: dict[str, Any]) -> "Composed":
        if set(kwargs) != {"ops"} or not isinstance(kwargs["ops"], list):
            raise ValueError(f"a composed config needs exactly an 'ops' list, got keys {sorted(kwargs)}")
        return cls([physics_from_config(c) for c in kwargs["ops"]])

    def extra_repr(self) -> str:
        return ""
