"""A Projected-GAN discriminator (Sauer et al. 2021) on frozen ImageNet VGG16 features, alone or beside
StyleGAN2's discriminator (a vision-aided discriminator, Kumari et al. 2022).

Images (N, C, R, R) in [-1, 1] go through the frozen VGG16 trunk of `genprior.losses.VGG16Features`
(ImageNet weights, zoo entry ``vgg16-imagenet-features``); its ReLU maps relu2_2, relu3_3 and relu4_3 (at R/2,
R/4, R/8) are mixed across channels by fixed random 1x1 projections (Gaussian, scale 1/sqrt(channels), drawn
from the run's seed; Projected GAN's cross-channel mixing without training), and each scale has a small
trainable head of spectral-normalised 4x4 stride-2 convolutions with batch norm down to 4x4, then a 4x4
convolution to one logit. The output is (N, 3): one logit per scale.

Only the heads train (``requires_grad_`` leaves the rest frozen). The state dict holds the heads and the
projections but not the VGG16 weights, which come from their file: a checkpoint stays small and resumes
exactly. It runs in float32 everywhere (TF32 convolutions on recent GPUs, PyTorch's default there).

`VisionAidedDiscriminator` holds a `StyleGAN2Discriminator` (``main``) and a `ProjectedDiscriminator`
(``projected``): its logits are (N, 1 + 3), the main one first. The loss uses the two parts separately
(`genprior.training.loss.VisionAidedLoss`), so that R1 differentiates the main part only.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..losses import VGG_TAPS, VGG16Features

__all__ = ["ProjectedDiscriminator", "VisionAidedDiscriminator", "MIN_RESOLUTION"]

TAPS = VGG_TAPS[1:4]  # relu2_2, relu3_3, relu4_3 (torchvision feature indices)
TAP_CHANNELS = (128, 256, 512)
MIX_CHANNELS = (64, 64, 128)
HEAD_MAX_CHANNELS = 256
MIN_RESOLUTION = 32  # relu4_3 is at R/8 and a head needs at least 4x4


def _down_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(spectral_norm(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False)), nn.BatchNorm2d(c_out),
                         nn.LeakyReLU(0.2))


class Head(nn.Module):
    """(N, c_in, res, res) -> (N, 1): stride-2 blocks (channels doubling up to 256) to 4x4, then a 4x4 conv."""

    def __init__(self, c_in: int, res: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = c_in
        while res > 4:
            layers.append(_down_block(c, min(2 * c, HEAD_MAX_CHANNELS)))
            c, res = min(2 * c, HEAD_MAX_CHANNELS), res // 2
        layers.append(spectral_norm(nn.Conv2d(c, 1, 4, 1, 0)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten(1)


class ProjectedDiscriminator(nn.Module):
    """Images (N, C, R, R) in [-1, 1] -> logits (N, 3), one per feature scale; R >= 32, C in (1, 3)."""

    def __init__(self, *, img_resolution: int, img_channels: int, seed: int = 0,
                 vgg: VGG16Features | None = None) -> None:
        super().__init__()
        if img_resolution < MIN_RESOLUTION or img_resolution & (img_resolution - 1):
            raise ValueError(f"the projected discriminator needs a power-of-two resolution >= {MIN_RESOLUTION}, "
                             f"not {img_resolution}")
        if img_channels not in (1, 3):
            raise ValueError(f"img_channels must be 1 or 3, not {img_channels}")
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.vgg = (vgg or VGG16Features.pretrained()).eval().requires_grad_(False)
        gen = torch.Generator().manual_seed(seed)
        for i, (c, m) in enumerate(zip(TAP_CHANNELS, MIX_CHANNELS)):
            self.register_buffer(f"mix{i}", torch.randn(m, c, 1, 1, generator=gen) / math.sqrt(c))
        self.heads = nn.ModuleList(Head(m, img_resolution // 2 ** (i + 1)) for i, m in enumerate(MIX_CHANNELS))
        self.register_state_dict_post_hook(_drop_vgg)
        self.register_load_state_dict_post_hook(_vgg_is_not_missing)

    def requires_grad_(self, requires_grad: bool = True) -> "ProjectedDiscriminator":
        """Only the heads train; the VGG16 trunk and the projections stay frozen."""
        self.heads.requires_grad_(requires_grad)
        return self

    def train(self, mode: bool = True) -> "ProjectedDiscriminator":
        super().train(mode)
        self.vgg.eval()
        return self

    def features(self, img: torch.Tensor) -> list[torch.Tensor]:
        """The three projected feature maps (N, 64|64|128, R/2|R/4|R/8, ...) of images in [-1, 1]."""
        x = (img + 1) / 2
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        x = x * 255 - self.vgg.mean
        out = []
        for i, layer in enumerate(self.vgg.features[: TAPS[-1] + 1]):
            x = layer(x)
            if i in TAPS:
                out.append(nn.functional.conv2d(x, getattr(self, f"mix{len(out)}")))
        return out

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if img.ndim != 4 or img.shape[1:] != (self.img_channels, self.img_resolution, self.img_resolution):
            raise ValueError(f"expected images (N, {self.img_channels}, {self.img_resolution}, "
                             f"{self.img_resolution}), got {tuple(img.shape)}")
        return torch.cat([head(f) for head, f in zip(self.heads, self.features(img))], dim=1)


class VisionAidedDiscriminator(nn.Module):
    """Images (N, C, R, R) in [-1, 1] -> logits (N, 4): StyleGAN2's D (column 0) and the projected D (1-3)."""

    def __init__(self, main: nn.Module, projected: ProjectedDiscriminator) -> None:
        super().__init__()
        self.main, self.projected = main, projected

    def requires_grad_(self, requires_grad: bool = True) -> "VisionAidedDiscriminator":
        """The main part and the projected heads; the VGG16 trunk stays frozen."""
        self.main.requires_grad_(requires_grad)
        self.projected.requires_grad_(requires_grad)
        return self

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.main(img).float(), self.projected(img)], dim=1)


def _drop_vgg(module: nn.Module, state_dict: dict, prefix: str, local_metadata: dict) -> None:
    for k in [k for k in state_dict if k.startswith(prefix + "vgg.")]:
        del state_dict[k]


def _vgg_is_not_missing(module: nn.Module, incompatible: nn.modules.module._IncompatibleKeys) -> None:
    incompatible.missing_keys[:] = [k for k in incompatible.missing_keys if ".vgg." not in f".{k}"]
