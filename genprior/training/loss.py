"""GAN losses, apart from the loop: each runs one chunk's forward and backward pass and returns its statistics.

* `StyleGAN2Loss` (as NVlabs' ``training/loss.py``): non-saturating logistic loss,
  ``G: softplus(-D(G(z)))``, ``D: softplus(D(G(z))) + softplus(-D(x))``, with lazy R1 on the reals,
  ``gamma / 2 * |grad_x D(x)|^2`` times the interval, on the steps the loop marks as regularisation steps.
* `ProjectedLoss` (Projected GAN, Sauer et al. 2021): hinge loss, ``G: -D(G(z))``,
  ``D: relu(1 + D(G(z))) + relu(1 - D(x))``, averaged over the discriminator's logits; no R1.
* `VisionAidedLoss` (Kumari et al. 2022): `StyleGAN2Loss` on the main discriminator plus ``aux_weight`` times
  the same logistic loss on the projected heads (mean over their logits), the reals' target smoothed to
  ``REAL_TARGET`` (0.8) as in their code; R1 on the main part only.

Both augment reals and fakes (`AdaptiveAugment`) before the discriminator. ``gain`` is the chunk's share of
the batch: losses are multiplied by it before ``backward``, so the gradients of all chunks (on all processes)
sum to the gradient of the batch mean. The returned statistics (detached 0-dim tensors on the device, never
read here) are weighted the same way: ``loss_G``, ``loss_D``, ``logit_fake``, ``logit_real``, ``sign_real``
(E[sign(D(x))], ADA's overfitting measure) and, on regularisation steps, ``r1``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .augment import AdaptiveAugment
from .batches import Chunk

__all__ = ["GANLoss", "StyleGAN2Loss", "ProjectedLoss", "VisionAidedLoss", "make_loss", "REAL_TARGET"]

Stats = dict[str, torch.Tensor]
REAL_TARGET = 0.8  # vision-aided GAN's smoothed label of the reals for the projected heads


class GANLoss:
    """What both losses share: generating fakes and running the augmented discriminator."""

    def __init__(self, G: torch.nn.Module, D: torch.nn.Module, augment: AdaptiveAugment, *, fp16: bool = False,
                 channels_last: bool = False) -> None:
        self.G, self.D, self.augment, self.fp16, self.channels_last = G, D, augment, fp16, channels_last

    def generate(self, chunk: Chunk, *, update_w_avg: bool = False) -> torch.Tensor:
        """Fakes (n, C, R, R), roughly [-1, 1], from the chunk's latents and noise maps."""
        ws = self.G.mapping(chunk.z, update_w_avg=update_w_avg)
        return self.G.synthesis(ws, noise=chunk.noise, force_fp32=not self.fp16)

    def run_D(self, img: torch.Tensor, chunk: Chunk, *, regularised: bool = False) -> torch.Tensor:
        """Logits of the augmented images; ``regularised``: the reals of an R1 step (they require grad)."""
        return self.D(self._augmented(img, chunk)).float()

    def _augmented(self, img: torch.Tensor, chunk: Chunk) -> torch.Tensor:
        x = self.augment(img, chunk.generator)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    # the two terms each loss defines, as functions of the logits
    def g_term(self, logits_fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def d_terms(self, logits_fake: torch.Tensor, logits_real: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def regulariser(self, real: torch.Tensor, logits_real: torch.Tensor) -> tuple[torch.Tensor, Stats]:
        """(penalty to add to the D loss, statistics) on a regularisation step; none by default."""
        return logits_real.new_zeros(()), {}

    def g_backward(self, chunk: Chunk, gain: float) -> Stats:
        """G's loss on one chunk of fakes, back-propagated into G (D frozen by the caller)."""
        fake = self.generate(chunk, update_w_avg=True)
        loss = self.g_term(self.run_D(fake, chunk))
        (loss * gain).backward()
        return {"loss_G": loss.detach() * gain}

    def d_backward(self, chunk: Chunk, gain: float, regularise: bool) -> Stats:
        """D's loss on one chunk of fakes and reals (plus the regulariser when asked), back-propagated into D."""
        with torch.no_grad():
            fake = self.generate(chunk)
        real = chunk.real.detach().requires_grad_(regularise)
        logits_fake = self.run_D(fake, chunk)
        logits_real = self.run_D(real, chunk, regularised=regularise)
        loss = self.d_terms(logits_fake, logits_real)
        penalty, stats = self.regulariser(real, logits_real) if regularise else (loss.new_zeros(()), {})
        ((loss + penalty) * gain).backward()
        stats.update(loss_D=loss.detach(), **self.logit_stats(logits_fake.detach(), logits_real.detach()))
        return {k: v * gain for k, v in stats.items()}

    def logit_stats(self, logits_fake: torch.Tensor, logits_real: torch.Tensor) -> Stats:
        """Mean logits of fakes and reals, and E[sign(D(x))] (ADA's measure), over all columns."""
        return dict(logit_fake=logits_fake.mean(), logit_real=logits_real.mean(), sign_real=logits_real.sign().mean())


class StyleGAN2Loss(GANLoss):
    """Non-saturating logistic loss with lazy R1 (weight ``r1_gamma``, every ``r1_interval`` steps)."""

    def __init__(self, G: torch.nn.Module, D: torch.nn.Module, augment: AdaptiveAugment, *, r1_gamma: float,
                 r1_interval: int, **kw: bool) -> None:
        super().__init__(G, D, augment, **kw)
        self.r1_gamma, self.r1_interval = r1_gamma, r1_interval

    def g_term(self, logits_fake: torch.Tensor) -> torch.Tensor:
        return F.softplus(-logits_fake).mean()

    def d_terms(self, logits_fake: torch.Tensor, logits_real: torch.Tensor) -> torch.Tensor:
        return F.softplus(logits_fake).mean() + F.softplus(-logits_real).mean()

    def regulariser(self, real: torch.Tensor, logits_real: torch.Tensor) -> tuple[torch.Tensor, Stats]:
        (grad,) = torch.autograd.grad(logits_real.sum(), real, create_graph=True)
        r1 = grad.square().sum(dim=[1, 2, 3]).mean()
        return r1 * (self.r1_gamma / 2) * self.r1_interval, {"r1": r1.detach()}


class ProjectedLoss(GANLoss):
    """Hinge loss over the logits of every feature scale (Projected GAN); no regulariser."""

    def g_term(self, logits_fake: torch.Tensor) -> torch.Tensor:
        return (-logits_fake).mean()

    def d_terms(self, logits_fake: torch.Tensor, logits_real: torch.Tensor) -> torch.Tensor:
        return F.relu(1 + logits_fake).mean() + F.relu(1 - logits_real).mean()


class VisionAidedLoss(StyleGAN2Loss):
    """`StyleGAN2Loss` on column 0 of a `VisionAidedDiscriminator`'s logits, plus ``aux_weight`` times a
    logistic loss on its projected columns (reals' target `REAL_TARGET`); R1 on column 0 only."""

    def __init__(self, G: torch.nn.Module, D: torch.nn.Module, augment: AdaptiveAugment, *, r1_gamma: float,
                 r1_interval: int, aux_weight: float = 1.0, **kw: bool) -> None:
        super().__init__(G, D, augment, r1_gamma=r1_gamma, r1_interval=r1_interval, **kw)
        self.aux_weight = aux_weight

    def run_D(self, img: torch.Tensor, chunk: Chunk, *, regularised: bool = False) -> torch.Tensor:
        x = self._augmented(img, chunk)
        # R1 needs the gradient of the main logits only: the projected part sees a detached copy, so that no
        # double backward runs through VGG16
        return torch.cat([self.D.main(x).float(), self.D.projected(x.detach() if regularised else x)], dim=1)

    def g_term(self, logits_fake: torch.Tensor) -> torch.Tensor:
        aux = F.binary_cross_entropy_with_logits(logits_fake[:, 1:], torch.full_like(logits_fake[:, 1:], REAL_TARGET))
        return super().g_term(logits_fake[:, :1]) + self.aux_weight * aux

    def d_terms(self, logits_fake: torch.Tensor, logits_real: torch.Tensor) -> torch.Tensor:
        fake, real = logits_fake[:, 1:], logits_real[:, 1:]
        aux = (F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
               + F.binary_cross_entropy_with_logits(real, torch.full_like(real, REAL_TARGET)))
        return super().d_terms(logits_fake[:, :1], logits_real[:, :1]) + self.aux_weight * aux

    def regulariser(self, real: torch.Tensor, logits_real: torch.Tensor) -> tuple[torch.Tensor, Stats]:
        return super().regulariser(real, logits_real[:, :1])

    def logit_stats(self, logits_fake: torch.Tensor, logits_real: torch.Tensor) -> Stats:
        """The main column's (ADA follows it), and the projected columns' means as ``aux_fake`` / ``aux_real``."""
        return dict(super().logit_stats(logits_fake[:, :1], logits_real[:, :1]), aux_fake=logits_fake[:, 1:].mean(),
                    aux_real=logits_real[:, 1:].mean())


def make_loss(recipe: str, G: torch.nn.Module, D: torch.nn.Module, augment: AdaptiveAugment, *, r1_gamma: float,
              r1_interval: int, fp16: bool, channels_last: bool) -> GANLoss:
    """The loss of a recipe ("stylegan2", "projected" or "vision-aided")."""
    if recipe == "projected":
        return ProjectedLoss(G, D, augment, fp16=fp16, channels_last=channels_last)
    if recipe == "vision-aided":
        return VisionAidedLoss(G, D, augment, r1_gamma=r1_gamma, r1_interval=r1_interval, fp16=fp16,
                               channels_last=channels_last)
    return StyleGAN2Loss(G, D, augment, r1_gamma=r1_gamma, r1_interval=r1_interval, fp16=fp16,
                         channels_last=channels_last)
