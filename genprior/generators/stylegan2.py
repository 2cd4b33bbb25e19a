"""StyleGAN2 / StyleGAN2-ADA generator, numerically identical to NVlabs stylegan2-ada-pytorch.

Parameter and buffer names follow the official ``training/networks.py`` so that official state dicts
load strictly; the constructor takes the official keyword arguments (``init_kwargs`` of a pickle).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import torch
from torch import nn

from . import ops
from .base import Generator
from . import register_family


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale each row of (N, D) to unit mean square."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class FullyConnectedLayer(nn.Module):
    """Equalised-learning-rate linear layer: ``act(x @ (W * lr/√in)ᵀ + b * lr)``."""

    def __init__(self, in_features: int, out_features: int, *, bias: bool = True, activation: str = "linear",
                 lr_multiplier: float = 1.0, bias_init: float = 0.0) -> None:
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, in] -> [N, out]
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return ops.bias_act(x.matmul(w.t()), b, act=self.activation)


class MappingNetwork(nn.Module):
    """z (N, z_dim) [+ label c (N, c_dim)] -> ws (N, num_ws, w_dim)."""

    def __init__(self, *, z_dim: int, c_dim: int, w_dim: int, num_ws: int | None, num_layers: int = 8,
                 embed_features: int | None = None, layer_features: int | None = None,
                 activation: str = "lrelu", lr_multiplier: float = 0.01, w_avg_beta: float | None = 0.995) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers, self.w_avg_beta = num_layers, w_avg_beta
        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for i in range(num_layers):
            layer = FullyConnectedLayer(features[i], features[i + 1], activation=activation, lr_multiplier=lr_multiplier)
            setattr(self, f"fc{i}", layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, *, update_w_avg: bool = False) -> torch.Tensor:
        x = normalize_2nd_moment(z.float()) if self.z_dim > 0 else None
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"this generator is conditional: pass labels c of shape (N, {self.c_dim})")
            y = normalize_2nd_moment(self.embed(c.float()))
            x = torch.cat([x, y], dim=1) if x is not None else y
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        if update_w_avg and self.w_avg_beta is not None:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            assert self.w_avg_beta is not None
            if self.num_ws is None or truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x = x.clone()
                x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution (optionally 2x up-sampling) + noise + bias + lrelu·√2 (+ clamp)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, *, kernel_size: int = 3,
                 up: int = 1, use_noise: bool = True, activation: str = "lrelu",
                 resample_filter: list[int] = (1, 3, 3, 1), conv_clamp: float | None = None,
                 channels_last: bool = False) -> None:
        super().__init__()
        self.resolution, self.up, self.use_noise = resolution, up, use_noise
        self.activation, self.conv_clamp = activation, conv_clamp
        self.register_buffer("resample_filter", ops.setup_filter(list(resample_filter)))
        self.padding = kernel_size // 2
        self.act_gain = ops.SQRT2 if activation == "lrelu" else 1.0
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x: torch.Tensor, w: torch.Tensor, *, noise_mode: str = "const", fused_modconv: bool = True,
                gain: float = 1.0, noise: torch.Tensor | None = None) -> torch.Tensor:
        """x (N, I, R/up, R/up), w (N, w_dim) -> (N, O, R, R). ``noise`` (R, R) or (N, 1, R, R) overrides the mode."""
        styles = self.affine(w)
        if self.use_noise:
            if noise is None:
                if noise_mode == "random":
                    noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device)
                elif noise_mode == "const":
                    noise = self.noise_const
                elif noise_mode != "none":
                    raise ValueError(f"noise_mode must be 'const', 'random' or 'none', not {noise_mode!r}")
            if noise is not None:
                noise = noise * self.noise_strength
        else:
            noise = None
        x = ops.modulated_conv2d(x, self.weight, styles, noise=noise, up=self.up, padding=self.padding,
                                 resample_filter=self.resample_filter, flip_weight=(self.up == 1), fused=fused_modconv)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return ops.bias_act(x, self.bias, act=self.activation, gain=self.act_gain * gain, clamp=clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 convolution without demodulation: features -> image channels."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, *, kernel_size: int = 1,
                 conv_clamp: float | None = None, channels_last: bool = False) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size * kernel_size)

    def forward(self, x: torch.Tensor, w: torch.Tensor, *, fused_modconv: bool = True) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = ops.modulated_conv2d(x, self.weight, styles, demodulate=False, fused=fused_modconv)
        return ops.bias_act(x, self.bias, clamp=self.conv_clamp)


class Conv2dLayer(nn.Module):
    """Equalised-learning-rate convolution with optional 2x up- or down-sampling (skip paths, discriminator)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, bias: bool = True,
                 activation: str = "linear", up: int = 1, down: int = 1, resample_filter: list[int] = (1, 3, 3, 1),
                 conv_clamp: float | None = None) -> None:
        super().__init__()
        self.activation, self.up, self.down, self.conv_clamp = activation, up, down, conv_clamp
        self.register_buffer("resample_filter", ops.setup_filter(list(resample_filter)))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.act_gain = ops.SQRT2 if activation == "lrelu" else 1.0
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels])) if bias else None

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = self.weight * self.weight_gain
        x = ops.conv2d_resample(x, w, self.resample_filter, up=self.up, down=self.down, padding=self.padding,
                                flip_weight=(self.up == 1))
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return ops.bias_act(x, self.bias, act=self.activation, gain=self.act_gain * gain, clamp=clamp)


