"""DCGAN generator in the layout of the PyTorch DCGAN tutorial (keys ``main.N.*``).

For resolution R = 4 * 2**n there are n up-blocks after the first projection, each
``ConvTranspose2d(bias=False) - BatchNorm2d - ReLU``, and a final ``ConvTranspose2d - Tanh``::

    main.0   ConvTranspose2d(nz, ngf*2**(n-1), 4, 1, 0)    (N, nz, 1, 1) -> (N, ngf*2**(n-1), 4, 4)
    main.1   BatchNorm2d,  main.2 ReLU
    main.3   ConvTranspose2d(ngf*2**(n-1), ngf*2**(n-2), 4, 2, 1)          -> 8 x 8
    ...
    main.3n  ConvTranspose2d(ngf, nc, 4, 2, 1)                             -> (N, nc, R, R)
    main.3n+1 Tanh

For R = 64 (n = 4) this is exactly the tutorial: channels ngf*8, ngf*4, ngf*2, ngf, keys ``main.0.weight``
to ``main.12.weight``. R = 32 drops the widest block (ngf*4 first), R = 128 adds one (ngf*16 first).
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Any, Mapping

import torch
from torch import nn

from ..errors import CheckpointError
from . import register_family
from .base import Generator

__all__ = ["DCGANGenerator", "dcgan_config_from_state_dict", "dcgan_state_dict_shapes"]

_RESOLUTIONS_ALLOWED = (32, 64, 128)


def _num_up_blocks(resolution: int) -> int:
    """Number of ConvTranspose-BN-ReLU blocks (the first 4x4 projection included): log2(R) - 2."""
    return int(math.log2(resolution)) - 2


def dcgan_state_dict_shapes(nz: int = 100, ngf: int = 64, nc: int = 3, resolution: int = 64) -> dict[str, tuple]:
    """Expected state-dict keys and shapes of ``DCGANGenerator(nz, ngf, nc, resolution)``."""
    n = _num_up_blocks(resolution)
    shapes: dict[str, tuple] = {}
    in_ch = nz
    for i in range(n):
        out_ch = ngf * 2 ** (n - 1 - i)
        shapes[f"main.{3 * i}.weight"] = (in_ch, out_ch, 4, 4)
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"main.{3 * i + 1}.{name}"] = (out_ch,)
        shapes[f"main.{3 * i + 1}.num_batches_tracked"] = ()
        in_ch = out_ch
    shapes[f"main.{3 * n}.weight"] = (in_ch, nc, 4, 4)
    return shapes


def _as_z_map(z: torch.Tensor, nz: int) -> torch.Tensor:
    """z (N, nz) or (N, nz, 1, 1) viewed as (N, nz, 1, 1); ValueError for any other shape."""
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"z must be a torch.Tensor, got {type(z).__name__}")
    if not ((z.ndim == 2 and z.shape[1] == nz) or (z.ndim == 4 and tuple(z.shape[1:]) == (nz, 1, 1))):
        raise ValueError(f"z must have shape (N, {nz}) or (N, {nz}, 1, 1), got {tuple(z.shape)}")
    return z.reshape(z.shape[0], nz, 1, 1)


class _DCGANHead(nn.Module):
    """z (N, nz) or (N, nz, 1, 1) -> the first k modules of ``main`` (shared, not copied)."""

    def __init__(self, nz: int, body: nn.Sequential) -> None:
        super().__init__()
        self.nz = nz
        self.main = body

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(_as_z_map(z, self.nz))


@register_family
class DCGANGenerator(Generator):
    """The PyTorch DCGAN tutorial generator.

    Args:
        nz: latent size.
        ngf: width of the last hidden block (the first has ``ngf * resolution / 8`` channels).
        nc: output channels.
        resolution: output size, 32, 64 or 128.

    ``synthesis(z)``: z (N, nz) or (N, nz, 1, 1) -> tanh output (N, nc, R, R) in [-1, 1]. BatchNorm follows
    the module's train/eval mode as usual; pretrained weights are meant to be used in ``eval()`` mode.
    """

    family = "dcgan"

    def __init__(self, nz: int = 100, ngf: int = 64, nc: int = 3, resolution: int = 64) -> None:
        super().__init__()
        if resolution not in _RESOLUTIONS_ALLOWED:
            raise ValueError(f"DCGAN resolution must be one of {list(_RESOLUTIONS_ALLOWED)}, got {resolution}")
        for name, value in (("nz", nz), ("ngf", ngf), ("nc", nc)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        nz, ngf, nc, resolution = int(nz), int(ngf), int(nc), int(resolution)
        self.init_kwargs = {"nz": nz, "ngf": ngf, "nc": nc, "resolution": resolution}
        self.nz, self.ngf, self.nc = nz, ngf, nc
        self.z_dim = nz
        self.w_dim = None
        self.num_ws = 0
        self.resolution = resolution
        self.channels = nc

        n = _num_up_blocks(resolution)
        layers: list[nn.Module] = []
        in_ch = nz
        for i in range(n):
            out_ch = ngf * 2 ** (n - 1 - i)
            stride, padding = (1, 0) if i == 0 else (2, 1)
            layers += [
                nn.ConvTranspose2d(in_ch, out_ch, 4, stride, padding, bias=False),
                nn.BatchNorm2d(out_ch),
                nn.ReLU(True),
            ]
            in_ch = out_ch
        layers += [nn.ConvTranspose2d(in_ch, nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    # ------------------------------------------------------------------ construction from weights
    @classmethod
    def config_from_state_dict(cls, sd: Mapping[str, torch.Tensor]) -> dict[str, int]:
        """Same as :func:`dcgan_config_from_state_dict`."""
        return dcgan_config_from_state_dict(sd)

    @classmethod
    def from_state_dict(cls, sd: Mapping[str, torch.Tensor]) -> "DCGANGenerator":
        """A generator built from the shapes of ``sd`` with its weights loaded (as float32), in eval mode.

        Raises CheckpointError when the keys or shapes do not fit the layout.
        """
        G = cls(**dcgan_config_from_state_dict(sd))
        sd32 = {k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()}
        if not any(k.endswith("num_batches_tracked") for k in sd32):  # older torch saves lack this buffer
            for k, v in G.state_dict().items():
                if k.endswith("num_batches_tracked"):
                    sd32[k] = v
        G.load_state_dict(sd32, strict=True)
        return G.eval()

    # ------------------------------------------------------------------ forward
    def synthesis(self, z: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        """Images (N, nc, R, R) in [-1, 1] (tanh) from z (N, nz) or (N, nz, 1, 1); ``noise_mode`` is ignored."""
        return self.main(_as_z_map(z, self.nz))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Same as ``synthesis(z)`` (the tutorial's ``netG(z)``)."""
        return self.synthesis(z)

    def split(self, k: int) -> tuple[nn.Module, nn.Module]:
        """(head, tail) = (main[:k], main[k:]) with ``tail(head(z)) == synthesis(z)``.

        Args:
            k: a module boundary of ``main``, ``1 <= k < len(main)``.
        Returns:
            head: z (N, nz) or (N, nz, 1, 1) -> feature map (N, C_k, H_k, W_k);
            tail: feature map -> image (N, nc, R, R) in [-1, 1]. Both share this generator's parameters.
        """
        n = len(self.main)
        if not isinstance(k, numbers.Integral) or isinstance(k, bool) or not 1 <= k < n:
            raise ValueError(f"DCGAN split point k must be an integer with 1 <= k < {n} (modules of main), got {k!r}")
        k = int(k)
        return _DCGANHead(self.nz, self.main[:k]), self.main[k:]

    def extra_repr(self) -> str:
        return super().extra_repr() + f", ngf={self.ngf}"


