"""PGGAN generator (Karras et al., ICLR 2018), numerically identical to mGANprior's PyTorch port.

The module layout, the parameter names and the order of operations follow ``PGGANGeneratorNet`` of
mGANprior's ``models/pggan_generator_network.py`` (the same file ships in BIGPrior), so the released
``.pth`` state dicts load with ``load_state_dict(strict=True)`` and give the official images.

Layout for a final resolution R = 2**L (children in registration order)::

    lod                                       scalar Parameter, 0 for final models (hard LOD switch)
    layer0   PixelNorm, 4x4 conv pad 3 on z (N, z_dim, 1, 1)      -> (N, nf(4), 4, 4)     ("Dense" in TF)
    layer1   PixelNorm, 3x3 conv                                  -> (N, nf(4), 4, 4)
    output0  PixelNorm, 1x1 conv, gain 1, linear (ToRGB)          -> (N, C, 4, 4)
    layer2   PixelNorm, nearest x2, 3x3 conv  (or fused 4x4 conv-transpose, stride 2)
    layer3   PixelNorm, 3x3 conv                                  -> (N, nf(8), 8, 8)
    output1  ToRGB                                                -> (N, C, 8, 8)
    ...
    layer{2L-3}, output{L-2}                                      -> (N, C, R, R)
    upsample nearest x2 (no parameters; used by the LOD switch)

Every conv block is: PixelNorm over channels (``x / sqrt(mean_c(x^2) + 1e-8)``), optional nearest x2
upsampling, bias-free conv with the raw stored weight, ``* gain / sqrt(fan_in)`` and ``+ bias``
(``wscale``), then LeakyReLU(0.2) (no sqrt(2) activation gain), or nothing for ToRGB. ``gain`` is sqrt(2)
for the convs and 1 for ToRGB. Channels: ``nf(res) = min(fmaps_base // res, fmaps_max)``.

State-dict keys: ``lod``, ``layerN.conv.weight`` ``[out, in, k, k]`` (``layerN.weight`` ``[k, k, in, out]``
for the fused up-sampling layers), ``layerN.wscale.bias``, ``outputN.conv.weight``, ``outputN.wscale.bias``.
The intermediate ``outputN`` layers are kept (they are in the official state dicts and the LOD switch uses them).
"""

from __future__ import annotations

import math
import numbers
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from . import register_family
from .base import Generator

__all__ = ["PGGANGenerator"]

_RESOLUTIONS_ALLOWED = (8, 16, 32, 64, 128, 256, 512, 1024)
_INIT_RES = 4


class PixelNormLayer(nn.Module):
    """``x / sqrt(mean over channels of x^2 + eps)``; (N, C, H, W) -> (N, C, H, W)."""

    def __init__(self, epsilon: float = 1e-8) -> None:
        super().__init__()
        self.epsilon = epsilon

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / torch.sqrt(torch.mean(x**2, dim=1, keepdim=True) + self.epsilon)


class ResolutionScalingLayer(nn.Module):
    """Nearest-neighbour up-sampling by ``scale_factor``; (N, C, H, W) -> (N, C, 2H, 2W)."""

    def __init__(self, scale_factor: int = 2) -> None:
        super().__init__()
        self.scale_factor = scale_factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.scale_factor, mode="nearest")


class WScaleLayer(nn.Module):
    """Equalised learning rate at run time: ``x * gain / sqrt(in * k * k) + bias``.

    Holds the bias (state-dict key ``<block>.wscale.bias``, shape [out_channels]).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, gain: float) -> None:
        super().__init__()
        fan_in = in_channels * kernel_size * kernel_size
        self.scale = gain / math.sqrt(fan_in)
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.bias.view(1, -1, 1, 1)


class ConvBlock(nn.Module):
    """PixelNorm -> [nearest x2] -> conv (no bias) -> wscale (scale + bias) -> [LeakyReLU(0.2)].

    With ``upsample and fused_scale`` the up-sampling and the 3x3 conv are one 4x4 transposed conv with
    stride 2, built from the stored ``weight`` ``[k, k, in, out]`` as the official code builds it.

    Input (N, in_channels, H, W); output (N, out_channels, H', W') with H' = 2H when up-sampling and
    H' = H + 2 * padding - kernel_size + 1 otherwise.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int = 3,
        padding: int = 1,
        upsample: bool = False,
        fused_scale: bool = False,
        wscale_gain: float = math.sqrt(2.0),
        activation: str = "lrelu",
    ) -> None:
        super().__init__()
        self.pixel_norm = PixelNormLayer()
        self.use_conv2d_transpose = bool(upsample and fused_scale)
        self.upsample: nn.Module = ResolutionScalingLayer() if (upsample and not fused_scale) else nn.Identity()
        if self.use_conv2d_transpose:
            # Stored as [k, k, in, out]; equal to the TF variable layout of Conv0_up.
            self.weight = nn.Parameter(torch.randn(kernel_size, kernel_size, in_channels, out_channels))
            self.scale = wscale_gain / math.sqrt(in_channels * kernel_size * kernel_size)
        else:
            self.conv = nn.Conv2d(
                in_channels, out_channels, kernel_size=kernel_size, stride=1, padding=padding, bias=False
            )
        self.wscale = WScaleLayer(in_channels, out_channels, kernel_size, wscale_gain)
        if activation == "lrelu":
            self.activate: nn.Module = nn.LeakyReLU(negative_slope=0.2)
        elif activation == "linear":
            self.activate = nn.Identity()
        else:
            raise ValueError(f"unknown activation {activation!r}; expected 'lrelu' or 'linear'")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pixel_norm(x)
        x = self.upsample(x)
        if self.use_conv2d_transpose:
            kernel = self.weight * self.scale
            kernel = F.pad(kernel, (0, 0, 0, 0, 1, 1, 1, 1), "constant", 0.0)  # [k+2, k+2, in, out]
            kernel = kernel[1:, 1:] + kernel[:-1, 1:] + kernel[1:, :-1] + kernel[:-1, :-1]  # [k+1, k+1, in, out]
            kernel = kernel.permute(2, 3, 0, 1)  # [in, out, k+1, k+1]
            x = F.conv_transpose2d(x, kernel, stride=2, padding=1)
            x = x / self.scale  # wscale multiplies it back: one scaling in total
        else:
            x = self.conv(x)
        x = self.wscale(x)
        return self.activate(x)


