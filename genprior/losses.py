"""Likelihood terms: pixel error and a perceptual distance on VGG16 features.

All functions take images (N, C, H, W) in [0, 1] and return one value per image, shape (N,).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .errors import CheckpointError

# torchvision vgg16().features indices of the ReLU outputs LPIPS reads: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
VGG_TAPS = (3, 8, 15, 22, 29)
_VGG_CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
_VGG_WIDTHS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)
_VGG_MEAN = (123.68, 116.779, 103.939)  # RGB, for inputs in 0..255


def pixel_mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image over (C, H, W) -> (N,)."""
    return (x - y).flatten(1).square().mean(1)


class VGG16Features(nn.Module):
    """VGG16's 13 conv layers (torchvision indices) returning the ReLU maps listed in ``VGG_TAPS``."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in, k = 3, 0
        for i in range(VGG_TAPS[-1] + 1):
            if i in _VGG_CONVS:
                layers.append(nn.Conv2d(c_in, _VGG_WIDTHS[k], 3, padding=1))
                c_in, k = _VGG_WIDTHS[k], k + 1
            elif i in (4, 9, 16, 23):
                layers.append(nn.MaxPool2d(2))
            else:
                layers.append(nn.ReLU())
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(_VGG_MEAN).view(1, 3, 1, 1))

    @classmethod
    def pretrained(cls, device: str | torch.device = "cpu") -> "VGG16Features":
        """The ImageNet weights from the zoo entry ``vgg16-imagenet-features`` (frozen, eval mode)."""
        from safetensors.torch import load_file

        from .io import zoo

        path = zoo.fetch("vgg16-imagenet-features", progress=False)
        net = cls()
        sd = {k: v.float() for k, v in load_file(str(path)).items()}
        try:
            net.load_state_dict({**sd, "mean": net.mean}, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: not VGG16 feature weights: {exc}") from None
        return net.eval().requires_grad_(False).to(device)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x (N, 1|3, H, W) in [0, 1] -> the five ReLU maps."""
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        x = x * 255 - self.mean
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in VGG_TAPS:
                out.append(x)
        return out


class PerceptualDistance(nn.Module):
    """LPIPS-style distance on VGG16 features with uniform layer weights -> (N,).

    Each tap's features are unit-normalised over channels; the squared differences are summed over
    channels, averaged over pixels and then over the five taps (LPIPS with uniform channel weights, in
    [0, 4]; the learned LPIPS weights are not needed). Images are resized to ``size`` x ``size`` first (area when shrinking, bilinear when
    growing); ``size=None`` keeps the input size but at least 32 pixels.
    """

    def __init__(self, size: int | None = None, vgg: VGG16Features | None = None) -> None:
        super().__init__()
        self.size = size
        self.vgg = vgg if vgg is not None else VGG16Features.pretrained()

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        size = self.size or max(32, x.shape[-1])
        if x.shape[-1] == size and x.shape[-2] == size:
            return x
        mode = "area" if x.shape[-1] > size else "bilinear"
        return F.interpolate(x, size=(size, size), mode=mode, **({} if mode == "area" else {"align_corners": False}))

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [F.normalize(f, dim=1, eps=1e-10) for f in self.vgg(self._resize(x))]

    def forward(self, x: torch.Tensor, y: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        fy = y if isinstance(y, list) else self.features(y)
        per_tap = [(a - b).square().sum(1).flatten(1).mean(1) for a, b in zip(self.features(x), fy)]
        return torch.stack(per_tap).mean(0)