_KEY_RE = re.compile(r"^main\.(\d+)\.(weight|bias|running_mean|running_var|num_batches_tracked)$")


def dcgan_config_from_state_dict(sd: Mapping[str, Any]) -> dict[str, int]:
    """Infer ``{"nz", "ngf", "nc", "resolution"}`` of a tutorial-layout DCGAN state dict from tensor shapes.

    The ConvTranspose weights sit at ``main.0, main.3, ...`` with shape [in, out, 4, 4]; the last one gives
    ``nc``, the first ``nz``, their number the resolution, the one before last ``ngf``. Every key and shape
    is then checked against the layout built from the inferred config.

    Raises:
        CheckpointError: keys missing or unexpected, a shape that does not fit, or an unsupported depth.
    """
    if not isinstance(sd, Mapping) or not sd:
        raise CheckpointError("DCGAN state dict is empty or not a mapping of names to tensors")
    foreign = [k for k in sd if not _KEY_RE.match(k)]
    if foreign:
        raise CheckpointError(
            f"not a DCGAN tutorial-layout state dict (keys main.N.*): unexpected keys {sorted(foreign)[:8]}"
        )
    conv_idx = sorted(
        int(_KEY_RE.match(k).group(1))  # type: ignore[union-attr]
        for k, v in sd.items()
        if k.endswith(".weight") and getattr(v, "ndim", None) == 4
    )
    if not conv_idx or conv_idx[0] != 0:
        raise CheckpointError("DCGAN state dict has no 4-D ConvTranspose2d weight 'main.0.weight'")
    n = len(conv_idx) - 1  # up-blocks with BatchNorm
    resolution = 4 * 2**n
    if resolution not in _RESOLUTIONS_ALLOWED:
        raise CheckpointError(
            f"DCGAN state dict has {len(conv_idx)} ConvTranspose2d weights (at main.{conv_idx}), i.e. "
            f"resolution {resolution}; supported: {list(_RESOLUTIONS_ALLOWED)}"
        )
    expected_idx = [3 * i for i in range(n + 1)]
    if conv_idx != expected_idx:
        raise CheckpointError(
            f"DCGAN ConvTranspose2d weights at main.{conv_idx}, expected main.{expected_idx} for the tutorial layout"
        )
    first, last = sd["main.0.weight"], sd[f"main.{3 * n}.weight"]
    nz, nc = int(first.shape[0]), int(last.shape[1])
    ngf = int(last.shape[0])
    config = {"nz": nz, "ngf": ngf, "nc": nc, "resolution": resolution}

    expected = dcgan_state_dict_shapes(**config)
    missing = [k for k in expected if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = sorted(k for k in sd if k not in expected)
    bad = [
        f"{k}: {tuple(sd[k].shape)} (expected {expected[k]})"
        for k in expected
        if k in sd and tuple(sd[k].shape) != expected[k]
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    if bad:
        problems.append("shape mismatch " + "; ".join(bad))
    if problems:
        raise CheckpointError(f"DCGAN state dict does not fit the layout {config}: " + ", ".join(problems))
    return config
