"""Seeded samples from any generator."""

from __future__ import annotations

from typing import Sequence

import torch

from ..errors import GenpriorError
from .base import Generator


@torch.no_grad()
def sample_images(G: Generator, seeds: Sequence[int], *, truncation_psi: float = 1.0, noise_mode: str = "const",
                  class_idx: int | None = None, batch: int = 16) -> torch.Tensor:
    """(len(seeds), C, R, R) in [0, 1]: one image per seed, z drawn as NVlabs' generate.py does.

    Conditional generators need ``class_idx`` (a label in [0, c_dim)).
    """
    c_dim = getattr(G, "c_dim", 0)
    if c_dim and class_idx is None:
        raise GenpriorError(f"this generator is conditional on {c_dim} classes: give a class index")
    if class_idx is not None and not 0 <= class_idx < max(c_dim, 0):
        raise GenpriorError(f"class index {class_idx} out of range: the generator has {c_dim} classes")
    out = []
    for i in range(0, len(seeds), batch):
        z = G.make_z(seeds[i : i + batch])
        c = None
        if c_dim:
            c = torch.zeros(len(z), c_dim, device=z.device)
            c[:, class_idx] = 1
        out.append(G.render(G.latent_from_z(z, truncation_psi, c), noise_mode=noise_mode))
    return torch.cat(out)
