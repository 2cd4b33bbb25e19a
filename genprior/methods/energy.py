"""The energy every latent method minimises or samples: shared likelihood and prior terms, weighted.

    E(latent) = λ_lik·L + λ_pix·P + λ_perc·Q + λ_prior·R + λ_cos·C + λ_noise·N     (per image, (N,))

* L: `genprior.losses.GaussianLikelihood` — ``Σ (f(x) - y)² / (2 σ²)``, the calibrated sensor likelihood;
* P: pixel MSE ``mean (f(x) - y)²`` (the official BRGM's pixel term);
* Q: perceptual distance of f(x) to y (`genprior.losses.perceptual_distance`: LPIPS or the VGG16 stand-in);
* R: a latent prior (`genprior.priors.DiagonalGaussianPrior`, calibrated; or BRGM's `GaussianPrior`);
* C: BRGM's colinearity of W+ rows (`genprior.priors.cosine_prior`); N: the noise maps' autocorrelation.

A weight of 0 skips its term. The terms are returned unweighted, so a history shows each one's size.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..losses import GaussianLikelihood, pixel_mse
from ..priors import cosine_prior, noise_autocorrelation

TERMS = ("likelihood", "pixel", "perceptual", "prior", "cosine", "noise")


class LatentEnergy(nn.Module):
    """Weighted sum of the terms above; ``weights`` maps term names to λ's (missing: 0)."""

    def __init__(self, weights: dict[str, float], *, likelihood: GaussianLikelihood | None = None,
                 prior: nn.Module | None = None, perceptual: nn.Module | None = None) -> None:
        super().__init__()
        unknown = set(weights) - set(TERMS)
        if unknown:
            raise ValueError(f"unknown energy terms {sorted(unknown)}; known: {', '.join(TERMS)}")
        self.weights = {k: float(v) for k, v in weights.items() if v}
        for term, module in (("likelihood", likelihood), ("prior", prior), ("perceptual", perceptual)):
            if term in self.weights and module is None:
                raise ValueError(f"the energy weighs the {term} term but no {term} module was given")
        self.likelihood, self.prior, self.perceptual = likelihood, prior, perceptual

    def forward(self, x: torch.Tensor, latent: torch.Tensor, y: torch.Tensor, physics: nn.Module, *,
                y_features: Any = None, noise: dict[str, torch.Tensor] | None = None,
                scale: dict[str, float] | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """x: the generator's image (N, C, R, R), unclamped; latent as optimised; y the observation.
        ``scale`` multiplies some weights for this call (e.g. a tempered likelihood).
        Returns the energy (N,) and the unweighted terms."""
        w = {k: v * (scale or {}).get(k, 1.0) for k, v in self.weights.items()}
        fx = physics.A(x)
        terms: dict[str, torch.Tensor] = {}
        if "likelihood" in w:
            terms["likelihood"] = self.likelihood(fx, y)
        if "pixel" in w:
            terms["pixel"] = pixel_mse(fx, y)
        if "perceptual" in w:
            terms["perceptual"] = self.perceptual(fx, y if y_features is None else y_features)
        if "prior" in w:
            terms["prior"] = self.prior(latent)
        if "cosine" in w and latent.ndim == 3:
            terms["cosine"] = cosine_prior(latent)
        if "noise" in w and noise:
            terms["noise"] = noise_autocorrelation(noise)
        total = sum(w[k] * v for k, v in terms.items())
        return total, terms
