"""φ-networks for BIGPrior's fusion ``x̂ = φ⊙g + (1−φ)⊙d(y)``. They work in the shifted domain [−0.5, 0.5].

* `DnCNNPhi`: the official DnCNN-17 backbone. ``φ = y − body(y)``, 3 output channels, **no** output activation
  (φ is unbounded), only the observation y as input. Module names follow the official checkpoint once its
  ``module.backbone.`` prefix is stripped: ``dncnn.{i}.*`` with convs at i = 0, 2, 5, …, 47 and BatchNorm at
  i = 3, 6, …, 45.
* `BoundedPhi`: genprior's variant. ``φ = sigmoid(body([y, g, mask]))`` in [0, 1]; the net also sees the GAN
  estimate g (``use_g=False`` for an ablation) and the hole mask when asked (``use_mask=True``). Lighter by
  default (8 layers, 32 features, 57,696 parameters for colorization).

Both are called as ``net(y, g, mask)`` with y (N, C_y, H, W), g (N, 3, H, W) and mask (N, 1, H, W) or None,
all shifted by −0.5 (the mask is not shifted; 1 marks a hole), and return φ of shape (N, 3, H, W).
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["DnCNNPhi", "BoundedPhi", "build_phi_net", "NET_KINDS"]

NET_KINDS = ("dncnn", "bounded")


def _dncnn_body(c_in: int, c_out: int, layers: int, features: int) -> nn.Sequential:
    if layers < 2:
        raise ValueError(f"a DnCNN needs at least 2 layers, got {layers}")
    mods: list[nn.Module] = [nn.Conv2d(c_in, features, 3, padding=1, bias=False), nn.ReLU(inplace=True)]
    for _ in range(layers - 2):
        mods += [nn.Conv2d(features, features, 3, padding=1, bias=False), nn.BatchNorm2d(features),
                 nn.ReLU(inplace=True)]
    mods.append(nn.Conv2d(features, c_out, 3, padding=1, bias=False))
    return nn.Sequential(*mods)


def _official_init(module: nn.Module) -> None:
    """The official init: conv Kaiming-normal (fan_in); BN weight N(0, √(2/9/64)) clamped to ±0.025, bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
        elif isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.normal_(0, math.sqrt(2.0 / 9.0 / 64.0)).clamp_(-0.025, 0.025)
            nn.init.zeros_(m.bias)


class DnCNNPhi(nn.Module):
    """Official BIGPrior φ-net: ``φ = y − dncnn(y)`` (y broadcast over 3 channels when C_y = 1); sees only y."""

    kind = "dncnn"

    def __init__(self, in_channels: int = 1, layers: int = 17, features: int = 64):
        super().__init__()
        self.in_channels, self.layers, self.features = in_channels, layers, features
        self.dncnn = _dncnn_body(in_channels, 3, layers, features)
        _official_init(self)

    def config(self) -> dict:
        return {"net": self.kind, "in_channels": self.in_channels, "layers": self.layers,
                "features": self.features}

    def forward(self, y: torch.Tensor, g: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        return y - self.dncnn(y)


class BoundedPhi(nn.Module):
    """genprior's φ-net: ``φ = sigmoid(body(cat[y, g, mask?]))`` ∈ [0, 1]; starts at φ = 0.5 everywhere.

    With ``use_mask`` φ is also fixed to 1 in the holes (mask = 1), where y holds no data: the net only
    decides how to blend where something was observed.
    """

    kind = "bounded"

    def __init__(self, in_channels: int = 1, layers: int = 8, features: int = 32, use_mask: bool = False,
                 use_g: bool = True):
        super().__init__()
        self.in_channels, self.layers, self.features = in_channels, layers, features
        self.use_mask, self.use_g = bool(use_mask), bool(use_g)
        self.body = _dncnn_body(in_channels + 3 * self.use_g + int(self.use_mask), 3, layers, features)
        _official_init(self)
        nn.init.zeros_(self.body[-1].weight)  # sigmoid(0) = 0.5: start from an even blend

    def config(self) -> dict:
        return {"net": self.kind, "in_channels": self.in_channels, "layers": self.layers,
                "features": self.features, "use_mask": self.use_mask, "use_g": self.use_g}

    def forward(self, y: torch.Tensor, g: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        parts = [y]
        if self.use_g:
            if g is None:
                raise ValueError("BoundedPhi needs the GAN estimate g (built with use_g=True)")
            parts.append(g)
        if self.use_mask:
            if mask is None:
                raise ValueError("this BoundedPhi was built with use_mask=True: pass the hole mask")
            parts.append(mask.to(y.dtype))
        phi = torch.sigmoid(self.body(torch.cat(parts, dim=1)))
        if self.use_mask:
            phi = torch.maximum(phi, mask.to(phi.dtype))  # holes: all prior
        return phi


def build_phi_net(config: dict) -> nn.Module:
    """A φ-net from its ``config()`` dict (``net`` is "dncnn" or "bounded")."""
    cfg = dict(config)
    kind = cfg.pop("net", None)
    if kind == "dncnn":
        cfg.pop("use_mask", None)
        return DnCNNPhi(**cfg)
    if kind == "bounded":
        return BoundedPhi(**cfg)
    raise ValueError(f"unknown fusion net {kind!r}; expected one of {NET_KINDS}")
