"""Likelihood terms: pixel error and perceptual distances on VGG16 features.

All functions take images (N, C, H, W) in [0, 1] and return one value per image, shape (N,).

* `PerceptualDistance`: LPIPS-style distance on ImageNet VGG16 features with uniform weights (always available:
  zoo entry ``vgg16-imagenet-features``).
* `LPIPS`: exact LPIPS-VGG16 ("lin", v0.1) with the weights of NVIDIA's TorchScript ``vgg16.pt`` (the perceptual
  net of BRGM and stylegan2-ada-pytorch), read without running the archive (`genprior.io.torchscript`).
* `perceptual_distance` picks one of them.
* `GaussianLikelihood`: the calibrated negative log-likelihood ``Σ (A x - y)² / (2 σ²)`` of a Gaussian sensor.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .errors import CheckpointError, DownloadError, GenpriorError

# torchvision vgg16().features indices of the ReLU outputs LPIPS reads: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
VGG_TAPS = (3, 8, 15, 22, 29)
_VGG_CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
_VGG_WIDTHS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)
_VGG_MEAN = (123.68, 116.779, 103.939)  # RGB, for inputs in 0..255


def pixel_mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image over (C, H, W) -> (N,)."""
    return (x - y).flatten(1).square().mean(1)


class GaussianLikelihood(nn.Module):
    """``-log p(y | x) = Σ (f(x) - y)² / (2 σ²)`` per image (up to a constant) -> (N,).

    ``sigma``: the noise std in [0, 1] units, a float or a per-image tensor (N,); inputs are the forward
    model's output f(x) and the observation y, both (N, C', H', W'). Summed, not averaged, so the evidence
    grows with the number of observed values and a posterior width means something.
    """

    def __init__(self, sigma: float | torch.Tensor) -> None:
        super().__init__()
        sigma = torch.as_tensor(sigma, dtype=torch.float32)
        if not bool(torch.isfinite(sigma).all()) or bool((sigma <= 0).any()):
            raise GenpriorError(f"the likelihood's sigma must be finite and > 0, got {sigma.tolist()}")
        self.register_buffer("sigma", sigma.reshape(-1))

    def forward(self, fx: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (fx - y).flatten(1).square().sum(1) / (2 * self.sigma.to(fx.device) ** 2)


def vgg16_trunk(widths: tuple[int, ...] = _VGG_WIDTHS) -> nn.Sequential:
    """The one VGG16 trunk: torchvision's ``vgg16().features[:30]`` layout (13 convs with ``widths`` channels,
    ReLUs, 4 max-pools), used by the ImageNet features and by LPIPS alike."""
    layers: list[nn.Module] = []
    c_in, k = 3, 0
    for i in range(VGG_TAPS[-1] + 1):
        if i in _VGG_CONVS:
            layers.append(nn.Conv2d(c_in, widths[k], 3, padding=1))
            c_in, k = widths[k], k + 1
        elif i in (4, 9, 16, 23):
            layers.append(nn.MaxPool2d(2))
        else:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def trunk_taps(trunk: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    """The five ReLU maps (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3) of a `vgg16_trunk` on normalised input."""
    out = []
    for i, layer in enumerate(trunk):
        x = layer(x)
        if i in VGG_TAPS:
            out.append(x)
    return out


_PRETRAINED: dict[str, dict[str, torch.Tensor]] = {}  # {file: its ImageNet weights}, read once per process


class VGG16Features(nn.Module):
    """VGG16's 13 conv layers (torchvision indices) returning the ReLU maps listed in ``VGG_TAPS``."""

    def __init__(self) -> None:
        super().__init__()
        self.features = vgg16_trunk()
        self.register_buffer("mean", torch.tensor(_VGG_MEAN).view(1, 3, 1, 1))

    @classmethod
    def pretrained(cls, device: str | torch.device = "cpu") -> "VGG16Features":
        """The ImageNet weights from the zoo entry ``vgg16-imagenet-features`` (frozen, eval mode). The file is
        read once per process; each call returns its own module (callers move or convert theirs freely)."""
        if not _PRETRAINED:
            from .io import zoo
            from .io.weights import read_safetensors

            path = zoo.fetch("vgg16-imagenet-features", progress=False)
            _PRETRAINED[str(path)] = {k: v.float() for k, v in read_safetensors(path).tensors.items()}
        (path, sd), = _PRETRAINED.items()
        with torch.device("meta"):  # no initialisation: every weight comes from the file
            net = cls()
        try:
            net.load_state_dict({**{k: v.clone() for k, v in sd.items()},
                                 "mean": torch.tensor(_VGG_MEAN).view(1, 3, 1, 1)}, strict=True, assign=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: not VGG16 feature weights: {exc}") from None
        return net.eval().requires_grad_(False).to(device)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x (N, 1|3, H, W) in [0, 1] -> the five ReLU maps."""
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        return trunk_taps(self.features, x * 255 - self.mean)


def resize_for_vgg(x: torch.Tensor, size: int | None, mode: str = "auto") -> torch.Tensor:
    """Resize (N, C, H, W) to ``size`` x ``size`` (``None``: keep the width, but at least 32 pixels).

    ``mode="auto"``: area when shrinking, bilinear when growing. ``mode="area"``: always area, as BRGM's
    ``getVggFeatures`` (``F.interpolate(size=(256, 256), mode='area')``; pixel replication when growing by an
    integer factor).
    """
    if mode not in ("auto", "area"):
        raise GenpriorError(f"unknown resize mode {mode!r}; use 'auto' or 'area'")
    size = size or max(32, x.shape[-1])
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    if mode == "area" or x.shape[-1] > size:
        return F.interpolate(x, size=(size, size), mode="area")
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


class PerceptualDistance(nn.Module):
    """LPIPS-style distance on VGG16 features with uniform layer weights -> (N,).

    Each tap's features are unit-normalised over channels; the squared differences are summed over
    channels, averaged over pixels and summed over the five taps, as LPIPS sums its layers (LPIPS with
    uniform channel weights, in [0, 20]; the learned LPIPS weights are not needed). Summing (not averaging)
    keeps the official BRGM objective's balance when this distance stands in for LPIPS. Images are resized to ``size`` x ``size`` first (area
    when shrinking, bilinear when growing; ``resize="area"``: always area); ``size=None`` keeps the input size
    but at least 32 pixels.
    """

    kind = "vgg"

    def __init__(self, size: int | None = None, vgg: VGG16Features | None = None, resize: str = "auto") -> None:
        super().__init__()
        self.size = size
        self.resize = resize
        self.vgg = vgg if vgg is not None else VGG16Features.pretrained()

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        return resize_for_vgg(x, self.size, self.resize)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [F.normalize(f, dim=1, eps=1e-10) for f in self.vgg(self._resize(x))]

    def forward(self, x: torch.Tensor, y: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        fy = y if isinstance(y, list) else self.features(y)
        per_tap = [(a - b).square().sum(1).flatten(1).mean(1) for a, b in zip(self.features(x), fy)]
        return torch.stack(per_tap).sum(0)


# ------------------------------------------------------------------------------------------------- LPIPS

# LPIPS's ScalingLayer (richzhang/PerceptualSimilarity, lpips/pretrained_networks.py), applied to [-1, 1] input.
# It equals torchvision's ImageNet normalisation on [0, 1]: (1 + shift) / 2 = (0.485, 0.456, 0.406),
# scale / 2 = (0.229, 0.224, 0.225).
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
LPIPS_EPS = 1e-10
_LPIPS_TAPS = (2, 4, 7, 10, 13)  # 1-based conv index whose ReLU is tapped: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3


class LPIPS(nn.Module):
    """LPIPS-VGG16 ("lin"): Zhang et al.'s learned perceptual distance -> (N,), same interface as `PerceptualDistance`.

    For x, y (N, 1|3, H, W) in [0, 1] (grey repeated to 3 channels), resized as `PerceptualDistance` does:

        v = ((2x - 1) - shift) / scale                       LPIPS scaling (== ImageNet mean/std on [0, 1])
        f_l = VGG16 relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 of v
        u_l = f_l / (sqrt(sum_c f_l^2) + 1e-10)              channel-wise unit normalisation
        LPIPS(x, y) = sum_l mean_hw sum_c w_lc (u_l(x) - u_l(y))^2,   w_lc >= 0 the "lin" weights

    `features` returns g_l = u_l * sqrt(w_l) / sqrt(H_l W_l), so that ``forward`` is the plain squared
    Euclidean distance of the concatenated features (`feature_vector`, what NVIDIA's ``vgg16.pt`` returns with
    ``return_lpips=True``): ``||phi(x) - phi(y)||^2 = LPIPS(x, y)``. BRGM's Q = mean_d (phi(y) - phi(f(x)))^2
    is ``LPIPS / D``.

    Weights: `from_torchscript` (NVIDIA's ``vgg16.pt``, zoo entry ``lpips-vgg16``) or `from_state_dict` with
    its key names ``layers.conv1..13.{weight,bias}`` and ``lpips0..4`` (channel widths are read from the
    shapes, so small test networks work too). ``layers.fc*`` are not used. What is verified about the official
    file and what is taken from BRGM.md / third-party ports: ``docs/lpips-vgg16.md``.
    """

    kind = "lpips"

    def __init__(self, widths: tuple[int, ...] = _VGG_WIDTHS, size: int | None = None, resize: str = "auto") -> None:
        super().__init__()
        if len(widths) != 13 or any(int(w) < 1 for w in widths):
            raise GenpriorError(f"LPIPS needs 13 positive conv widths, got {widths!r}")
        self.size = size
        self.resize = resize
        self.widths = tuple(int(w) for w in widths)
        self.trunk = vgg16_trunk(self.widths)
        for i, k in enumerate(_LPIPS_TAPS):
            self.register_buffer(f"lin{i}", torch.ones(self.widths[k - 1]))
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)

    # -- construction

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor], size: int | None = None, resize: str = "auto",
                        source: str = "state dict") -> "LPIPS":
        """Build from NVIDIA's key names (see the class doc); frozen, eval mode, float32."""
        missing = [f"layers.conv{k}.{p}" for k in range(1, 14) for p in ("weight", "bias")
                   if f"layers.conv{k}.{p}" not in sd]
        missing += [f"lpips{i}" for i in range(5) if f"lpips{i}" not in sd]
        if missing:
            raise CheckpointError(f"{source}: not LPIPS-VGG16 weights, missing {', '.join(missing)}")
        widths = []
        c_in = 3
        for k in range(1, 14):
            w, b = sd[f"layers.conv{k}.weight"], sd[f"layers.conv{k}.bias"]
            if w.dim() != 4 or tuple(w.shape[1:]) != (c_in, 3, 3) or tuple(b.shape) != (w.shape[0],):
                raise CheckpointError(f"{source}: layers.conv{k} has shape {tuple(w.shape)} / {tuple(b.shape)}, "
                                      f"expected (C, {c_in}, 3, 3) / (C,)")
            widths.append(int(w.shape[0]))
            c_in = int(w.shape[0])
        with torch.random.fork_rng(devices=[]):  # building the layers must not consume the global RNG
            net = cls(tuple(widths), size=size, resize=resize)
        with torch.no_grad():
            for k, index in enumerate(_VGG_CONVS, start=1):
                net.trunk[index].weight.copy_(sd[f"layers.conv{k}.weight"].float())
                net.trunk[index].bias.copy_(sd[f"layers.conv{k}.bias"].float())
            for i, k in enumerate(_LPIPS_TAPS):
                lin = sd[f"lpips{i}"].float().detach()
                if lin.numel() != widths[k - 1]:
                    raise CheckpointError(f"{source}: lpips{i} has {lin.numel()} values for {widths[k - 1]} channels")
                if not torch.isfinite(lin).all() or (lin < 0).any():
                    raise CheckpointError(f"{source}: lpips{i} has negative or non-finite weights (LPIPS 'lin' "
                                          "weights are clamped to >= 0)")
                getattr(net, f"lin{i}").copy_(lin.reshape(-1))
        return net.eval().requires_grad_(False)

    @classmethod
    def from_torchscript(cls, path: str, size: int | None = None, resize: str = "auto",
                         device: str | torch.device = "cpu") -> "LPIPS":
        """Read NVIDIA's ``vgg16.pt`` (or any archive with its key names) without running it."""
        from .io.torchscript import load_torchscript_state_dict

        sd = load_torchscript_state_dict(path, include=lambda k: k.startswith(("layers.conv", "lpips")))
        return cls.from_state_dict(sd, size=size, resize=resize, source=str(path)).to(device)

    @classmethod
    def pretrained(cls, size: int | None = None, resize: str = "auto", device: str | torch.device = "cpu",
                   download: bool = False) -> "LPIPS":
        """NVIDIA's weights from the zoo entry ``lpips-vgg16`` (cache or shared folder; downloads only if asked)."""
        return cls.from_torchscript(str(lpips_weights_path(download=download)), size, resize, device)

    # -- evaluation

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        return resize_for_vgg(x, self.size, self.resize)

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The five raw ReLU maps of x (N, 1|3, H, W) in [0, 1] (after resizing and LPIPS scaling)."""
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        return trunk_taps(self.trunk, (self._resize(x) * 2 - 1 - self.shift) / self.scale)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Scaled, normalised maps g_l (N, C_l, H_l, W_l): ``sum_l ||g_l(x) - g_l(y)||^2 = LPIPS(x, y)``."""
        out = []
        for i, f in enumerate(self.taps(x)):
            u = f / (f.square().sum(1, keepdim=True).sqrt() + LPIPS_EPS)
            weight = getattr(self, f"lin{i}").sqrt().view(1, -1, 1, 1)
            out.append(u * weight / (f.shape[-2] * f.shape[-1]) ** 0.5)
        return out

    def feature_vector(self, x: torch.Tensor) -> torch.Tensor:
        """(N, D): the features concatenated, as NVIDIA's ``vgg16(img, return_lpips=True)`` returns."""
        return torch.cat([g.flatten(1) for g in self.features(x)], dim=1)

    def forward(self, x: torch.Tensor, y: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        fy = y if isinstance(y, list) else self.features(y)
        per_tap = [(a - b).square().flatten(1).sum(1) for a, b in zip(self.features(x), fy)]
        return torch.stack(per_tap).sum(0)


def lpips_weights_path(download: bool = False) -> Path:
    """The local path of NVIDIA's ``vgg16.pt`` (zoo entry ``lpips-vgg16``), hash-checked.

    Looks in the cache and the shared folder only; with ``download=True`` it may also download. A missing file
    raises `DownloadError` naming the exact path to put it at.
    """
    from .io import zoo

    entry = zoo.get_entry("lpips-vgg16")
    try:
        return zoo.fetch(entry, offline=True if not download else None, progress=False)
    except DownloadError as exc:
        raise DownloadError(
            f"LPIPS-VGG16 weights not found: put NVIDIA's vgg16.pt ({entry.urls[0]}) at {zoo.cache_path(entry)}, "
            f"or run `genprior models fetch lpips-vgg16`.\n{exc}"
        ) from None


def perceptual_distance(kind: str = "auto", size: int | None = None, device: str | torch.device = "cpu", *,
                        resize: str = "auto", download: bool = False) -> "LPIPS | PerceptualDistance":
    """A perceptual distance module, ``d(x, y_or_features) -> (N,)`` with ``.features(y)``.

    * ``"lpips"``: exact LPIPS-VGG16 (`LPIPS`) with NVIDIA's ``vgg16.pt``; a missing file raises `DownloadError`
      naming the cache path to put it at (``download=True`` allows a download instead).
    * ``"auto"``: `LPIPS` if ``vgg16.pt`` is already in the cache or the shared folder (never downloads), else
      `PerceptualDistance` with a warning.
    * ``"vgg"``: `PerceptualDistance` (uniform weights on ImageNet VGG16 features, summed over taps as LPIPS).

    ``size``/``resize`` set the VGG input size as in `PerceptualDistance` (BRGM: ``size=256, resize="area"``).
    The module's ``kind`` attribute says which one was returned.
    """
    if kind not in ("auto", "lpips", "vgg"):
        raise GenpriorError(f"unknown perceptual distance {kind!r}; use 'auto', 'lpips' or 'vgg'")
    if kind in ("auto", "lpips"):
        try:
            path = lpips_weights_path(download=download and kind == "lpips")
        except DownloadError as exc:
            if kind == "lpips":
                raise
            import warnings

            warnings.warn(f"LPIPS-VGG16 weights not available offline, using the uniform-weight VGG distance "
                          f"instead ({str(exc).splitlines()[0]})", stacklevel=2)
        else:
            return LPIPS.from_torchscript(str(path), size=size, resize=resize, device=device)
    return PerceptualDistance(size, resize=resize).to(device)
