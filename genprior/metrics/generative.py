"""A quality metric that runs offline: the Fréchet distance between VGG16 features of two image sets.

Features are the global-average-pooled activations of one VGG16 layer (default ``relu5_3``) of the ImageNet
weights in ``vgg16-imagenet-features.safetensors`` (shared folder, or the zoo entry of that name). Images are
uint8 (N, C, H, W) or float in [0, 1]; grey images are repeated to RGB, images smaller than 64 px are upsampled
(bilinear) to 64 px. The distance is FID's formula on these features ("FD-VGG"); its values are not comparable
with FID's Inception numbers, only with each other.

FID proper (Inception-v3 pool3 features, `genprior.training.inception`) is added where its weights are in the
cache or shared folder (zoo entry ``inception-fid``; `cached_fid_inception`).

``precision_recall`` adds Kynkäänniemi et al.'s (2019) k-NN precision (how many samples look real) and recall
(how much of the real distribution the samples cover) on the same features.

``random_features`` gives a second feature space that no discriminator sees: a seeded, untrained convolutional
network (`RandomConvFeatures`), for a Fréchet distance ("FD-rand") that a recipe training on VGG16 features
cannot game; like FD-VGG, its values are only comparable with each other.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import GenpriorError
from ..losses import VGG16Features

if TYPE_CHECKING:
    from ..training.inception import FIDInception

__all__ = ["VGGFeatures", "vgg_features", "frechet_distance", "fd_vgg", "fvd_vgg", "feature_stats", "vgg16_path",
           "generate_images", "score_snapshots", "precision_recall", "evaluate_generator",
           "cached_fid_inception", "RandomConvFeatures", "random_features"]

MIN_SIZE = 64
LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")  # the taps of `genprior.losses.VGG16Features`


def vgg16_path() -> Path:
    """The VGG16 feature weights: through the zoo (shared folder or cache)."""
    from ..io import zoo

    return Path(zoo.fetch("vgg16-imagenet-features", progress=False))


class VGGFeatures(torch.nn.Module):
    """Global-average-pooled VGG16 activations at ``layer`` (one of ``LAYERS``): images -> (N, channels)."""

    def __init__(self, layer: str = "relu5_3") -> None:
        super().__init__()
        if layer not in LAYERS:
            raise GenpriorError(f"unknown VGG16 layer {layer!r}; known: {', '.join(LAYERS)}")
        self.layer, self.tap = layer, LAYERS.index(layer)
        self.vgg = VGG16Features.pretrained()

    @property
    def dim(self) -> int:
        return (64, 128, 256, 512, 512)[self.tap]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.vgg(_to_vgg_input(images))[self.tap].mean(dim=[2, 3])


def _to_vgg_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 or [0, 1] float (N, 1|3, H, W) -> float in [0, 1], at least MIN_SIZE px (VGG16Features repeats grey)."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise GenpriorError(f"images must be (N, 1 or 3, H, W), got {tuple(images.shape)}")
    x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
    short = min(x.shape[2:])
    if short < MIN_SIZE:
        scale = MIN_SIZE / short
        x = F.interpolate(x, size=(round(x.shape[2] * scale), round(x.shape[3] * scale)), mode="bilinear",
                          align_corners=False)
    return x


_CACHE: dict[tuple[str, str], torch.nn.Module] = {}


def _model(layer: str, device: torch.device) -> VGGFeatures:
    key = (layer, str(device))
    if key not in _CACHE:
        _CACHE[key] = VGGFeatures(layer).to(device)
    return _CACHE[key]


@torch.no_grad()
def vgg_features(images: torch.Tensor, *, layer: str = "relu5_3", batch: int = 50,
                 device: str | torch.device = "cpu") -> np.ndarray:
    """(N, D) float64 features of uint8 / [0, 1] images (N, C, H, W), computed on ``device``."""
    model = _model(layer, torch.device(device))
    out = [model(images[i:i + batch].to(device)).double().cpu().numpy() for i in range(0, images.shape[0], batch)]
    return np.concatenate(out) if out else np.zeros((0, model.dim))


class RandomConvFeatures(torch.nn.Module):
    """A fixed random convnet: images (N, C, H, W) in [0, 1] -> (N, 512) global-average-pooled features.

    Four 3x3 convolutions (3 -> 64 -> 128 -> 256 -> 512, He-normal weights and zero biases drawn from ``seed``),
    ReLU, 2x2 max pooling between them (max, not average, so that fine texture and noise survive, as in a
    random VGG); grey images are repeated to RGB, inputs mapped to [-1, 1].
    """

    WIDTHS = (3, 64, 128, 256, 512)

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.convs = torch.nn.ModuleList()
        for c_in, c_out in zip(self.WIDTHS[:-1], self.WIDTHS[1:]):
            conv = torch.nn.Conv2d(c_in, c_out, 3, padding=1)
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * (2 / (c_in * 9)) ** 0.5)
                conv.bias.zero_()
            self.convs.append(conv.requires_grad_(False))

    @property
    def dim(self) -> int:
        return self.WIDTHS[-1]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = _to_vgg_input(images)
        x = (x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x) * 2 - 1
        for i, conv in enumerate(self.convs):
            x = torch.relu(conv(x))
            if i < len(self.convs) - 1:
                x = F.max_pool2d(x, 2)
        return x.mean(dim=[2, 3])


@torch.no_grad()
def random_features(images: torch.Tensor, *, seed: int = 0, batch: int = 50,
                    device: str | torch.device = "cpu") -> np.ndarray:
    """(N, 512) float64 `RandomConvFeatures` of uint8 / [0, 1] images (N, C, H, W)."""
    key = (f"random{seed}", str(device))
    if key not in _CACHE:
        _CACHE[key] = RandomConvFeatures(seed).to(device)
    model = _CACHE[key]
    out = [model(images[i:i + batch].to(device)).double().cpu().numpy() for i in range(0, images.shape[0], batch)]
    return np.concatenate(out) if out else np.zeros((0, model.dim))


def feature_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) of (N, D) features, N >= 2."""
    feats = np.asarray(feats, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise GenpriorError(f"need features (N >= 2, D), got shape {feats.shape}")
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (negative eigenvalues clipped)."""
    vals, vecs = np.linalg.eigh((a + a.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, D): FID's formula.

    ``|mu_a - mu_b|² + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^½)``, with ``tr((S_a S_b)^½)`` computed as the sum of
    the square roots of the eigenvalues of the symmetric PSD matrix ``S_a^½ S_b S_a^½`` (stable when the
    covariances are singular, as they are with fewer samples than dimensions).
    """
    mu_a, s_a = feature_stats(feats_a)
    mu_b, s_b = feature_stats(feats_b)
    if mu_a.shape != mu_b.shape:
        raise GenpriorError(f"feature sizes differ: {mu_a.shape[0]} vs {mu_b.shape[0]}")
    root_a = _sqrt_psd(s_a)
    m = root_a @ s_b @ root_a
    eig = np.linalg.eigvalsh((m + m.T) / 2)
    tr_covmean = np.sqrt(np.clip(eig, 0, None)).sum()
    d = float(np.sum((mu_a - mu_b) ** 2) + np.trace(s_a) + np.trace(s_b) - 2 * tr_covmean)
    return max(d, 0.0)


def _kth_neighbour_radius(feats: torch.Tensor, k: int) -> torch.Tensor:
    """(N,) distance from each row of (N, D) ``feats`` to its k-th nearest other row."""
    return torch.cdist(feats, feats).kthvalue(k + 1, dim=1).values  # +1: the zero distance to itself


def _coverage(manifold: torch.Tensor, radii: torch.Tensor, queries: torch.Tensor) -> float:
    """Fraction of ``queries`` (M, D) inside at least one ball (``manifold`` row i, radius ``radii[i]``)."""
    inside = torch.cdist(queries, manifold) <= radii[None, :]
    return inside.any(dim=1).double().mean().item()


def precision_recall(real_feats: np.ndarray, fake_feats: np.ndarray, *, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of (M, D) sample features against (N, D) real ones.

    Each set's manifold is the union of balls around its points, of radius the distance to the k-th nearest
    neighbour in the same set. Precision: fraction of samples inside the real manifold; recall: fraction of real
    points inside the samples' manifold. Both in [0, 1], higher is better; needs more than ``k`` points per set.
    """
    real, fake = (torch.as_tensor(np.asarray(f, dtype=np.float64)) for f in (real_feats, fake_feats))
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise GenpriorError(f"need two (N, D) feature sets of equal D, got {tuple(real.shape)} and {tuple(fake.shape)}")
    if k < 1 or min(real.shape[0], fake.shape[0]) <= k:
        raise GenpriorError(f"k = {k} needs k >= 1 and more than k points per set; got {real.shape[0]} real, "
                            f"{fake.shape[0]} generated")
    precision = _coverage(real, _kth_neighbour_radius(real, k), fake)
    recall = _coverage(fake, _kth_neighbour_radius(fake, k), real)
    return precision, recall


def _scores(real_feats: np.ndarray, fake_feats: np.ndarray, k: int) -> dict:
    """FD-VGG, precision and recall of sample features (M, D) against real features (N, D)."""
    precision, recall = precision_recall(real_feats, fake_feats, k=k)
    return dict(fd_vgg=frechet_distance(fake_feats, real_feats), precision=precision, recall=recall)


@torch.no_grad()
def generate_images(G: torch.nn.Module, n: int, *, seed: int = 123, batch: int = 50,
                    truncation_psi: float = 1.0) -> torch.Tensor:
    """``n`` uint8 samples (N, C, H, W) of a genprior generator from seeds ``seed .. seed + n - 1``."""
    was_training = G.training
    G.eval()
    out = []
    try:
        for i in range(0, n, batch):
            z = G.make_z(range(seed + i, seed + min(n, i + batch)))
            img = G.render(G.latent_from_z(z, truncation_psi))
            out.append((img * 255).round().clamp(0, 255).to(torch.uint8).cpu())
    finally:
        G.train(was_training)
    return torch.cat(out)


def fd_vgg(images_a: torch.Tensor, images_b: torch.Tensor, *, layer: str = "relu5_3") -> float:
    """FD-VGG between two image sets (uint8 or [0, 1] float, N, C, H, W)."""
    return frechet_distance(vgg_features(images_a, layer=layer), vgg_features(images_b, layer=layer))


def fvd_vgg(G: torch.nn.Module, real_images: torch.Tensor | np.ndarray, n: int | None = None, *,
            layer: str = "relu5_3", seed: int = 123, truncation_psi: float = 1.0) -> float:
    """FD-VGG between ``n`` samples of ``G`` (default: as many as real images) and ``real_images``.

    ``real_images`` are uint8 (N, C, H, W) (e.g. a held-out split), or precomputed features (N, D) as a
    numpy array, to score many snapshots against the same reals cheaply.
    """
    if isinstance(real_images, np.ndarray):
        real_feats = real_images
        n = n or real_feats.shape[0]
    else:
        real_feats = vgg_features(real_images, layer=layer)
        n = n or real_images.shape[0]
    fake = generate_images(G, n, seed=seed, truncation_psi=truncation_psi)
    return frechet_distance(vgg_features(fake, layer=layer), real_feats)


def score_snapshots(run_dir: str | os.PathLike, real_images: torch.Tensor, n: int | None = None, *,
                    layer: str = "relu5_3", every: int = 1, k: int = 3) -> list[dict]:
    """FD-VGG, precision and recall of every ``every``-th exported snapshot (``network-<step>.safetensors``) of a
    run, and of the latest, against uint8 ``real_images``.

    Returns one record per snapshot, in step order: file, step, kimg, cpu_hours (from the file's metadata), fd_vgg,
    precision, recall.
    """
    import json

    from safetensors import safe_open

    from ..io.checkpoints import load_generator

    n = n or real_images.shape[0]
    real_feats = vgg_features(real_images[:n], layer=layer)
    files = sorted(p for p in Path(run_dir).glob("network-*.safetensors") if p.stem != "network-latest")
    chosen = files[::every] + ([files[-1]] if files and (len(files) - 1) % every else [])  # always the latest
    out = []
    for path in chosen:
        with safe_open(str(path), "pt") as f:
            info = json.loads((f.metadata() or {}).get("training", "{}"))
        fake_feats = vgg_features(generate_images(load_generator(path, device="cpu"), n), layer=layer)
        out.append(dict(file=path.name, step=info.get("step"), kimg=info.get("kimg"), cpu_hours=info.get("cpu_hours"),
                        **_scores(real_feats, fake_feats, k)))
    return out


def cached_fid_inception() -> "FIDInception | None":
    """FID's Inception-v3 if its weights (zoo ``inception-fid``) are in the cache or shared folder, else None.

    Never downloads: ``genprior models fetch inception-fid`` does, once.
    """
    from ..io import zoo
    from ..training.inception import load_fid_inception

    try:
        path = zoo.fetch("inception-fid", offline=True, progress=False)
    except GenpriorError:
        return None
    return load_fid_inception(path)


def evaluate_generator(G: torch.nn.Module, real_images: torch.Tensor, n: int | None = None, *, seed: int = 123,
                       truncation_psi: float = 1.0, k: int = 3, layer: str = "relu5_3",
                       inception: "FIDInception | None" = None, device: str | torch.device = "cpu") -> dict:
    """FD-VGG and k-NN precision / recall of ``n`` samples of ``G`` against uint8 ``real_images`` (N, C, H, W);
    also FID when an ``inception`` network (`cached_fid_inception`) is given, else ``fid`` is None.

    ``n`` defaults to the number of real images (and may not exceed it: both sets get the same size, so the
    biased FD estimate is comparable between runs). Samples use seeds ``seed .. seed + n - 1``; VGG16
    features are computed on ``device``.
    """
    n = real_images.shape[0] if n is None else n
    if not 2 <= n <= real_images.shape[0]:
        raise GenpriorError(f"n = {n} must be between 2 and the number of real images ({real_images.shape[0]})")
    if tuple(real_images.shape[1:]) != (G.channels, G.resolution, G.resolution):
        raise GenpriorError(f"real images are {tuple(real_images.shape[1:])}, the generator makes "
                            f"{(G.channels, G.resolution, G.resolution)}")
    real_images = real_images[:n]
    fake_images = generate_images(G, n, seed=seed, truncation_psi=truncation_psi)
    scores = _scores(vgg_features(real_images, layer=layer, device=device),
                     vgg_features(fake_images, layer=layer, device=device), k)
    fid = None
    if inception is not None:
        from ..training.inception import inception_features

        fid = frechet_distance(inception_features(inception, fake_images), inception_features(inception, real_images))
    return dict(n=n, seed=seed, truncation_psi=truncation_psi, feature_layer=layer, k=k, **scores, fid=fid)
