"""Restoration methods: each is configured once and called as ``method(y, physics)``."""

from .brgm import BRGM

__all__ = ["BRGM"]
