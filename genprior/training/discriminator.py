"""StyleGAN2's residual discriminator (the ``resnet`` architecture of StyleGAN2-ADA), compact.

Parameter names follow the official ``training/networks.py`` (``b64.fromrgb``, ``b64.conv0``, ``b64.conv1``,
``b64.skip``, ``b4.mbstd``/``b4.conv``/``b4.fc``/``b4.out``), without conditioning. As the official network,
the ``num_fp16_res`` highest-resolution blocks run in float16 on CUDA (in float32 elsewhere; use them with a
``conv_clamp``, 256 officially), in channels-last layout there; the 4x4 epilogue always runs in float32.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..generators.stylegan2 import Conv2dLayer, FullyConnectedLayer


class DiscriminatorBlock(nn.Module):
    """One resolution R -> R/2: [fromrgb] -> conv0 3x3 -> conv1 3x3 down, plus a 1x1 down-sampling skip."""

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, img_channels: int,
                 conv_clamp: float | None = None, use_fp16: bool = False) -> None:
        super().__init__()
        self.in_channels, self.use_fp16 = in_channels, use_fp16
        if in_channels == 0:
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, 1, activation="lrelu", conv_clamp=conv_clamp)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, activation="lrelu", conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, activation="lrelu", down=2,
                                     conv_clamp=conv_clamp)
        self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=2)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor) -> torch.Tensor:
        fp16 = self.use_fp16 and img.device.type == "cuda"
        dtype, layout = (torch.float16, torch.channels_last) if fp16 else (torch.float32, torch.preserve_format)
        if self.in_channels == 0:
            x = self.fromrgb(img.to(dtype=dtype, memory_format=layout))
        else:
            x = x.to(dtype=dtype, memory_format=layout)
        y = self.skip(x, gain=math.sqrt(0.5))
        x = self.conv0(x)
        x = self.conv1(x, gain=math.sqrt(0.5))
        return y + x


class MinibatchStdLayer(nn.Module):
    """Appends the standard deviation over groups of ``group_size`` samples as extra feature maps."""

    def __init__(self, group_size: int = 4, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        if n % g:
            g = math.gcd(n, g)  # a batch that does not divide: the largest group size that does
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)
        y = y - y.mean(dim=0)
        y = (y.square().mean(dim=0) + 1e-8).sqrt()
        y = y.mean(dim=[2, 3, 4]).reshape(-1, f, 1, 1)
        y = y.repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)


class DiscriminatorEpilogue(nn.Module):
    """The 4x4 head: minibatch std -> conv 3x3 -> fc -> out (one logit per image)."""

    def __init__(self, in_channels: int, *, mbstd_group_size: int = 4, mbstd_num_channels: int = 1,
                 conv_clamp: float | None = None) -> None:
        super().__init__()
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, 3, activation="lrelu",
                                    conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * 16, in_channels, activation="lrelu")
        self.out = FullyConnectedLayer(in_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        return self.out(x)


class StyleGAN2Discriminator(nn.Module):
    """Images (N, C, R, R) in [-1, 1] -> logits (N, 1). Channels per resolution: min(channel_base / res, max)."""

    def __init__(self, *, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, mbstd_group_size: int = 4, mbstd_num_channels: int = 1,
                 conv_clamp: float | None = None, num_fp16_res: int = 0) -> None:
        super().__init__()
        log2 = int(np.log2(img_resolution))
        if img_resolution < 4 or 2**log2 != img_resolution:
            raise ValueError(f"img_resolution must be a power of two >= 4, not {img_resolution}")
        if img_channels < 1:
            raise ValueError(f"img_channels must be >= 1, not {img_channels}")
        self.init_kwargs = dict(img_resolution=img_resolution, img_channels=img_channels, channel_base=channel_base,
                                channel_max=channel_max, mbstd_group_size=mbstd_group_size,
                                mbstd_num_channels=mbstd_num_channels, conv_clamp=conv_clamp,
                                num_fp16_res=num_fp16_res)
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.block_resolutions = [2**i for i in range(log2, 2, -1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions + [4]}
        fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 8)
        for res in self.block_resolutions:
            in_channels = channels[res] if res < img_resolution else 0
            block = DiscriminatorBlock(in_channels, channels[res], channels[res // 2], img_channels,
                                       conv_clamp=conv_clamp, use_fp16=res >= fp16_resolution)
            setattr(self, f"b{res}", block)
        self.b4 = DiscriminatorEpilogue(channels[4], mbstd_group_size=mbstd_group_size,
                                        mbstd_num_channels=mbstd_num_channels, conv_clamp=conv_clamp)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if img.ndim != 4 or img.shape[1:] != (self.img_channels, self.img_resolution, self.img_resolution):
            raise ValueError(f"expected images (N, {self.img_channels}, {self.img_resolution}, "
                             f"{self.img_resolution}), got {tuple(img.shape)}")
        x = None
        for res in self.block_resolutions:
            x = getattr(self, f"b{res}")(x, img)
        return self.b4(x)