class _ZToMap(nn.Module):
    """Views a latent (N, z_dim) or (N, z_dim, 1, 1) as the (N, z_dim, 1, 1) map that ``layer0`` reads."""

    def __init__(self, z_dim: int) -> None:
        super().__init__()
        self.z_dim = z_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return _as_z_map(z, self.z_dim)


def _as_z_map(z: torch.Tensor, z_dim: int) -> torch.Tensor:
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"z must be a torch.Tensor, got {type(z).__name__}")
    if not (
        (z.ndim == 2 and z.shape[1] == z_dim)
        or (z.ndim == 4 and z.shape[1] == z_dim and z.shape[2] == 1 and z.shape[3] == 1)
    ):
        raise ValueError(f"z must have shape (N, {z_dim}) or (N, {z_dim}, 1, 1), got {tuple(z.shape)}")
    return z.reshape(z.shape[0], z_dim, 1, 1)


@register_family
class PGGANGenerator(Generator):
    """PGGAN generator with mGANprior's ``PGGANGeneratorNet`` state-dict names and numerics.

    Args:
        resolution: output size R, one of 8, 16, ..., 1024.
        z_space_dim: latent size (512 for the released models).
        image_channels: output channels C.
        fused_scale: up-sample with a fused 4x4 transposed conv (``layerN.weight``) instead of
            nearest x2 + 3x3 conv. The released models use False.
        fmaps_base, fmaps_max: channels ``nf(res) = min(fmaps_base // res, fmaps_max)``.

    ``synthesis(z)`` maps z (N, z_space_dim) to raw images (N, C, R, R), roughly [-1, 1] for trained weights
    (no tanh, no clamp).
    """

    family = "pggan"

    def __init__(
        self,
        resolution: int,
        z_space_dim: int = 512,
        image_channels: int = 3,
        fused_scale: bool = False,
        fmaps_base: int = 16384,
        fmaps_max: int = 512,
    ) -> None:
        super().__init__()
        if resolution not in _RESOLUTIONS_ALLOWED:
            raise ValueError(f"PGGAN resolution must be one of {list(_RESOLUTIONS_ALLOWED)}, got {resolution}")
        for name, value in (("z_space_dim", z_space_dim), ("image_channels", image_channels),
                            ("fmaps_base", fmaps_base), ("fmaps_max", fmaps_max)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.init_kwargs = {
            "resolution": int(resolution),
            "z_space_dim": int(z_space_dim),
            "image_channels": int(image_channels),
            "fused_scale": bool(fused_scale),
            "fmaps_base": int(fmaps_base),
            "fmaps_max": int(fmaps_max),
        }
        self.resolution = int(resolution)
        self.z_space_dim = int(z_space_dim)
        self.z_dim = self.z_space_dim
        self.w_dim = None
        self.num_ws = 0
        self.image_channels = int(image_channels)
        self.channels = self.image_channels
        self.fused_scale = bool(fused_scale)
        self.fmaps_base = int(fmaps_base)
        self.fmaps_max = int(fmaps_max)

        self.init_res_log2 = int(math.log2(_INIT_RES))
        self.final_res_log2 = int(math.log2(self.resolution))
        self.num_layers = (self.final_res_log2 - self.init_res_log2 + 1) * 2

        # Registered first, as in the official code: `lod` leads the state dict.
        self.lod = nn.Parameter(torch.zeros(()))

        for res_log2 in range(self.init_res_log2, self.final_res_log2 + 1):
            res = 2**res_log2
            block_idx = res_log2 - self.init_res_log2
            if res == _INIT_RES:
                first = ConvBlock(self.z_space_dim, self.get_nf(res), kernel_size=_INIT_RES, padding=3)
            else:
                first = ConvBlock(
                    self.get_nf(res // 2), self.get_nf(res), upsample=True, fused_scale=self.fused_scale
                )
            self.add_module(f"layer{2 * block_idx}", first)
            self.add_module(f"layer{2 * block_idx + 1}", ConvBlock(self.get_nf(res), self.get_nf(res)))
            self.add_module(
                f"output{block_idx}",
                ConvBlock(
                    self.get_nf(res), self.image_channels, kernel_size=1, padding=0,
                    wscale_gain=1.0, activation="linear",
                ),
            )
        self.upsample = ResolutionScalingLayer()

    # ------------------------------------------------------------------ helpers
    def get_nf(self, res: int) -> int:
        """Number of feature maps at resolution ``res``."""
        return min(self.fmaps_base // res, self.fmaps_max)

    @property
    def num_blocks(self) -> int:
        """Number of resolutions 4, 8, ..., R."""
        return self.final_res_log2 - self.init_res_log2 + 1

    # ------------------------------------------------------------------ forward
    def synthesis(self, z: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        """Raw image (N, C, R, R) from z (N, z_dim) or (N, z_dim, 1, 1); no tanh, no clamp.

        ``noise_mode`` is accepted for interface compatibility and ignored (PGGAN has no noise inputs).
        The ``lod`` parameter acts as the official hard switch: the block at resolution 2**r runs only when
        ``r + lod <= log2(R)``; otherwise the previous block's image is nearest-upsampled x2.
        """
        x = _as_z_map(z, self.z_space_dim)
        lod = float(self.lod.detach().cpu().item())
        image: torch.Tensor | None = None
        for res_log2 in range(self.init_res_log2, self.final_res_log2 + 1):
            if res_log2 + lod <= self.final_res_log2:
                block_idx = res_log2 - self.init_res_log2
                x = getattr(self, f"layer{2 * block_idx}")(x)
                x = getattr(self, f"layer{2 * block_idx + 1}")(x)
                image = getattr(self, f"output{block_idx}")(x)
            else:
                if image is None:
                    raise ValueError(f"lod={lod} leaves no block to run (resolution {self.resolution})")
                image = self.upsample(image)
        assert image is not None
        return image

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Same as ``synthesis(z)``: the official ``net(z)``."""
        return self.synthesis(z)

    # ------------------------------------------------------------------ multi-code split (mGANprior)
    def composing_module_names(self) -> list[str]:
        """Names of the composing modules: ``layer0 ... layer{num_layers-1}, output{num_blocks-1}``."""
        return [f"layer{i}" for i in range(self.num_layers)] + [f"output{self.num_blocks - 1}"]

    def composing_modules(self) -> nn.Sequential:
        """The sequence mGANprior builds for multi-code inversion, as an ``nn.Sequential`` keyed by name.

        The network's children in registration order without the trailing ``upsample`` and without every
        ``outputN`` but the last. The modules are shared with this generator (no copies). The first module
        reads z as (N, z_dim, 1, 1); running them all in order gives ``synthesis(z)`` at ``lod = 0``.
        """
        return nn.Sequential(OrderedDict((n, getattr(self, n)) for n in self.composing_module_names()))

    def composing_feature_shape(self, k: int) -> tuple[int, int, int]:
        """(C, H, W) of the output of the first ``k`` composing modules (k = 0: the z map (z_dim, 1, 1))."""
        n = self.num_layers + 1
        if not isinstance(k, numbers.Integral) or isinstance(k, bool) or not 0 <= k <= n:
            raise ValueError(f"k must be an integer in [0, {n}], got {k!r}")
        k = int(k)
        if k == 0:
            return (self.z_space_dim, 1, 1)
        if k == n:
            return (self.image_channels, self.resolution, self.resolution)
        res = _INIT_RES * 2 ** ((k - 1) // 2)
        return (self.get_nf(res), res, res)

    def split(self, k: int) -> tuple[nn.Module, nn.Module]:
        """(head, tail) at composing module ``k``, with ``tail(head(z)) == synthesis(z)`` at ``lod = 0``.

        Args:
            k: number of composing modules in the head, ``1 <= k < len(composing_modules())``.
        Returns:
            head: z (N, z_dim) or (N, z_dim, 1, 1) -> feature (N, C_k, H_k, W_k)
                (see ``composing_feature_shape(k)``);
            tail: feature (N, C_k, H_k, W_k) -> raw image (N, C, R, R).
            Both share this generator's parameters. ``lod`` is ignored, as in mGANprior.
        """
        modules = list(self.composing_modules().named_children())
        n = len(modules)
        if not isinstance(k, numbers.Integral) or isinstance(k, bool) or not 1 <= k < n:
            raise ValueError(
                f"PGGAN split point k must be an integer with 1 <= k < {n} (the number of composing modules "
                f"{modules[0][0]}..{modules[-1][0]}), got {k!r}"
            )
        k = int(k)
        head = nn.Sequential(OrderedDict([("z_to_map", _ZToMap(self.z_space_dim))] + modules[:k]))
        tail = nn.Sequential(OrderedDict(modules[k:]))
        return head, tail

    def extra_repr(self) -> str:
        return super().extra_repr() + f", fused_scale={self.fused_scale}"
