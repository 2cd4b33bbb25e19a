"""Restoration methods: each is configured once and called as ``method(y, physics, seed=..., callback=...)``
(`genprior.methods.base.Method`), returning a `genprior.Reconstruction`."""

from .base import DivergenceError, Method, Step
from .bigprior import BIGPrior
from .brgm import BRGM
from .fusion import FusionNet
from .mcmc import LatentMCMC
from .mganprior import MGANPrior
from .vi import VariationalBRGM

__all__ = ["Method", "Step", "DivergenceError", "BRGM", "VariationalBRGM", "LatentMCMC", "MGANPrior", "BIGPrior", "FusionNet"]
