"""Restoration methods: each is configured once and called as ``method(y, physics)``."""

from .bigprior import BIGPrior
from .brgm import BRGM
from .mganprior import MGANPrior
from .vi import VariationalBRGM

__all__ = ["BRGM", "VariationalBRGM", "MGANPrior", "BIGPrior"]
