"""The random inputs of every training step, drawn so that any split of a batch over processes sees the same.

A step's batch is cut into chunks of ``batch_gpu`` images (one forward pass each); process ``rank`` of
``world`` runs chunks ``rank * rounds ... rank * rounds + rounds - 1``. Every draw of a chunk (latents, noise
maps, real images, flips, augmentation) comes from a `torch.Generator` seeded by (run seed, step, phase,
chunk), so one process running all chunks and several processes running their share compute the same thing,
and a resumed run continues the same stream without saving any RNG state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Chunk", "ChunkSampler", "chunk_seed", "G_PHASE", "D_PHASE"]

G_PHASE, D_PHASE = 0, 1


def chunk_seed(seed: int, step: int, phase: int, chunk: int) -> int:
    """A 64-bit seed for one chunk of one phase of one step (NumPy's SeedSequence mixing)."""
    lo, hi = np.random.SeedSequence([seed, step, phase, chunk]).generate_state(2, dtype=np.uint32)
    return int(lo) | (int(hi) << 32)


@dataclass
class Chunk:
    """One forward pass's inputs: latents z (n, z_dim), G's noise maps (n, 1, r, r) by layer name, real images
    (n, C, R, R) in [-1, 1] (D phase only), and the generator that also draws the augmentation."""

    z: torch.Tensor
    noise: dict[str, torch.Tensor]
    real: torch.Tensor | None
    generator: torch.Generator


class ChunkSampler:
    """Draws `Chunk`s from uint8 ``images`` (N, C, R, R), already on ``device``."""

    def __init__(self, images: torch.Tensor, *, seed: int, z_dim: int, noise_shapes: dict[str, tuple[int, int]],
                 mirror: bool, device: torch.device, channels_last: bool = False) -> None:
        self.images, self.seed, self.z_dim, self.mirror = images, seed, z_dim, mirror
        self.noise_shapes, self.device, self.channels_last = noise_shapes, device, channels_last
        self.generator = torch.Generator(device=device)

    def draw(self, step: int, phase: int, chunk: int, n: int) -> Chunk:
        gen = self.generator
        gen.manual_seed(chunk_seed(self.seed, step, phase, chunk))
        dev = self.device
        z = torch.randn(n, self.z_dim, generator=gen, device=dev)
        noise = {name: torch.randn(n, 1, h, w, generator=gen, device=dev) for name, (h, w) in self.noise_shapes.items()}
        real = None
        if phase == D_PHASE:
            idx = torch.randint(self.images.shape[0], (n,), generator=gen, device=dev)
            real = self.images[idx].float() / 127.5 - 1
            if self.mirror:
                flip = torch.rand(n, generator=gen, device=dev) < 0.5
                real = torch.where(flip[:, None, None, None], real.flip(3), real)
            if self.channels_last:
                real = real.contiguous(memory_format=torch.channels_last)
        return Chunk(z=z, noise=noise, real=real, generator=gen)
