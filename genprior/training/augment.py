"""DiffAugment (Zhao et al. 2020) and ADA-style adaptive augmentation, applied to reals and fakes alike.

Images are (N, C, H, W) in [-1, 1]. Every random draw takes a ``generator`` (a local `torch.Generator` on the
images' device; None falls back to the global RNG). `diff_augment` applies the policy's ops to every image;
with a probability ``p`` each op is applied to each image with probability p instead (ADA's scheme, Karras et
al. 2020). `AdaptiveAugment` keeps p on the device and moves it, every ``ADA_INTERVAL`` steps, by
``sign(E[sign(D(real))] - target) * batch * ADA_INTERVAL / (ada_kimg * 1000)``, clipped to [0, 1], as
StyleGAN2-ADA does: p grows while the discriminator is over-confident on the reals.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

DEFAULT_POLICY = "color,translation,cutout"
ADA_INTERVAL = 4  # steps between adjustments of p (StyleGAN2-ADA's ada_interval)

Gen = torch.Generator | None


def _rand(x: torch.Tensor, gen: Gen, *shape: int) -> torch.Tensor:
    return torch.rand(*shape, device=x.device, dtype=x.dtype, generator=gen)


def brightness(x: torch.Tensor, gen: Gen = None) -> torch.Tensor:
    return x + (_rand(x, gen, x.shape[0], 1, 1, 1) - 0.5)


def saturation(x: torch.Tensor, gen: Gen = None) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (_rand(x, gen, x.shape[0], 1, 1, 1) * 2) + mean


def contrast(x: torch.Tensor, gen: Gen = None) -> torch.Tensor:
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (_rand(x, gen, x.shape[0], 1, 1, 1) + 0.5) + mean


def _offsets(x: torch.Tensor, gen: Gen, low: int, high: int) -> torch.Tensor:
    return torch.randint(low, high, size=[x.shape[0], 1, 1], device=x.device, generator=gen)


def translation(x: torch.Tensor, gen: Gen = None, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ``ratio`` of its size (integer pixels), filling with zeros."""
    n, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty, tx = _offsets(x, gen, -sy, sy + 1), _offsets(x, gen, -sx, sx + 1)
    gb, gy, gx = torch.meshgrid(torch.arange(n, device=x.device), torch.arange(h, device=x.device),
                                torch.arange(w, device=x.device), indexing="ij")
    gy = torch.clamp(gy + ty + 1, 0, h + 1)
    gx = torch.clamp(gx + tx + 1, 0, w + 1)
    x_pad = F.pad(x, [1, 1, 1, 1])
    return x_pad.permute(0, 2, 3, 1)[gb, gy, gx].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, gen: Gen = None, ratio: float = 0.5) -> torch.Tensor:
    """Zero one square of ``ratio`` of the image size at a random position in each image."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy, ox = _offsets(x, gen, 0, h + (1 - ch % 2)), _offsets(x, gen, 0, w + (1 - cw % 2))
    gb, gy, gx = torch.meshgrid(torch.arange(n, device=x.device), torch.arange(ch, device=x.device),
                                torch.arange(cw, device=x.device), indexing="ij")
    gy = torch.clamp(gy + oy - ch // 2, min=0, max=h - 1)
    gx = torch.clamp(gx + ox - cw // 2, min=0, max=w - 1)
    mask = torch.ones(n, h, w, dtype=x.dtype, device=x.device)
    mask[gb, gy, gx] = 0
    return x * mask.unsqueeze(1)


POLICIES = {"color": (brightness, saturation, contrast), "translation": (translation,), "cutout": (cutout,)}


def check_policy(policy: str) -> str:
    """``policy`` with spaces removed if every name in it is known, else ValueError naming the unknown one."""
    names = [p.strip() for p in policy.split(",") if p.strip()]
    for name in names:
        if name not in POLICIES:
            raise ValueError(f"unknown DiffAugment policy {name!r}; known: {', '.join(POLICIES)}")
    return ",".join(names)


def diff_augment(x: torch.Tensor, policy: str = DEFAULT_POLICY, *, generator: Gen = None,
                 p: float | torch.Tensor | None = None) -> torch.Tensor:
    """Apply the comma-separated ``policy`` ("color", "translation", "cutout") in that order; "" is identity.

    ``p`` None applies every op to every image; otherwise each op is applied to each image with probability
    ``p`` (a float or a 0-dim tensor on the images' device), the draw taken before the op's own.
    """
    for name in check_policy(policy).split(",") if policy else ():
        for fn in POLICIES[name]:
            if p is None:
                x = fn(x, generator)
            else:
                keep = _rand(x, generator, x.shape[0], 1, 1, 1) >= p
                x = torch.where(keep, x, fn(x, generator))
    return x.contiguous()


class AdaptiveAugment:
    """The augmentation of one run: a fixed DiffAugment policy, or ADA's adaptive probability over it.

    ``adaptive`` False: every op always (DiffAugment). True: ops with probability ``p`` (starts at 0), tuned
    from the discriminator's signs on the reals toward ``target``. ``p`` and the pending sign statistics are
    0-dim / (2,) tensors on ``device``; updates never read them on the host.
    """

    def __init__(self, policy: str, *, adaptive: bool = False, target: float = 0.6, ada_kimg: float = 500.0,
                 device: torch.device | str = "cpu") -> None:
        self.policy, self.adaptive, self.target, self.ada_kimg = check_policy(policy), adaptive, target, ada_kimg
        self.p = torch.zeros((), device=device)
        self.signs = torch.zeros(2, device=device)  # sum of E[sign(D(real))] per step, steps counted

    def __call__(self, x: torch.Tensor, generator: Gen) -> torch.Tensor:
        if not self.policy:
            return x
        return diff_augment(x, self.policy, generator=generator, p=self.p if self.adaptive else None)

    def observe(self, sign_real: torch.Tensor, step: int, batch: int) -> None:
        """Record one step's batch mean of sign(D(real)); every ``ADA_INTERVAL`` steps adjust ``p``."""
        if not self.adaptive:
            return
        self.signs += torch.stack([sign_real.detach().float().reshape(()), torch.ones((), device=self.p.device)])
        if step % ADA_INTERVAL == 0:
            rt = self.signs[0] / self.signs[1].clamp(min=1)
            adjust = torch.sign(rt - self.target) * (batch * ADA_INTERVAL / (self.ada_kimg * 1000))
            self.p.copy_((self.p + adjust).clamp(0, 1))
            self.signs.zero_()

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {"ada.p": self.p.detach().cpu().clone(), "ada.signs": self.signs.detach().cpu().clone()}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        if "ada.p" in tensors:
            self.p.copy_(tensors["ada.p"])
            self.signs.copy_(tensors["ada.signs"])
