"""The one interface every generator family implements.

A generator maps a latent to an image. Families with a mapping network (StyleGAN2) render from W+ codes
``ws`` of shape (N, num_ws, w_dim); families without one (PGGAN, DCGAN) render from ``z`` of shape (N, z_dim).

Each family provides, under the names the official code uses:

* ``mapping(z, truncation_psi=1.0)`` -> ws (N, num_ws, w_dim), only where the family has a mapping;
* ``synthesis(latent, noise_mode="const")`` -> the network's native output, N,C,H,W, roughly [-1, 1].

The base class adds what is common: ``render`` (images in [0, 1]), seeded latents, and the config that
rebuilds the network, which the native checkpoint format stores next to the weights.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn


class Generator(nn.Module):
    """Base class: subclasses set the attributes below and define ``synthesis`` (and ``mapping``)."""

    family: str = ""  # registry name of the family, e.g. "stylegan2"
    z_dim: int
    w_dim: int | None = None  # None where there is no W space
    num_ws: int = 0  # number of W+ rows; 0 where there is no W space
    resolution: int
    channels: int

    def __init__(self) -> None:
        super().__init__()
        self.init_kwargs: dict[str, Any] = {}

    # ------------------------------------------------------------------ config
    @property
    def config(self) -> dict[str, Any]:
        """JSON-serialisable recipe: ``build_generator(G.config)`` rebuilds this network (without weights)."""
        return {"family": self.family, "kwargs": dict(self.init_kwargs)}

    @property
    def latent_space(self) -> str:
        """The space ``synthesis`` reads: ``"w+"`` (N, num_ws, w_dim) or ``"z"`` (N, z_dim)."""
        return "w+" if self.w_dim is not None else "z"

    @property
    def device(self) -> torch.device:
        for t in self.parameters():
            return t.device
        return torch.device("cpu")

    # ------------------------------------------------------------------ latents
    def make_z(self, seeds: Sequence[int]) -> torch.Tensor:
        """z (N, z_dim) float32 ~ N(0, I), one row per seed, drawn as NVlabs' generate.py draws them."""
        rows = [np.random.RandomState(int(s)).randn(self.z_dim) for s in seeds]
        return torch.from_numpy(np.stack(rows)).float().to(self.device)

    def latent_from_z(self, z: torch.Tensor, truncation_psi: float = 1.0, c: torch.Tensor | None = None) -> torch.Tensor:
        """The latent ``synthesis`` reads, made from z (N, z_dim) (and labels c (N, c_dim) if conditional).

        With a mapping network this is ``mapping(z, c, truncation_psi)``; without one, z scaled by psi
        (the simplest truncation in z space).
        """
        if self.w_dim is not None:
            return self.mapping(z, c, truncation_psi=truncation_psi)  # type: ignore[attr-defined]
        return z * truncation_psi

    # ------------------------------------------------------------------ noise inputs
    def noise_inputs(self) -> dict[str, torch.Tensor]:
        """The generator's per-layer noise inputs at their constant values: name -> (R, R) map.

        Families without noise inputs (PGGAN, DCGAN) return {}; a ``noise`` dict for `render` uses these names.
        """
        return {}

    # ------------------------------------------------------------------ images
    def render(self, latent: torch.Tensor, *, noise_mode: str = "const", clamp: bool = True,
               noise: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Images (N, C, H, W) in [0, 1] from a latent of ``latent_space``.

        ``clamp=False`` keeps the unclamped affine map of the native output, for losses that need gradients
        at the edges of the range. ``noise`` (StyleGAN2 only) maps layer names to noise maps.
        """
        kwargs = {"noise": noise} if noise else {}
        x = self.synthesis(latent, noise_mode=noise_mode, **kwargs)  # type: ignore[attr-defined]
        x = (x + 1) * 0.5
        return x.clamp(0, 1) if clamp else x

    def split(self, k: int):  # pragma: no cover - overridden where supported
        """(head, tail) with ``tail(head(latent)) == synthesis(latent)``; head's output is a feature map.

        StyleGAN2 splits at a block resolution and its tail reads W rows too: ``tail(head(ws), ws)``.
        """
        raise NotImplementedError(f"the {self.family} generator cannot be split at an intermediate layer")

    def extra_repr(self) -> str:
        return (
            f"family={self.family}, resolution={self.resolution}, channels={self.channels}, "
            f"z_dim={self.z_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}"
        )
