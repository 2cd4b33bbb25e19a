"""What the benchmarks share: real held-out images, generator-made images, the tasks' forward models."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from genprior.io.images import read_image
from genprior.io.splits import SPLITS, split_files
from genprior.paths import shared_dir
from genprior.physics import Colorization, Denoising, Inpainting, SuperResolution, center_mask

DOMAINS = {"faces": "genprior-faces64", "brains": "genprior-brain64"}


def real_images(shared: Path, domain: str, n: int, offset: int = 0) -> torch.Tensor:
    """n held-out real images, evenly spread over the held-out files (``offset`` shifts the pick: disjoint sets)."""
    model = DOMAINS[domain]
    files = split_files(shared, model, "held_out", n, offset)
    return torch.cat([read_image(f, channels=SPLITS[model].channels) for f in files])


def is_colour(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N,) bool: not a black-and-white photo (nothing to colorize there, and restored as grey its
    PSNR is unbounded, swamping a mean)."""
    return images.std(1).flatten(1).mean(1) > 0.01


def real_colour_images(shared: Path, domain: str, n: int) -> torch.Tensor:
    """n held-out colour images: `real_images`' pick without its black-and-white photos, topped up from the
    disjoint pick at offset 1."""
    images = torch.cat([real_images(shared, domain, n), real_images(shared, domain, n, offset=1)])
    images = images[is_colour(images)][:n]
    if images.shape[0] < n:
        raise ValueError(f"only {images.shape[0]} colour images among the {2 * n} held-out {domain} picked")
    return images


def generated_images(G, n: int, seed: int = 1000) -> torch.Tensor:
    """Images the generator made (random noise maps, so the methods do not know them)."""
    with torch.no_grad():
        return G.render(G.latent_from_z(G.make_z(range(seed, seed + n))), noise_mode="random")


def task_physics(task: str, kernel: str = "box"):
    return {"sr4": lambda: SuperResolution(4, kernel, sigma=0.01), "sr8": lambda: SuperResolution(8, kernel, sigma=0.01),
            "inpaint": lambda: Inpainting(center_mask(64, 0.4), sigma=0.01), "denoise": lambda: Denoising(0.1),
            "colorize": lambda: Colorization()}[task]()


def start_run(rows: Path, threads: int, fresh: bool) -> Path:
    """The shared data folder (or exit with a message); sets torch's threads; ``fresh`` drops earlier rows."""
    shared = shared_dir()
    if shared is None:
        sys.exit("set GENPRIOR_SHARED to the shared data folder")
    torch.set_num_threads(threads)
    if fresh and rows.exists():
        rows.unlink()
    return shared