class SynthesisBlock(nn.Module):
    """One resolution: [const | up-conv0] -> conv1 -> [toRGB], with 'orig', 'skip' or 'resnet' wiring."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 is_last: bool, *, architecture: str = "skip", resample_filter: list[int] = (1, 3, 3, 1),
                 conv_clamp: float | None = None, use_fp16: bool = False, fp16_channels_last: bool = False,
                 **layer_kwargs: Any) -> None:
        super().__init__()
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"unknown synthesis architecture {architecture!r}")
        self.in_channels, self.resolution, self.is_last = in_channels, resolution, is_last
        self.architecture, self.use_fp16 = architecture, use_fp16
        self.register_buffer("resample_filter", ops.setup_filter(list(resample_filter)))
        self.num_conv = self.num_torgb = 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2,
                                        resample_filter=resample_filter, conv_clamp=conv_clamp, **layer_kwargs)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp,
                                    **layer_kwargs)
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=2,
                                    resample_filter=resample_filter)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor, *,
                force_fp32: bool = True, fused_modconv: bool | None = None, noise_mode: str = "const",
                noise: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """ws (N, num_conv + num_torgb, w_dim); x (N, I, R/2, R/2) or None for the first block."""
        w_iter = iter(ws.unbind(dim=1))
        noise = noise or {}
        # fp16 only where it runs well (CUDA); on other devices the fp16 layers run in fp32.
        use_fp16 = self.use_fp16 and not force_fp32 and ws.device.type == "cuda"
        dtype = torch.float16 if use_fp16 else torch.float32
        if fused_modconv is None:
            fused_modconv = (not self.training) and (dtype == torch.float32 or (x is not None and x.shape[0] == 1))
        kw = dict(noise_mode=noise_mode, fused_modconv=fused_modconv)
        if self.in_channels == 0:
            x = self.const.to(dtype).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
            x = self.conv1(x, next(w_iter), noise=noise.get("conv1"), **kw)
        elif self.architecture == "resnet":
            x = x.to(dtype)
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x, next(w_iter), noise=noise.get("conv0"), **kw)
            x = self.conv1(x, next(w_iter), gain=math.sqrt(0.5), noise=noise.get("conv1"), **kw)
            x = y + x
        else:
            x = x.to(dtype)
            x = self.conv0(x, next(w_iter), noise=noise.get("conv0"), **kw)
            x = self.conv1(x, next(w_iter), noise=noise.get("conv1"), **kw)
        if img is not None:
            img = ops.upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv).float()
            img = img + y if img is not None else y
        return x, img


class SynthesisNetwork(nn.Module):
    """ws (N, num_ws, w_dim) -> image (N, img_channels, R, R), roughly [-1, 1] for trained weights."""

    def __init__(self, *, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, num_fp16_res: int = 0, **block_kwargs: Any) -> None:
        super().__init__()
        log2 = int(np.log2(img_resolution))
        if img_resolution < 4 or 2**log2 != img_resolution:
            raise ValueError(f"img_resolution must be a power of two >= 4, not {img_resolution}")
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.block_resolutions = [2**i for i in range(2, log2 + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 8)
        self.num_ws = 0
        for res in self.block_resolutions:
            in_channels = channels[res // 2] if res > 4 else 0
            is_last = res == img_resolution
            block = SynthesisBlock(in_channels, channels[res], w_dim, res, img_channels, is_last,
                                   use_fp16=(res >= fp16_resolution), **block_kwargs)
            self.num_ws += block.num_conv
            if is_last:
                self.num_ws += block.num_torgb
            setattr(self, f"b{res}", block)

    def w_slices(self) -> dict[int, tuple[int, int]]:
        """Block resolution -> (first, end) rows of ws it reads; toRGB shares its row with the next conv0."""
        out, i = {}, 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            out[res] = (i, i + block.num_conv + block.num_torgb)
            i += block.num_conv
        return out

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", force_fp32: bool = True,
                fused_modconv: bool | None = None, noise: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """``noise`` maps layer names like ``"b8.conv0"`` to maps (R, R) or (N, 1, R, R) used instead of the mode."""
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must have shape (N, {self.num_ws}, {self.w_dim}), got {tuple(ws.shape)}")
        x = img = None
        ws = ws.float()
        for res, (a, b) in self.w_slices().items():
            x, img = getattr(self, f"b{res}")(x, img, ws[:, a:b], force_fp32=force_fp32, fused_modconv=fused_modconv,
                                              noise_mode=noise_mode, noise=block_noise(noise, res))
        return img

    def split(self, k: int) -> tuple["SynthesisHead", "SynthesisTail"]:
        """(head, tail) at block resolution ``k``; see `SynthesisHead` and `SynthesisTail`.

        ``tail(head(ws), ws) == self(ws)`` exactly (same ops in the same order).

        Raises:
            ValueError: ``k`` is not a block resolution below the output resolution.
        """
        valid = self.block_resolutions[:-1]
        if not isinstance(k, numbers.Integral) or isinstance(k, bool) or k not in valid:
            raise ValueError(f"StyleGAN2 split point k must be a block resolution below {self.img_resolution}, "
                             f"one of {valid} (the head renders blocks b4..b<k>), got {k!r}")
        return SynthesisHead(self, int(k)), SynthesisTail(self, int(k))

    def noise_shapes(self) -> dict[str, tuple[int, int]]:
        """Names and (R, R) shapes of every noise input, in synthesis order."""
        out = {}
        for res in self.block_resolutions:
            for name in ("conv0", "conv1"):
                layer = getattr(getattr(self, f"b{res}"), name, None)
                if layer is not None and layer.use_noise:
                    out[f"b{res}.{name}"] = (res, res)
        return out


def block_noise(noise: dict[str, torch.Tensor] | None, res: int) -> dict[str, torch.Tensor]:
    """The maps of block ``res`` from a synthesis-level noise dict ("b8.conv0" -> map), keyed "conv0"/"conv1"."""
    return {k.split(".", 1)[1]: v for k, v in (noise or {}).items() if k.startswith(f"b{res}.")}


def _full_ws(ws: torch.Tensor, num_ws: int) -> torch.Tensor:
    """ws (N, num_ws, w_dim) as is, or one w (N, w_dim) repeated to every row."""
    if ws.ndim == 2:
        return ws.unsqueeze(1).expand(-1, num_ws, -1)
    if ws.ndim != 3 or ws.shape[1] != num_ws:
        raise ValueError(f"ws must have shape (N, {num_ws}, w_dim) or (N, w_dim), got {tuple(ws.shape)}")
    return ws


class SynthesisHead(nn.Module):
    """Blocks b4..b<k> of a `SynthesisNetwork`: ws -> the state the next block reads, as one feature map.

    Input: ws (N, num_ws, w_dim), or one w (N, w_dim) for every row; only the rows of blocks <= k are read
    (including block k's toRGB row, which the next block's conv0 shares).
    Output: (N, C_k + img_channels, k, k) for the skip architecture: the block's features x (C_k channels,
    unbounded) with the partial skip image img (img_channels, roughly [-1, 1]) appended as extra channels;
    (N, C_k, k, k) for 'orig' and 'resnet', whose blocks below the output carry no image.
    ``fused_modconv``: None (the synthesis' own choice), or False to modulate activations around one shared
    convolution (StyleGAN2's training path, same values to ~1e-6; faster on a CPU for batches with gradients).
    """

    def __init__(self, synthesis: SynthesisNetwork, k: int) -> None:
        super().__init__()
        self.synthesis, self.k = synthesis, k
        self.fused_modconv: bool | None = None

    def forward(self, ws: torch.Tensor, noise_mode: str = "const",
                noise: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        ws = _full_ws(ws.float(), self.synthesis.num_ws)
        x = img = None
        for res, (a, b) in self.synthesis.w_slices().items():
            if res > self.k:
                break
            x, img = getattr(self.synthesis, f"b{res}")(x, img, ws[:, a:b], noise_mode=noise_mode,
                                                        noise=block_noise(noise, res),
                                                        fused_modconv=self.fused_modconv)
        return x if img is None else torch.cat([x, img], dim=1)


class SynthesisTail(nn.Module):
    """Blocks after b<k> of a `SynthesisNetwork`: (head state, ws) -> raw image (N, img_channels, R, R).

    ``state`` is a `SynthesisHead` output (or a mix of several); ws (N, num_ws, w_dim), or one w (N, w_dim)
    for every row; only the rows of blocks > k are read. The skip image continues from the state's image
    channels, so ``tail(head(ws), ws)`` equals ``synthesis(ws)``. ``fused_modconv`` as for `SynthesisHead`.
    """

    def __init__(self, synthesis: SynthesisNetwork, k: int) -> None:
        super().__init__()
        self.synthesis, self.k = synthesis, k
        self.fused_modconv: bool | None = None
        self.img_channels = synthesis.img_channels if getattr(synthesis, f"b{k}").num_torgb else 0

    def forward(self, state: torch.Tensor, ws: torch.Tensor, noise_mode: str = "const",
                noise: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        ws = _full_ws(ws.float(), self.synthesis.num_ws)
        c = state.shape[1] - self.img_channels
        x, img = (state[:, :c], state[:, c:]) if self.img_channels else (state, None)
        for res, (a, b) in self.synthesis.w_slices().items():
            if res > self.k:
                x, img = getattr(self.synthesis, f"b{res}")(x, img, ws[:, a:b], noise_mode=noise_mode,
                                                            noise=block_noise(noise, res),
                                                            fused_modconv=self.fused_modconv)
        return img


@register_family
class StyleGAN2Generator(Generator):
    """StyleGAN2-ADA ``Generator``: submodules ``mapping`` and ``synthesis`` under the official names."""

    family = "stylegan2"

    def __init__(self, *, z_dim: int, c_dim: int = 0, w_dim: int, img_resolution: int, img_channels: int,
                 mapping_kwargs: dict | None = None, synthesis_kwargs: dict | None = None) -> None:
        super().__init__()
        mapping_kwargs = dict(mapping_kwargs or {})
        synthesis_kwargs = dict(synthesis_kwargs or {})
        self.init_kwargs = dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution,
                                img_channels=img_channels, mapping_kwargs=mapping_kwargs,
                                synthesis_kwargs=synthesis_kwargs)
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution = self.resolution = img_resolution
        self.img_channels = self.channels = img_channels
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                                          **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **mapping_kwargs)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, noise_mode: str = "const", **synthesis_kwargs: Any) -> torch.Tensor:
        """z (N, z_dim) -> image (N, C, R, R), the official ``G(z, c)``."""
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode, **synthesis_kwargs)

    def split(self, k: int) -> tuple[SynthesisHead, SynthesisTail]:
        """(head, tail) at block resolution ``k`` (4, 8, ..., resolution/2), for multi-code inversion.

        Returns:
            head: ws (N, num_ws, w_dim) or w (N, w_dim) -> state (N, C_k [+ img_channels], k, k): block k's
                features, with the skip image so far appended as the last ``img_channels`` channels;
            tail: (state, ws) -> raw image (N, C, R, R), roughly [-1, 1]; reads the W rows of blocks > k.
            ``tail(head(ws), ws) == synthesis(ws, noise_mode="const")``; both share this generator's weights.

        Unlike PGGAN and DCGAN the tail takes a latent too: StyleGAN2's later layers are styled by W rows.

        Raises:
            ValueError: ``k`` is not one of the valid block resolutions (the message lists them).
        """
        return self.synthesis.split(k)

    def noise_inputs(self) -> dict[str, torch.Tensor]:
        """Every noise input's constant map, name ("b8.conv0", ...) -> (R, R), in synthesis order."""
        return {name: self.synthesis.get_submodule(name).noise_const for name in self.synthesis.noise_shapes()}

    def render(self, latent: torch.Tensor, *, noise_mode: str = "const", clamp: bool = True,
               noise: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Images in [0, 1] from ws (N, num_ws, w_dim) or a single w (N, w_dim) broadcast to every layer."""
        if latent.ndim == 2:
            latent = latent.unsqueeze(1).repeat([1, self.num_ws, 1])
        return super().render(latent, noise_mode=noise_mode, clamp=clamp, noise=noise)
