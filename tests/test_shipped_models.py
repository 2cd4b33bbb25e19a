"""genprior's shipped StyleGAN2 models: registered, hash-checked, loadable by name, and drawing what they should."""

from __future__ import annotations

import torch

import genprior
from genprior.generators import build_generator
from genprior.generators.sampling import sample_images
from genprior.io import zoo


def digit_like(images: torch.Tensor) -> tuple[float, float]:
    """(border mean, centre mean) of (N, 1, 32, 32) images: MNIST digits are bright strokes on black."""
    border = torch.cat([images[..., :3, :].flatten(1), images[..., -3:, :].flatten(1)], 1).mean().item()
    centre = images[..., 8:24, 8:24].mean().item()
    return border, centre


def test_digits32_is_shipped_and_draws_digits():
    entry = zoo.get_entry("genprior-digits32")
    path = zoo.fetch(entry, offline=True)
    assert zoo.file_sha256(path) == entry.sha256 and path.stat().st_size <= 10 * 2**20
    G = genprior.load_generator("genprior-digits32", device="cpu")
    assert (G.resolution, G.channels) == (32, 1)
    border, centre = digit_like(sample_images(G, range(64)))
    assert border < 0.05 and centre > 0.15, (border, centre)
    torch.manual_seed(0)
    untrained = build_generator(G.config).eval()
    b0, c0 = digit_like(sample_images(untrained, range(64)))
    assert not (b0 < 0.05 and c0 > 0.15), "the check must fail for an untrained network"


def test_brain64_is_shipped_and_draws_dark_backgrounds_around_a_head():
    entry = zoo.get_entry("genprior-brain64")
    assert zoo.file_sha256(zoo.fetch(entry, offline=True)) == entry.sha256
    G = genprior.load_generator("genprior-brain64", device="cpu")
    assert (G.resolution, G.channels) == (64, 1)

    def stats(images):
        border = torch.cat([images[..., :6, :].flatten(1), images[..., -6:, :].flatten(1)], 1).mean().item()
        return border, images[..., 16:48, 16:48].mean().item()

    border, centre = stats(sample_images(G, range(64)))  # measured: 0.057, 0.285
    assert border < 0.12 and centre > 2 * border, (border, centre)
    torch.manual_seed(0)
    b0, c0 = stats(sample_images(build_generator(G.config).eval(), range(64)))  # measured: 0.525, 0.413
    assert not (b0 < 0.12 and c0 > 2 * b0)


def test_faces64_is_shipped_and_its_samples_are_close_to_held_out_faces(shared):
    from genprior.io.images import read_image
    from genprior.metrics.generative import fd_vgg, generate_images, precision_recall, vgg_features

    entry = zoo.get_entry("genprior-faces64")
    path = zoo.fetch(entry, offline=True)
    assert zoo.file_sha256(path) == entry.sha256 and path.stat().st_size <= 10 * 2**20
    G = genprior.load_generator("genprior-faces64", device="cpu")
    assert (G.resolution, G.channels) == (64, 3)
    folder = shared / "data" / "faces-utk64"
    held_out = sorted(p.name for p in folder.iterdir())[-1000:][::15][:64]  # never used in training
    real = torch.cat([read_image(folder / f, channels=3) for f in held_out])
    fake = generate_images(G, 64)
    torch.manual_seed(0)
    untrained = generate_images(build_generator(G.config).eval(), 64)
    fd, fd0 = fd_vgg(fake, real), fd_vgg(untrained, real)
    precision, _ = precision_recall(vgg_features(real), vgg_features(fake))
    assert fd < 0.4 * fd0 and precision > 0.5, (fd, fd0, precision)  # measured at 87 kimg: 6960 / 30723, 0.77
